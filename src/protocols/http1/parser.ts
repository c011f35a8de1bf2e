/**
 * The HTTP/1.1 head parser the data path uses: the addon's (native/http1, one call per head) when
 * the addon is built, else the TypeScript one in decoder.ts — same rules and results, checked by
 * a parity test. `STRAIT_HTTP1_PARSER=ts` forces the TypeScript parser (bench comparisons).
 *
 * Measured with CPU time per head (`node bench/micro/index.js http1-parse`): the native parse of
 * an 8-header request is ~0.65–0.9x the TypeScript one; a 4-header response is about even. Most
 * of what is left is building the head for JS (the fields array, the target string), which both
 * pay.
 */
import { log } from '../../log.js';
import { loadNative } from '../../native.js';
import { DEFAULT_LIMITS, parseRequestHead as tsRequest, parseResponseHead as tsResponse, type ParseLimits, type ParseResult } from './decoder.js';
import { nativeHeadParser, type HeadParser } from './native_head.js';
import { F, HeadStatus, HeaderKind, type MessageHead } from './types.js';

/** The head of `r` moved to a Buffer of its own (the TypeScript parser's owned parse). */
function own(r: ParseResult): ParseResult {
  if (typeof r === 'number') return r;
  const buf = Buffer.allocUnsafe(r.headBytes);
  r.buf.copy(buf, 0, r.start, r.start + r.headBytes);
  const d = -r.start;
  const fields = r.fieldSlots.slice(r.fieldsAt, r.fieldsEnd);
  for (let i = 0; i < fields.length; i += F.SIZE) {
    fields[i + F.NAME_START]! += d;
    fields[i + F.NAME_END]! += d;
    fields[i + F.VALUE_START]! += d;
    fields[i + F.VALUE_END]! += d;
  }
  return { ...r, buf, start: 0, fieldSlots: fields, fieldsAt: 0, fieldsEnd: fields.length };
}

function choose(): { parser: HeadParser; name: 'native' | 'ts' } {
  const ts: HeadParser = {
    parseRequestHead: tsRequest,
    parseResponseHead: tsResponse,
    parseRequestHeadOwned: (b, o, e, l) => own(tsRequest(b, o, e, l)),
    parseResponseHeadOwned: (b, o, e, l) => own(tsResponse(b, o, e, l)),
  };
  if (process.env.STRAIT_HTTP1_PARSER === 'ts') return { parser: ts, name: 'ts' };
  try {
    const p = nativeHeadParser(loadNative());
    if (p) return { parser: p, name: 'native' };
    log.warn('the native addon predates parseHttp1Head or its records slot: HTTP/1 heads are parsed in TypeScript (rebuild with "npx node-gyp rebuild")');
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'native addon unavailable: HTTP/1 heads are parsed in TypeScript');
  }
  return { parser: ts, name: 'ts' };
}

const chosen = choose();

/** Which parser is in use: 'native' or 'ts'. */
export const HTTP1_PARSER: 'native' | 'ts' = chosen.name;

/** The native parser's scratch holds 5 slots per allowed header; past this, TypeScript parses. */
const NATIVE_MAX_HEADERS = 1024;

export function parseRequestHead(buf: Buffer, off: number, end: number, limits: ParseLimits = DEFAULT_LIMITS): ParseResult {
  if (limits.maxHeaders > NATIVE_MAX_HEADERS) return tsRequest(buf, off, end, limits);
  return chosen.parser.parseRequestHead(buf, off, end, limits);
}

/**
 * `into`: a head this function returned before that nothing refers to any more (an upstream
 * connection's previous response), refilled by the native parser instead of a new one.
 */
export function parseResponseHead(buf: Buffer, off: number, end: number, limits: ParseLimits = DEFAULT_LIMITS, into: MessageHead | null = null): ParseResult {
  if (limits.maxHeaders > NATIVE_MAX_HEADERS) return bodylessFraming(tsResponse(buf, off, end, limits));
  return bodylessFraming(chosen.parser.parseResponseHead(buf, off, end, limits, into));
}

/**
 * When `head` is the response parseResponseHead returned last, parsed in place in the reader's
 * registered arena, its fields unchanged and still in the native parser's results (the HEAD_OUT
 * table), the parser's flags (ResponseHas bits tell date, server, x-request-id and http2-settings
 * apart); else -1. The addon then reads the fields itself (NativeH2Stream.respondH1Head).
 */
