import type { Transform } from 'node:stream';
import type { Scope, StatsOf } from '../../../observability/stats.js';
import type { HeaderMutation } from '../../../router/http_route_table.js';
import { addUpstreamHeaders, PER_ROUTE_DISABLED, perRouteConfig, type FilterVerdict, type HttpFilter, type HttpFilterRequest, type ResponseBodyFilter } from '../types.js';
import type { CompressorConfig, CompressorPerRoute } from './config.js';
import { chooseEncoding, HeaderStat, mediaType, type EncodingDecision, type EncodingOffer } from './negotiate.js';
import { COMPRESSOR_STATS } from './stats.js';

type HeaderObject = Record<string, string | string[] | undefined>;

const REMOVE_ACCEPT_ENCODING: HeaderMutation = Object.freeze({ add: Object.freeze([]), remove: Object.freeze(['accept-encoding']) });

function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Whether a comma-separated header (all its lines) has `token`, any case. */
function hasToken(v: string | string[] | undefined, token: string): boolean {
  if (v === undefined) return false;
  for (const line of Array.isArray(v) ? v : [v]) {
    for (const t of line.split(',')) if (t.trim().toLowerCase() === token) return true;
  }
  return false;
}

/** Vary gets Accept-Encoding unless it has it (or `*`, which covers it) already. */
function addVary(h: HeaderObject): void {
  const v = h.vary;
  if (v === undefined) h.vary = 'Accept-Encoding';
  else if (!hasToken(v, 'accept-encoding') && !hasToken(v, '*')) h.vary = Array.isArray(v) ? [...v, 'Accept-Encoding'] : `${v}, Accept-Encoding`;
}

/**
 * Envoy's `envoy.filters.http.compressor` on the response direction. On a request it only
 * records itself in the request's Negotiation (shared by the chain's compressor filters) and,
 * with remove_accept_encoding_header, takes Accept-Encoding off the upstream request; the
 * decision waits for the upstream's response head (Negotiation.onResponseHeaders).
 */
export class CompressorFilter implements HttpFilter, EncodingOffer {
  readonly stats: StatsOf<typeof COMPRESSOR_STATS>;
  readonly encoding: string;
  readonly contentTypes: ReadonlySet<string>;
  readonly chooseFirst: boolean;

  constructor(
    readonly config: CompressorConfig,
    scope: Scope,
    /** The filter's name in the chain: the key its routes' CompressorPerRoute are under. */
    private readonly name: string,
  ) {
    let s = scope.scope('compressor').scope(config.libraryName).scope(config.statLibrary);
    if (!config.legacyStats) s = s.scope('response');
    this.stats = s.table(COMPRESSOR_STATS);
    this.encoding = config.encoding;
    this.contentTypes = config.contentTypes;
    this.chooseFirst = config.chooseFirst;
  }

  onRequest(req: HttpFilterRequest): FilterVerdict | null {
    // An upgrade (WebSocket) or CONNECT turns into a tunnel of bytes: nothing to compress there.
    if (req.method === 'CONNECT' || req.header('upgrade') !== undefined) return null;
    const rb = req.responseBody;
    let n: Negotiation;
    if (rb instanceof Negotiation) n = rb;
    else if (rb === undefined || rb === null) req.responseBody = n = new Negotiation(req.header('accept-encoding'));
    else return null; // another filter transforms this body: not ours to stack on
    const c = this.config;
    let enabled = c.enabled;
    let removeAe = c.removeAcceptEncoding;
    const pr = perRouteConfig<CompressorPerRoute>(req, this.name);
    if (pr !== undefined && pr !== PER_ROUTE_DISABLED) {
      if (pr.enabled !== null) enabled = pr.enabled;
      if (pr.removeAcceptEncoding !== null) removeAe = pr.removeAcceptEncoding;
    }
    // Every compressor filter that sees the request takes part in the negotiation, enabled or
    // not (Envoy registers them all); only an enabled one may compress.
    n.add(this, enabled);
    if (enabled && removeAe) addUpstreamHeaders(req, REMOVE_ACCEPT_ENCODING);
    return null;
  }

