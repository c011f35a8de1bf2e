/**
 * Content coding negotiation among the compressor filters of one chain, as Envoy's compressor
 * decides it (RFC 9110 §12.5.3 Accept-Encoding): computed once per response from the request's
 * Accept-Encoding and every compressor filter that saw the request, then each filter compresses
 * only if the chosen coding is its own.
 */

/** What the Accept-Encoding said about the choice, for the header_* counters. */
export const enum HeaderStat {
  /** A coding this chain offers won: header_compressor_used for its filter, _overshadowed for the others. */
  VALID,
  IDENTITY,
  WILDCARD,
  /** q=0 for everything offered, an unparseable header, or nothing in common. */
  NOT_VALID,
}

export interface EncodingDecision {
  /** The content coding to apply, or `identity`. */
  readonly encoding: string;
  readonly stat: HeaderStat;
}

/** One compressor filter's offer, in chain order. */
export interface EncodingOffer {
  /** `gzip`, `br`. */
  readonly encoding: string;
  /** The media types it compresses (lower-case, no parameters). */
  readonly contentTypes: ReadonlySet<string>;
  /** Compressor.choose_first: wins ties of q-value. */
  readonly chooseFirst: boolean;
}

const IDENTITY = 'identity';
const WILDCARD = '*';

/** A Content-Type's media type: lower-case, parameters and spaces off (`Text/HTML; charset=x` → `text/html`). */
export function mediaType(v: string | string[] | undefined): string {
  if (v === undefined) return '';
  const s = Array.isArray(v) ? (v[0] ?? '') : v;
  const semi = s.indexOf(';');
  return (semi < 0 ? s : s.slice(0, semi)).trim().toLowerCase();
}

/** The codings of an Accept-Encoding value with their q-values, in the client's order; invalid entries left out. */
export function parseAcceptEncoding(value: string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const token of value.split(',')) {
    const semi = token.indexOf(';');
    const name = (semi < 0 ? token : token.slice(0, semi)).trim().toLowerCase();
    if (name === '') continue;
    let q = 1;
    if (semi >= 0) {
      // Only a `q` parameter counts (Accept-Encoding defines no other); a malformed weight
      // drops the entry, as Envoy skips a q-value it cannot read. RFC 9110 §12.4.2 bounds it to [0, 1].
      for (const p of token.slice(semi + 1).split(';')) {
        const eq = p.indexOf('=');
        if (eq < 0 || p.slice(0, eq).trim().toLowerCase() !== 'q') continue;
        const raw = p.slice(eq + 1).trim();
        q = raw === '' ? NaN : Number(raw);
        break;
      }
      if (!(q >= 0 && q <= 1)) continue;
    }
    out.push([name, q]);
  }
  return out;
}

/**
 * The chain's choice for one response, as Envoy's chooseEncoding: the offers whose content types
 * take this response's (all, when it has none), less those the client refused with q=0; then the
 * client's highest q-value among them, `identity` and `*` (the first listed on a tie, unless a
 * choose_first offer ties it); `*` means the first offer in chain order still allowed.
 */
export function chooseEncoding(acceptEncoding: string, offers: readonly EncodingOffer[], contentType: string): EncodingDecision {
  // Allowed codings in chain order; a second filter of the same coding adds nothing.
  const allowed: string[] = [];
  let first: string | null = null;
  for (const o of offers) {
    if (contentType !== '' && !o.contentTypes.has(contentType)) continue;
    if (!allowed.includes(o.encoding)) allowed.push(o.encoding);
    // The last filter with choose_first wins, as Envoy documents.
    if (o.chooseFirst) first = o.encoding;
  }
  const pairs = parseAcceptEncoding(acceptEncoding);
  for (const [name, q] of pairs) {
    if (q !== 0) continue;
    // Refused: kept in `pairs` (the client's word on `*` below) but no longer allowed.
    const i = allowed.indexOf(name);
    if (i >= 0) allowed.splice(i, 1);
    if (first === name) first = null;
  }
  if (pairs.length === 0 || allowed.length === 0) return { encoding: IDENTITY, stat: HeaderStat.NOT_VALID };
  let choice = IDENTITY;
  let best = 0;
  for (const [name, q] of pairs) {
    if (!(allowed.includes(name) || name === IDENTITY || name === WILDCARD)) continue;
    if (q > best || (q === best && q > 0 && name === first)) {
      choice = name;
      best = q;
    }
  }
  if (best === 0) return { encoding: IDENTITY, stat: HeaderStat.NOT_VALID };
  if (choice === IDENTITY) return { encoding: IDENTITY, stat: HeaderStat.IDENTITY };
  if (choice === WILDCARD) return { encoding: first ?? allowed[0]!, stat: HeaderStat.WILDCARD };
  return { encoding: choice, stat: HeaderStat.VALID };
}