export function headFlagsInTables(head: MessageHead): number {
  // bodylessFraming may have cut a field out of the head (not out of the parser's results).
  if (head.status < 200 || head.status === 204 || chosen.parser.inTables === undefined) return -1;
  return chosen.parser.inTables(head);
}

/**
 * Whether `head` is the head the native parser returned last (request or response, owned or
 * not), its fields untouched and still in the parser's registered results (HEAD_OUT): the head
 * writers then let the addon work out the kept lines (encodeHeadStagedAt, encodeHeadSendAt).
 */
export function fieldsInTables(head: MessageHead): boolean {
  const p = chosen.parser;
  return p.fieldsInTables !== undefined && p.fieldsInTables(head);
}

/**
 * The native parser's flags for `head` (RequestHas bits for a request: whether it carries
 * x-request-id, x-forwarded-proto, x-forwarded-for, x-forwarded-client-cert) when fieldsInTables
 * holds for it, else -1: the caller then looks at the names itself.
 */
export function flagsInTables(head: MessageHead): number {
  const p = chosen.parser;
  return p.flagsInTables !== undefined ? p.flagsInTables(head) : -1;
}

/**
 * Like parseRequestHead, but the head returned (if any) never points into `buf`: for parsing
 * straight out of a read buffer that is reused once this call's caller returns. `into`: as for
 * parseResponseHeadOwned.
 */
export function parseRequestHeadOwned(buf: Buffer, off: number, end: number, limits: ParseLimits = DEFAULT_LIMITS, into: MessageHead | null = null): ParseResult {
  if (limits.maxHeaders > NATIVE_MAX_HEADERS) return own(tsRequest(buf, off, end, limits));
  return chosen.parser.parseRequestHeadOwned(buf, off, end, limits, into);
}

/**
 * parseResponseHead with the head's bytes owned, as parseRequestHeadOwned. `into`: a head this
 * function returned before that nothing refers to any more, which the native parser refills
 * instead of making a new one (the TypeScript parser ignores it).
 */
export function parseResponseHeadOwned(buf: Buffer, off: number, end: number, limits: ParseLimits = DEFAULT_LIMITS, into: MessageHead | null = null): ParseResult {
  if (limits.maxHeaders > NATIVE_MAX_HEADERS) return bodylessFraming(own(tsResponse(buf, off, end, limits)));
  return bodylessFraming(chosen.parser.parseResponseHeadOwned(buf, off, end, limits, into));
}

/**
 * A 1xx or 204 response never has a body (RFC 9112 §6.3), and its sender must not frame one
 * (RFC 9110 §8.6, RFC 9112 §6.1). One that does disagrees with this proxy about where the next
 * response on the connection starts, so, as Envoy's HTTP/1 codec does: Transfer-Encoding or a
 * non-zero Content-Length makes the head malformed (an upstream protocol error: 503 with the
 * reset-before-headers body, as Envoy's router answers), and a
 * `Content-Length: 0`, which widely used servers send, is dropped rather than passed on. Other
 * statuses cost one comparison; 304 keeps its Content-Length (the selected representation's).
 */
function bodylessFraming(r: ParseResult): ParseResult {
  if (typeof r === 'number' || (r.status >= 200 && r.status !== 204)) return r;
  if (r.contentLength > 0) return HeadStatus.MALFORMED;
  const f = r.fieldSlots;
  const end = r.fieldsEnd;
  let cl = false;
  for (let i = r.fieldsAt; i < end; i += F.SIZE) {
    const kind = f[i + F.KIND];
    if (kind === HeaderKind.TRANSFER_ENCODING) return HeadStatus.MALFORMED;
    if (kind === HeaderKind.CONTENT_LENGTH) cl = true;
  }
  if (!cl) return r;
  // In place: the range is this head's alone.
  let w = r.fieldsAt;
  for (let i = r.fieldsAt; i < end; i += F.SIZE) {
    if (f[i + F.KIND] === HeaderKind.CONTENT_LENGTH) continue;
    for (let k = 0; k < F.SIZE; k++) f[w + k] = f[i + k]!;
    w += F.SIZE;
  }
  (r as { fieldsEnd: number }).fieldsEnd = w;
  (r as { contentLength: number }).contentLength = -1;
  return r;
}