  /**
   * Envoy's encodeHeaders for this filter: whether it compresses this response (then `headers`
   * are edited for it), counting as Envoy does. Filters that run after one compressed see its
   * content-encoding and leave the response alone.
   */
  decide(n: Negotiation, enabled: boolean, h: HeaderObject, endStream: boolean): boolean {
    const s = this.stats;
    const c = this.config;
    const compressible = enabled && this.longEnough(h) && this.typeAllowed(h) && !hasToken(h['cache-control'], 'no-transform') && this.etagAllowed(h) && h['content-encoding'] === undefined;
    let compress = false;
    if (!endStream && compressible && n.accepts(this, h) && !this.transferEncoded(h)) {
      compress = true;
      // A strong validator no longer holds for the bytes we send; a weak one still does (RFC 9110 §8.8.1).
      const etag = firstValue(h.etag);
      if (etag !== undefined && etag.length > 2 && !/^w\//i.test(etag)) h.etag = `W/${etag}`;
      delete h['content-length'];
      h['content-encoding'] = c.encoding;
      s.compressed.value++;
    } else s.not_compressed.value++;
    // Also when the client's Accept-Encoding kept us from compressing: a cache in front must know
    // that another Accept-Encoding may get another body.
    if (compressible) addVary(h);
    return compress;
  }

  /** The library's stream for one response body, with the byte counters on it. */
  stream(): Transform {
    const s = this.stats;
    const z = this.config.make();
    z.on('data', (d: Buffer) => {
      s.total_compressed_bytes.value += d.length;
    });
    // Once, however it ends (finished or destroyed by an abort).
    z.once('close', () => {
      s.total_uncompressed_bytes.value += z.bytesWritten;
    });
    return z;
  }

  private longEnough(h: HeaderObject): boolean {
    const cl = firstValue(h['content-length']);
    // Without a length (chunked, or HTTP/2 without content-length) the body may be any size.
    if (cl === undefined) return true;
    const ok = /^\d+$/.test(cl) && Number(cl) >= this.config.minLength;
    if (!ok) this.stats.content_length_too_small.value++;
    return ok;
  }

  private typeAllowed(h: HeaderObject): boolean {
    const t = mediaType(h['content-type']);
    // No Content-Type: allowed, as in Envoy.
    return t === '' || this.contentTypes.has(t);
  }

  private etagAllowed(h: HeaderObject): boolean {
    if (!this.config.disableOnEtag || h.etag === undefined) return true;
    this.stats.not_compressed_etag.value++;
    return false;
  }

  /** A transfer coding that already compresses (an HTTP/1.1 upstream's `gzip, chunked`). */
  private transferEncoded(h: HeaderObject): boolean {
    const te = h['transfer-encoding'];
    return te !== undefined && (hasToken(te, this.encoding) || hasToken(te, 'gzip') || hasToken(te, 'deflate'));
  }
}

/**
 * The compressor filters that saw one request, in chain order, and its Accept-Encoding: the
 * request's response body filter. The coding is chosen once per response among them all, and
 * the filter whose coding won compresses; the others stand down
 * (header_compressor_overshadowed), as Envoy's compressor filters share their decision.
 */
export class Negotiation implements ResponseBodyFilter {
  private readonly filters: CompressorFilter[] = [];
  private readonly enabled: boolean[] = [];
  private decision: EncodingDecision | null = null;

  constructor(private readonly acceptEncoding: string | undefined) {}

  add(f: CompressorFilter, enabled: boolean): void {
    this.filters.push(f);
    this.enabled.push(enabled);
  }

  onResponseHeaders(_status: number, headers: HeaderObject, endStream: boolean): Transform | null {
    this.decision = null;
    let z: Transform | null = null;
    // Envoy encodes a response through its filters last to first.
    for (let i = this.filters.length - 1; i >= 0; i--) {
      const f = this.filters[i]!;
      if (f.decide(this, this.enabled[i]!, headers, endStream)) z = f.stream();
    }
    return z;
  }

  /** Whether the client's Accept-Encoding picks `f`'s coding, counting the header_* stat on `f`. */
  accepts(f: CompressorFilter, h: HeaderObject): boolean {
    const s = f.stats;
    const ae = this.acceptEncoding;
    if (ae === undefined) {
      s.no_accept_header.value++;
      return false;
    }
    const d = (this.decision ??= chooseEncoding(ae, this.filters, mediaType(h['content-type'])));
    const mine = d.encoding === f.encoding;
    switch (d.stat) {
      case HeaderStat.VALID:
        if (mine) s.header_compressor_used.value++;
        else s.header_compressor_overshadowed.value++;
        break;
      case HeaderStat.IDENTITY:
        s.header_identity.value++;
        break;
      case HeaderStat.WILDCARD:
        s.header_wildcard.value++;
        break;
      default:
        s.header_not_valid.value++;
    }
    return mine;
  }
}
