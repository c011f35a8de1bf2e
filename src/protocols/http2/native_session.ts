/**
 * Downstream HTTP/2 on the addon's nghttp2 session (native/http2/session.h): the connection's fd
 * is read, decoded, encoded and written in C++, and JavaScript hears from it once per read batch.
 * `NativeH2Stream` offers the small part of node:http2's ServerHttp2Stream that the connection
 * manager uses (respond, write, end, trailers, close, pause/resume, data/end/close handlers),
 * as plain fields and methods: no Duplex, no EventEmitter, no header object built by node.
 */
import http2 from 'node:http2';
import { CALL_ARGS, DATA_FROM_POOL, DATA_NOT_IN_POOL, native, REQUEST_NOT_HELD, RESPONSE_NOT_HELD, tableArg, TableSlot, type NativeH2Calls, type NativeH2EventsHandler, type NativeH2Session, type NativeH2SessionOptions } from '../../native.js';
import { log } from '../../log.js';
import { enterBatch, leaveBatch } from '../http1/clock.js';
import { StreamSlots } from '../../upstream/http2_pool.js';
import type { FlatWriter } from './flat_headers.js';

/** Event kinds of a batch; mirrors EventKind in native/http2/session.h. */
export const H2Event = {
  HEADERS: 1,
  HEADERS_END: 2,
  DATA: 3,
  END: 4,
  CLOSE: 5,
  DRAIN: 6,
  GOAWAY: 7,
  IDLE: 8,
  SESSION_END: 9,
  /** Client mode: the response's trailers (END follows). */
  TRAILERS: 10,
  /** Client mode: the peer's SETTINGS; payload its max_concurrent_streams. */
  SETTINGS: 11,
  /**
   * Right before a HEADERS, HEADERS_END or TRAILERS event whose block had fields sent as HPACK
   * never-indexed literals: their names, "name\0name..." (payload: index in objects).
   */
  NEVER_INDEXED: 12,
} as const;

/**
 * The payload of a HEADERS, HEADERS_END or TRAILERS event whose list has the same bytes as the
 * last one of its kind (a client's response head or trailers, a server's request head) the
 * connection got as a string: that string is the list (kKeptList in native/http2/session.h).
 */
const KEPT_LIST = 0xffffffff;

/**
 * The names passes over a flat list look for, by token; mirrors FieldToken in
 * native/http2/session.h. The addon gives each field of a block it delivers its token (the field
 * table), and fieldTokenOf() gives the same for any other list.
 */
export const enum FieldToken {
  OTHER = 0,
  METHOD = 1,
  PATH = 2,
  AUTHORITY = 3,
  SCHEME = 4,
  STATUS = 5,
  /** Any other name starting with ':'. */
  PSEUDO = 6,
  HOST = 7,
  CONTENT_TYPE = 8,
  GRPC_TIMEOUT = 9,
  TE = 10,
  COOKIE = 11,
  UPGRADE = 12,
  CONNECTION = 13,
  KEEP_ALIVE = 14,
  REQUEST_ID = 15,
  CONTENT_LENGTH = 16,
  HTTP2_SETTINGS = 17,
  FORWARDED_FOR = 18,
  PROXY_CONNECTION = 19,
  TRANSFER_ENCODING = 20,
  FORWARDED_PROTO = 21,
  /** x-envoy-original-path */
  ORIGINAL_PATH = 22,
  /** x-forwarded-client-cert */
  CLIENT_CERT = 23,
  DATE = 24,
  SERVER = 25,
  /** content-type whose value starts with application/grpc. */
  GRPC_CONTENT_TYPE = 26,
  /** te whose value is "trailers" (the only te HTTP/2 allows). */
  TE_TRAILERS = 27,
}

/** Why a session ended; mirrors SessionEndReason in native/http2/session.h. */
export const H2SessionEnd = {
  /** The peer closed the connection, or a graceful close finished. */
  DONE: 0,
  /** A protocol error: GOAWAY with an error code was sent (or could not be). */
  PROTOCOL_ERROR: 1,
  /** A socket error (reset, EPIPE). */
  RESET: 2,
  /** destroy() was called. */
  LOCAL: 3,
} as const;
export type H2SessionEnd = (typeof H2SessionEnd)[keyof typeof H2SessionEnd];

/** RST_STREAM codes used here (RFC 9113 §7). */
const NO_ERROR = 0;
const INTERNAL_ERROR = 2;
const CANCEL = 8;

/** Header values by lowercase name, as node:http2 builds them (set-cookie an array, cookie joined with "; "). */
export type H2Headers = Record<string, string | string[] | undefined>;

/**
 * Where a header object lists its never-indexed names (RFC 7541 §7.1.3): node:http2's symbol,
 * which it fills on what it receives and honours on what it sends. Objects from and to the addon
 * use it too; flat lists carry the names beside them as "name\0name..." instead.
 */
export const NEVER_INDEXED = http2.sensitiveHeaders;
type Sensitive = { [NEVER_INDEXED]?: string[] };

/** The names `h` lists as never indexed, in the addon's form; undefined when none. */
export function neverIndexedOf(h: H2Headers): string | undefined {
  const a = (h as Sensitive)[NEVER_INDEXED];
  return a !== undefined && a.length > 0 ? a.join('\0') : undefined;
}

/** Lists the addon's never-indexed `names` ("name\0name...") on `h`, as node:http2 would. */
export function setNeverIndexed(h: H2Headers, names: string): H2Headers {
  (h as Sensitive)[NEVER_INDEXED] = names.split('\0');
  return h;
}

/** What a connection tells its owner. */
export interface NativeH2Handlers {
  /** A new request; `endStream`: its HEADERS frame ended it (no body follows). */
  onStream(stream: NativeH2Stream, headers: H2Headers, endStream: boolean): void;
  /**
   * Optional, in place of onStream: the request's list as the addon delivers it,
   * "name\0value\0..." (names lower-case, pseudo-headers first, no trailing NUL), for an owner
   * that reads the few fields it needs from it and builds the object only when asked (headerObject).
   * `neverIndexed`: the names the client sent never indexed, only when there are any (onStream
   * finds them on the object under NEVER_INDEXED).
   */
  onStreamFlat?(stream: NativeH2Stream, flat: string, endStream: boolean, neverIndexed?: string): void;
  /** No byte moved either way for the idle timeout (repeats while idle). */
  onIdle(): void;
  /** The connection is gone; every stream has had its close handler called already. */
  onEnd(reason: H2SessionEnd): void;
}

/**
 * The event slots the addon writes a batch into (3 per event), one array for every session, server
 * and client: the addon hands over a batch from the loop, one session at a time, and a batch made
 * during a JavaScript call (destroy() from a handler) or larger than this comes in an array of its
 * own. An upstream connection carries the responses of many downstream ones, so its reads hold
 * hundreds of events (a new array for each cost ~130 instructions per proxied gRPC request). An
 * array per connection was 768 B and three mallocs each.
 */
const EVENTS = new Uint32Array(3 * 1024);

/** Settings; the defaults are node:http2's where it has one. */
export interface NativeH2Settings {
  maxConcurrentStreams?: number;
  initialWindowSize?: number;
  maxHeaderListSize: number;
  maxHeaderPairs: number;
  highWaterMark?: number;
  streamHighWaterMark?: number;
  idleTimeoutMs?: number;
}

/**
 * Streams a client may open at once when the config says nothing. node:http2 advertises no
 * limit; a bound keeps one connection's memory bounded (each stream may hold one window).
 */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 1024;

type Handler<A extends unknown[]> = ((this: NativeH2Stream, ...a: A) => void) | null;

let dateAt = 0;
let dateStr = '';
/** node:http2 sends `date` on every response; one string per second. */
export function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000 || now < dateAt) {
    dateAt = now - (now % 1000);
    dateStr = new Date(dateAt).toUTCString();
  }
  return dateStr;
}

/** "name\0value\0..." of a header object, and its pair count (the addon checks it against a NUL inside a value). */
let flatPairs = 0;
function flatten(h: H2Headers, addDate: boolean): string {
  // Pseudo-headers first: RFC 9113 §8.3 makes a peer reject a block where they come later.
  let ps = '';
  let s = '';
  let n = 0;
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    if (k.charCodeAt(0) === 58 /* : */) {
      ps += `${k}\0${v as string}\0`;
      n++;
    } else if (Array.isArray(v)) {
      for (const x of v) {
        s += `${k}\0${x}\0`;
        n++;
      }
    } else {
      s += `${k}\0${v}\0`;
      n++;
    }
  }
  if (addDate && h.date === undefined) {
    s += `date\0${httpDate()}\0`;
    n++;
  }
  flatPairs = n;
  // The addon takes the last value's terminator as optional; one is simply left on.
  return ps + s;
}

/** @internal The flat form of a header object and its pair count, as respond() and request() send it. */
export function flatOf(h: H2Headers, addDate: boolean): [string, number] {
  const s = flatten(h, addDate);
  return [s, flatPairs];
}

/**
 * Header objects get this constructor: a prototype with nothing on it, so a lookup of any name
 * (`constructor`, `__proto__`) finds only what the peer sent, as on node's null-prototype
 * objects, while the objects themselves keep fast properties (Object.create(null) makes a
 * dictionary, which every store and load then has to hash into).
 */
const HeaderBag = function HeaderBag() {} as unknown as new () => H2Headers;
HeaderBag.prototype = Object.create(null) as object;

/**
 * Field names seen on most requests and responses, by length. A name found here is used as this
 * (internalized) constant instead of a new string sliced from the block: no allocation, and the
 * object's keyed store needs no string-table lookup to internalize it.
 */
const KNOWN_NAMES: string[][] = [];
for (const n of [
  ':method', ':path', ':scheme', ':authority', ':status', 'te', 'host', 'accept', 'accept-encoding', 'accept-language', 'authorization',
  'cache-control', 'content-encoding', 'content-length', 'content-type', 'cookie', 'date', 'server', 'set-cookie', 'user-agent', 'vary',
  'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-envoy-upstream-service-time', 'traceparent', 'tracestate',
  'grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'grpc-status', 'grpc-message', 'grpc-status-details-bin', 'grpc-previous-rpc-attempts',
]) {
  (KNOWN_NAMES[n.length] ??= []).push(n);
}

function nameAt(s: string, start: number, end: number): string {
  const known = KNOWN_NAMES[end - start];
  if (known !== undefined) {
    for (let j = 0; j < known.length; j++) {
      const k = known[j]!;
      if (s.startsWith(k, start)) return k;
    }
  }
  return s.slice(start, end);
}

/**
 * An addon session whose per-request calls go through H2Session.calls, naming the session by its
 * number, and the rest to the session object. The prototype's methods find their C++ object
 * through napi_unwrap (~600 instructions a call); with functions shared by all sessions, each call
 * site here sees one target, which TurboFan calls directly, where a function per session (each
 * connection's own) sent every call through V8's generic path into the addon.
 */
export class NumberedH2Session implements NativeH2Session {
  private readonly id: number;
  /** Whether requestHeld and respondHeld number their extra pairs for the addon (h2ExtraGen). */
  private readonly gens: boolean;

  constructor(
    readonly raw: NativeH2Session,
    private readonly c: NativeH2Calls,
  ) {
    this.id = raw.sid();
    this.gens = extraGens();
  }

  respond(streamId: number, headers: string | Uint8Array, pairs: number, endStream: boolean, byteLength?: number, body?: Uint8Array, neverIndexed?: string): boolean {
    // Trailing arguments left out rather than passed undefined: the addon then reads fewer.
    const c = this.c;
    if (neverIndexed !== undefined) return c.respond(this.id, streamId, headers, pairs, endStream, byteLength, body, neverIndexed);
    if (body !== undefined) return c.respond(this.id, streamId, headers, pairs, endStream, byteLength, body);
    if (byteLength !== undefined) return c.respond(this.id, streamId, headers, pairs, endStream, byteLength);
    return c.respond(this.id, streamId, headers, pairs, endStream);
  }

  respondRuns(streamId: number, src: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string): boolean {
    if (neverIndexed !== undefined) return this.c.respondRuns(this.id, streamId, src, runs, nRuns, extra, pairs, endStream, neverIndexed);
    return this.c.respondRuns(this.id, streamId, src, runs, nRuns, extra, pairs, endStream);
  }

  respondHeld(streamId: number, upSession: number, upStream: number, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string): number {
    const c = this.c;
    if (c.respondHeldArgs === undefined) return RESPONSE_NOT_HELD;
    const a = CALL_ARGS;
    a[0] = this.id;
    a[1] = streamId;
    a[2] = upSession;
    a[3] = upStream;
    a[4] = nRuns;
    a[5] = pairs;
    let end = endStream ? 1 : 0;
    if (this.gens) {
      if (extra !== respondExtra) {
        respondExtra = extra;
        respondExtraGen = ++extraGen;
      }
      end |= END_EXTRA_GEN;
      a[7] = respondExtraGen;
    }
    a[6] = end;
    return neverIndexed === undefined ? c.respondHeldArgs(extra) : c.respondHeldArgs(extra, neverIndexed);
  }

  respondSpans(streamId: number, flat: Uint8Array | null, flatLen: number, flatPairs: number, head: Uint8Array | null, spans: Int32Array | null, nSpans: number, endStream: boolean, bodyAt?: number, bodyLen?: number): boolean {
    if (bodyAt !== undefined) return this.c.respondSpans(this.id, streamId, flat, flatLen, flatPairs, head, spans, nSpans, endStream, bodyAt, bodyLen);
    return this.c.respondSpans(this.id, streamId, flat, flatLen, flatPairs, head, spans, nSpans, endStream);
  }

  respondSpansTables(streamId: number, flatLen: number, flatPairs: number, nSpans: number, endStream: boolean, bodyAt?: number, bodyLen?: number): boolean {
    if (bodyAt !== undefined) return this.c.respondSpansTables(this.id, streamId, flatLen, flatPairs, nSpans, endStream, bodyAt, bodyLen);
    return this.c.respondSpansTables(this.id, streamId, flatLen, flatPairs, nSpans, endStream);
  }

  respondH1Head(streamId: number, flatLen: number, flatPairs: number, dropServer: boolean, endStream: boolean, bodyAt?: number, bodyLen?: number): boolean {
    const c = this.c;
    if (c.respondH1HeadArgs !== undefined) {
      // The numbers through memory (CALL_ARGS): a call without arguments to read.
      const a = CALL_ARGS;
      a[0] = this.id;
      a[1] = streamId;
      a[2] = flatLen;
      a[3] = flatPairs;
      a[4] = dropServer ? 1 : 0;
      a[5] = endStream ? 1 : 0;
      a[6] = bodyAt ?? -1;
      a[7] = bodyLen ?? 0;
      return c.respondH1HeadArgs();
    }
    if (bodyAt !== undefined) return this.c.respondH1Head(this.id, streamId, flatLen, flatPairs, dropServer, endStream, bodyAt, bodyLen);
    return this.c.respondH1Head(this.id, streamId, flatLen, flatPairs, dropServer, endStream);
  }

  request(headers: string | Uint8Array, pairs: number, endStream: boolean, byteLength?: number, neverIndexed?: string): number {
    if (neverIndexed !== undefined) return this.c.request(this.id, headers, pairs, endStream, byteLength, neverIndexed);
    if (byteLength !== undefined) return this.c.request(this.id, headers, pairs, endStream, byteLength);
    return this.c.request(this.id, headers, pairs, endStream);
  }

  requestRuns(method: string, path: string, authority: string, src: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string, fillId?: boolean): number {
    if (fillId) return this.c.requestRuns(this.id, method, path, authority, src, runs, nRuns, extra, pairs, endStream, neverIndexed, true);
    if (neverIndexed !== undefined) return this.c.requestRuns(this.id, method, path, authority, src, runs, nRuns, extra, pairs, endStream, neverIndexed);
    return this.c.requestRuns(this.id, method, path, authority, src, runs, nRuns, extra, pairs, endStream);
  }

  requestHeld(downSession: number, downStream: number, same: number, method: string, path: string, authority: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string, fillId?: boolean): number {
    const c = this.c;
    if (runs === null && c.requestHeldArgs !== undefined) {
      // The numbers through memory (CALL_ARGS), not as arguments: eight reads fewer.
      const a = CALL_ARGS;
      a[0] = this.id;
      a[1] = downSession;
      a[2] = downStream;
      let s = same;
      if (this.gens) {
        if (extra !== requestExtra) {
          requestExtra = extra;
          requestExtraGen = ++extraGen;
        }
        s |= SAME_EXTRA_GEN;
        a[8] = requestExtraGen;
      }
      a[3] = s;
      a[4] = nRuns;
      a[5] = pairs;
      a[6] = endStream ? 1 : 0;
      a[7] = fillId ? 1 : 0;
      return neverIndexed === undefined ? c.requestHeldArgs(method, path, authority, extra) : c.requestHeldArgs(method, path, authority, extra, neverIndexed);
    }
    if (fillId) return this.c.requestHeld(this.id, downSession, downStream, same, method, path, authority, runs, nRuns, extra, pairs, endStream, neverIndexed, true);
    if (neverIndexed !== undefined) return this.c.requestHeld(this.id, downSession, downStream, same, method, path, authority, runs, nRuns, extra, pairs, endStream, neverIndexed);
    return this.c.requestHeld(this.id, downSession, downStream, same, method, path, authority, runs, nRuns, extra, pairs, endStream);
  }

  data(streamId: number, chunk: Uint8Array | null, endStream: boolean): boolean {
    const c = this.c;
    if (c.dataArgs !== undefined) {
      const a = CALL_ARGS;
      a[0] = this.id;
      a[1] = streamId;
      a[2] = endStream ? 1 : 0;
      return c.dataArgs(chunk) as boolean;
    }
    return c.data(this.id, streamId, chunk, endStream);
  }

  dataAt(streamId: number, pool: Buffer, off: number, len: number, gen: number, endStream = false): boolean {
    // Only batches with pool numbers give one (poolGens()), and those come from an addon with dataArgs.
    const a = CALL_ARGS;
    a[0] = this.id;
    a[1] = streamId;
    a[2] = endStream ? DATA_FROM_POOL + 1 : DATA_FROM_POOL;
    a[3] = gen;
    a[4] = off;
    a[5] = len;
    const r = this.c.dataArgs!();
    // A handler made another batch in between, which started a new pool: the view after all.
    return r !== DATA_NOT_IN_POOL ? (r as boolean) : this.data(streamId, pool.subarray(off, off + len), endStream);
  }

  trailers(streamId: number, trailers: string | Uint8Array, pairs: number, byteLength?: number, neverIndexed?: string): void {
    const c = this.c;
    if (typeof trailers === 'string' && c.trailersArgs !== undefined) {
      const a = CALL_ARGS;
      a[0] = this.id;
      a[1] = streamId;
      a[2] = pairs;
      if (neverIndexed !== undefined) c.trailersArgs(trailers, neverIndexed);
      else c.trailersArgs(trailers);
      return;
    }
    if (neverIndexed !== undefined) this.c.trailers(this.id, streamId, trailers, pairs, byteLength, neverIndexed);
    else if (byteLength !== undefined) this.c.trailers(this.id, streamId, trailers, pairs, byteLength);
    else this.c.trailers(this.id, streamId, trailers, pairs);
  }

  rst(streamId: number, code: number): void {
    this.c.rst(this.id, streamId, code);
  }

  consume(streamId: number, bytes: number): void {
    this.c.consume(this.id, streamId, bytes);
  }

  close(): void {
    this.raw.close();
  }

  goaway(code: number): void {
    this.raw.goaway(code);
  }

  destroy(): void {
    this.raw.destroy();
  }

  stats(): ReturnType<NativeH2Session['stats']> {
    return this.raw.stats();
  }

  sid(): number {
    return this.id;
  }
}

/**
 * The added pairs of the last requestHeld and respondHeld through CALL_ARGS, and their numbers
 * (CALL_ARGS[8] with SAME_EXTRA_GEN in `same`, CALL_ARGS[7] with END_EXTRA_GEN in the endStream
 * slot; kSameExtraGen and kEndExtraGen in native/http2/session.cc): the addon appends the bytes
 * it read last under a number instead of reading the string again (~220 instructions each; the
 * usual added pairs repeat request after request). Each new string gets a new number, never 0.
 */
let requestExtra: string | null = null;
let requestExtraGen = 0;
let respondExtra: string | null = null;
let respondExtraGen = 0;
let extraGen = 0;
const SAME_EXTRA_GEN = 8;
const END_EXTRA_GEN = 2;
let extraGenKnown: boolean | null = null;
function extraGens(): boolean {
  return (extraGenKnown ??= (native() as unknown as { h2ExtraGen?: boolean }).h2ExtraGen === true);
}

/**
 * Whether a batch's sixth argument is the number of the addon's data pool its bytes are in
 * (addon flag h2DataPoolGen; its strings then start at the seventh): a DATA chunk taken at once
 * is then handed on as its offset and length (dataAt) where its user takes it so, with no view
 * made of it (~600 instructions: Buffer's subarray reads `.buffer` through a C++ builtin) nor
 * looked up again by the addon (~250).
 */
let poolGenKnown: boolean | null = null;
function poolGens(): boolean {
  return (poolGenKnown ??= (native() as unknown as { h2DataPoolGen?: boolean }).h2DataPoolGen === true);
}

/**
 * The field table of the flat list indexed last ("name\0value\0..."): per pair, from flatBase,
 * its name's end, its value's end (the list's length for the last value) and its FieldToken. One
 * list is read by several passes in one call (the request's fields, route matchers, then the
 * upstream request built from it), and each pass used to find every NUL again; indexOf was ~5%
 * of a gRPC request's instructions. A pass reads flatTab and flatBase right after flatIndex(),
 * before any other list is indexed.
 */
export let flatTab: Int32Array = new Int32Array(192);
/** Where the list's entries start in flatTab. */
export let flatBase = 0;
/** The table flatIndex fills for a list the addon gave none. */
let ownTab = flatTab;
let indexed: string | null = null;
let indexedPairs = 0;

/**
 * The addon's field tables (NativeH2SessionOptions.fields), one array for every session: a batch's
 * are read while it is handled, before any other batch can come. Every session made here passes
 * it, so the addon rewrites it (entry 0 at least) for each batch whose events come in the
 * session's own array; that is when handle() reads it.
 */
export const FIELD_TABLE = new Int32Array(4096);

/** Indexes `s` into flatTab unless it is the list indexed last; its pair count. */
export function flatIndex(s: string): number {
  if (s === indexed) return indexedPairs;
  const n = s.length;
  let t = ownTab;
  let k = 0;
  let i = 0;
  while (i < n) {
    const e = s.indexOf('\0', i);
    if (e < 0) break;
    let b = s.indexOf('\0', e + 1);
    if (b < 0) b = n;
    if (k + 3 > t.length) {
      const g = new Int32Array(t.length * 2);
      g.set(t);
      t = ownTab = g;
    }
    t[k] = e;
    t[k + 1] = b;
    t[k + 2] = fieldTokenOf(s, i, e, b);
    k += 3;
    i = b + 1;
  }
  flatTab = t;
  flatBase = 0;
  indexed = s;
  indexedPairs = k / 3;
  return indexedPairs;
}

/**
 * The list the addon delivered with the FIELD_TABLE record at `at` becomes the one indexed: its
 * entries are read where they are, not searched for. Where the next record starts.
 */
export function primeFlat(s: string, at: number): number {
  const pairs = FIELD_TABLE[at]!;
  flatTab = FIELD_TABLE;
  flatBase = at + 1;
  indexed = s;
  indexedPairs = pairs;
  primedLists++;
  return at + 1 + 3 * pairs;
}

/**
 * How many FIELD_TABLE records a batch brings (its header block events have them in order, from
 * entry 1): none when its events came in a new array (`fresh`), which means the addon did not
 * write the table. A batch that did rewrote it, so a list indexed from it is forgotten.
 */
function batchRecords(fresh: Uint32Array | null): number {
  if (fresh !== null) return 0;
  if (flatTab === FIELD_TABLE) indexed = null;
  return FIELD_TABLE[0]!;
}

/** Lists primeFlat() indexed from the addon's table (tests tell primed lists from searched ones). */
let primedLists = 0;

/** @internal */
export function flatPrimedCount(): number {
  return primedLists;
}

/** @internal The NUL offsets (2 per pair) and tokens flatIndex gives `s`: from the addon when primed, else found here. */
export function flatIndexOf(s: string): { nuls: number[]; toks: number[] } {
  const m = flatIndex(s);
  const nuls: number[] = [];
  const toks: number[] = [];
  for (let j = 0, r = flatBase; j < m; j++, r += 3) {
    nuls.push(flatTab[r]!, flatTab[r + 1]!);
    toks.push(flatTab[r + 2]!);
  }
  return { nuls, toks };
}

/** @internal Forgets the list indexed last (tests compare the addon's table with flatIndex's own). */
export function flatForget(): void {
  indexed = null;
  indexedPairs = 0;
}

/** The FieldToken of the field s[i, e) \0 s[e + 1, b) (as the addon gives it: TokenOf and OnHeader). */
export function fieldTokenOf(s: string, i: number, e: number, b: number): number {
  if (s.charCodeAt(i) === 58 /* : */) {
    switch (e - i) {
      case 5:
        return s.startsWith(':path', i) ? FieldToken.PATH : FieldToken.PSEUDO;
      case 7:
        return s.startsWith(':method', i) ? FieldToken.METHOD : s.startsWith(':scheme', i) ? FieldToken.SCHEME : s.startsWith(':status', i) ? FieldToken.STATUS : FieldToken.PSEUDO;
      case 10:
        return s.startsWith(':authority', i) ? FieldToken.AUTHORITY : FieldToken.PSEUDO;
      default:
        return FieldToken.PSEUDO;
    }
  }
  switch (e - i) {
    case 2:
      if (!s.startsWith('te', i)) return FieldToken.OTHER;
      return b - e - 1 === 8 && s.startsWith('trailers', e + 1) ? FieldToken.TE_TRAILERS : FieldToken.TE;
    case 4:
      return s.startsWith('host', i) ? FieldToken.HOST : s.startsWith('date', i) ? FieldToken.DATE : FieldToken.OTHER;
    case 6:
      return s.startsWith('cookie', i) ? FieldToken.COOKIE : s.startsWith('server', i) ? FieldToken.SERVER : FieldToken.OTHER;
    case 7:
      return s.startsWith('upgrade', i) ? FieldToken.UPGRADE : FieldToken.OTHER;
    case 10:
      return s.startsWith('connection', i) ? FieldToken.CONNECTION : s.startsWith('keep-alive', i) ? FieldToken.KEEP_ALIVE : FieldToken.OTHER;
    case 12:
      if (s.startsWith('content-type', i)) return s.startsWith('application/grpc', e + 1) ? FieldToken.GRPC_CONTENT_TYPE : FieldToken.CONTENT_TYPE;
      return s.startsWith('grpc-timeout', i) ? FieldToken.GRPC_TIMEOUT : s.startsWith('x-request-id', i) ? FieldToken.REQUEST_ID : FieldToken.OTHER;
    case 14:
      return s.startsWith('content-length', i) ? FieldToken.CONTENT_LENGTH : s.startsWith('http2-settings', i) ? FieldToken.HTTP2_SETTINGS : FieldToken.OTHER;
    case 15:
      return s.startsWith('x-forwarded-for', i) ? FieldToken.FORWARDED_FOR : FieldToken.OTHER;
    case 16:
      return s.startsWith('proxy-connection', i) ? FieldToken.PROXY_CONNECTION : FieldToken.OTHER;
    case 17:
      return s.startsWith('transfer-encoding', i) ? FieldToken.TRANSFER_ENCODING : s.startsWith('x-forwarded-proto', i) ? FieldToken.FORWARDED_PROTO : FieldToken.OTHER;
    case 21:
      return s.startsWith('x-envoy-original-path', i) ? FieldToken.ORIGINAL_PATH : FieldToken.OTHER;
    case 23:
      return s.startsWith('x-forwarded-client-cert', i) ? FieldToken.CLIENT_CERT : FieldToken.OTHER;
    default:
      return FieldToken.OTHER;
  }
}

/**
 * A response list's `:status` as a number. nghttp2 puts it first and lets only three digits
 * through (RFC 9113 §8.3.2), so the usual case reads them off the field table: flatGet would
 * compare the name and make a string for Number() (~450 instructions a gRPC request).
 */
export function flatStatus(s: string): number {
  const m = flatIndex(s);
  const t = flatTab;
  const r = flatBase;
  if (m > 0 && t[r + 2] === FieldToken.STATUS && t[r + 1]! - t[r]! === 4) {
    const a = t[r]! + 1;
    const d0 = s.charCodeAt(a) - 48;
    const d1 = s.charCodeAt(a + 1) - 48;
    const d2 = s.charCodeAt(a + 2) - 48;
    if (d0 >>> 0 <= 9 && d1 >>> 0 <= 9 && d2 >>> 0 <= 9) return d0 * 100 + d1 * 10 + d2;
  }
  return Number(flatGet(s, ':status', true));
}

/**
 * One field of a "name\0value\0..." list as headerObject() would hold it (repeats joined with
 * ", ", cookie with "; ", set-cookie an array), without building the object. `pseudo`: the name is
 * a pseudo-header, which appears at most once and only at the front (nghttp2 enforces both).
 */
export function flatGet(s: string, name: string, pseudo = false): string | string[] | undefined {
  const len = name.length;
  let out: string | string[] | undefined;
  const m = flatIndex(s);
  const t = flatTab;
  let i = 0;
  for (let j = 0, r = flatBase; j < m; j++, r += 3) {
    const a = t[r]!;
    const b = t[r + 1]!;
    if (a - i === len && s.startsWith(name, i)) {
      const v = s.slice(a + 1, b);
      if (pseudo) return v;
      if (out === undefined) out = name === 'set-cookie' ? [v] : v;
      else if (Array.isArray(out)) out.push(v);
      else out = `${out}${name === 'cookie' ? '; ' : ', '}${v}`;
    } else if (pseudo && s.charCodeAt(i) !== 58 /* : */) return undefined;
    i = b + 1;
  }
  return out;
}

/**
 * The header object of a "name\0value\0..." string from the addon (no trailing NUL), with
 * `neverIndexed` ("name\0name...", from a NEVER_INDEXED event) listed under NEVER_INDEXED.
 */
export function headerObject(s: string, neverIndexed?: string): H2Headers {
  const o = new HeaderBag();
  const m = flatIndex(s);
  const t = flatTab;
  let i = 0;
  for (let j = 0, r = flatBase; j < m; j++, r += 3) {
    const a = t[r]!;
    const b = t[r + 1]!;
    const k = nameAt(s, i, a);
    const v = s.slice(a + 1, b);
    i = b + 1;
    const prev = o[k];
    if (prev === undefined) o[k] = k === 'set-cookie' ? [v] : v;
    else if (Array.isArray(prev)) prev.push(v);
    else o[k] = `${prev}${k === 'cookie' ? '; ' : ', '}${v}`;
  }
  if (neverIndexed !== undefined) setNeverIndexed(o, neverIndexed);
  return o;
}

/**
 * NativeH2Stream's yes/no state, bits of one small integer (seven boolean fields were 56 bytes of
 * each stream; `closed` and `destroyed`, read through the H2DownStream interface, stay plain
 * fields). A const enum: its values are literals in the accessors below, which keeps them small
 * enough for V8 to inline wherever they are used (bin/strait.js, the small-function limit).
 */
const enum SF {
  REQ_ENDED = 1,
  RESPONDED = 2,
  RES_ENDED = 4,
  WAIT_TRAILERS = 8,
  TRAILERS_SENT = 16,
  PAUSED = 32,
  HELD_END = 64,
}

/** One request/response stream of a NativeH2Connection. */
export class NativeH2Stream {
  /** SF bits; read and written through the accessors below. */
  private bits = 0;
  /** The request side ended (END_STREAM seen, or held while paused). */
  private get reqEnded(): boolean { return (this.bits & SF.REQ_ENDED) !== 0; }
  private set reqEnded(v: boolean) { this.bits = v ? this.bits | SF.REQ_ENDED : this.bits & ~SF.REQ_ENDED; }
  /** respond() was called. */
  private get responded(): boolean { return (this.bits & SF.RESPONDED) !== 0; }
  private set responded(v: boolean) { this.bits = v ? this.bits | SF.RESPONDED : this.bits & ~SF.RESPONDED; }
  /** The response body was ended (end() or respond with endStream). */
  private get resEnded(): boolean { return (this.bits & SF.RES_ENDED) !== 0; }
  private set resEnded(v: boolean) { this.bits = v ? this.bits | SF.RES_ENDED : this.bits & ~SF.RES_ENDED; }
  private get waitTrailers(): boolean { return (this.bits & SF.WAIT_TRAILERS) !== 0; }
  private set waitTrailers(v: boolean) { this.bits = v ? this.bits | SF.WAIT_TRAILERS : this.bits & ~SF.WAIT_TRAILERS; }
  private get trailersSent(): boolean { return (this.bits & SF.TRAILERS_SENT) !== 0; }
  private set trailersSent(v: boolean) { this.bits = v ? this.bits | SF.TRAILERS_SENT : this.bits & ~SF.TRAILERS_SENT; }
  private get paused(): boolean { return (this.bits & SF.PAUSED) !== 0; }
  private set paused(v: boolean) { this.bits = v ? this.bits | SF.PAUSED : this.bits & ~SF.PAUSED; }
  private get heldEnd(): boolean { return (this.bits & SF.HELD_END) !== 0; }
  private set heldEnd(v: boolean) { this.bits = v ? this.bits | SF.HELD_END : this.bits & ~SF.HELD_END; }
  /** Request bytes that arrived while paused (at most one stream window: the peer is given no more). */
  private held: Buffer[] | null = null;
  private onData: Handler<[Buffer]> = null;
  /** 'dataAt' (this module's own): a chunk taken at once as an offset in a batch's pool (dataAt()). */
  private onDataAt: Handler<[Buffer, number, number, number]> = null;
  private onEnd: Handler<[]> = null;
  private onClose: Handler<[]> = null;
  private onWantTrailers: Handler<[]> = null;
  private onDrain: (() => void) | null = null;
  /** close() was called or the stream is gone. */
  closed = false;
  /** The stream is gone (its close handler ran). */
  destroyed = false;
  /** The RST_STREAM code it ended with (0 for a clean end); undefined while open. */
  rstCode: number | undefined = undefined;

  constructor(
    readonly session: NativeH2Connection,
    readonly id: number,
  ) {}

  /** node:http2's listener names; 'error' never fires here (failures reach 'close'). */
  on(event: string, fn: (this: NativeH2Stream, ...a: any[]) => void): this {
    switch (event) {
      case 'data':
        this.onData = fn;
        break;
      case 'dataAt':
        this.onDataAt = fn;
        break;
      case 'end':
        this.onEnd = fn;
        break;
      case 'close':
        this.onClose = fn;
        break;
      case 'wantTrailers':
        this.onWantTrailers = fn;
        break;
      case 'drain':
        this.onDrain = fn as () => void;
        break;
      default:
        break;
    }
    return this;
  }

  /** Only 'drain' is used once; every handler here runs at most once anyway. */
  once(event: string, fn: (this: NativeH2Stream, ...a: any[]) => void): this {
    return this.on(event, fn);
  }

  /** The checks and state every respond variant shares; returns whether the response ends here. */
  private startResponse(opts?: { endStream?: boolean; waitForTrailers?: boolean }): boolean {
    if (this.closed) throw new Error('The stream has been destroyed');
    if (this.responded) throw new Error('Response has already been initiated');
    this.responded = true;
    const end = opts?.endStream === true;
    this.waitTrailers = !end && opts?.waitForTrailers === true;
    if (end) this.resEnded = true;
    return end;
  }

  /** Fields listed under NEVER_INDEXED go out as never-indexed literals. */
  respond(headers: H2Headers, opts?: { endStream?: boolean; waitForTrailers?: boolean }): void {
    const end = this.startResponse(opts);
    const flat = flatten(headers, true);
    const never = neverIndexedOf(headers);
    if (never === undefined) this.session.h.respond(this.id, flat, flatPairs, end);
    else this.session.h.respond(this.id, flat, flatPairs, end, undefined, undefined, never);
  }

  /**
   * respond() with the list already written in flat form (pseudo-headers first, `date` included):
   * the addon copies `w`'s bytes during the call.
   */
  respondFlat(w: FlatWriter, opts?: { endStream?: boolean; waitForTrailers?: boolean }): void {
    const end = this.startResponse(opts);
    this.session.h.respond(this.id, w.buf, w.pairs, end, w.len);
  }

  /**
   * respondFlat() for an HTTP/1 upstream's head: `w` holds :status and the pairs the proxy adds,
   * `spans` the kept fields as positions in the head's bytes `head` (writeH1ResponseSpans in
   * h2_session.ts). With `bodyLen` 0 or more, head[bodyAt, bodyAt + bodyLen) is the whole body
   * (a response read in one piece): the whole response goes in the same call.
   */
  respondSpans(w: FlatWriter, head: Uint8Array, spans: { buf: Int32Array; n: number }, bodyAt: number, bodyLen: number, endStream: boolean): void {
    // The shared writer, span list and reader arena go as null: the addon holds them (setTable).
    const flat = tableArg(TableSlot.FLAT, w.buf);
    const h = tableArg(TableSlot.ARENA, head);
    const sp = tableArg(TableSlot.SPANS, spans.buf);
    const s = this.session.h;
    // All three registered (the usual case): the call that does not take them.
    const tables = flat === null && h === null && sp === null;
    if (bodyLen >= 0) {
      this.startResponse();
      this.resEnded = true;
      if (tables) s.respondSpansTables(this.id, w.len, w.pairs, spans.n, false, bodyAt, bodyLen);
      else s.respondSpans(this.id, flat, w.len, w.pairs, h, sp, spans.n, false, bodyAt, bodyLen);
      return;
    }
    const end = this.startResponse({ endStream });
    if (tables) s.respondSpansTables(this.id, w.len, w.pairs, spans.n, end);
    else s.respondSpans(this.id, flat, w.len, w.pairs, h, sp, spans.n, end);
  }

  /**
   * respondSpans() with the spans made by the addon: the head is the one the native HTTP/1 parser
   * reported last, in the reader's arena (headFlagsInTables() said so), and `w` the shared writer
   * holding :status and the pairs the proxy adds; `dropServer`: the head's server fields stay out.
   */
  respondH1Head(w: FlatWriter, dropServer: boolean, bodyAt: number, bodyLen: number, endStream: boolean): void {
    const s = this.session.h;
    if (bodyLen >= 0) {
      this.startResponse();
      this.resEnded = true;
      s.respondH1Head(this.id, w.len, w.pairs, dropServer, false, bodyAt, bodyLen);
      return;
    }
    s.respondH1Head(this.id, w.len, w.pairs, dropServer, this.startResponse({ endStream }));
  }

  /** respond() and end(body) in one addon call (a local reply: direct responses, errors). */
  respondWhole(headers: H2Headers, body: Buffer): void {
    this.startResponse();
    this.resEnded = true;
    this.session.h.respond(this.id, flatten(headers, true), flatPairs, false, undefined, body, neverIndexedOf(headers));
  }

  /**
   * respondFlat() for a response whose whole body is at hand: HEADERS, `body` and END_STREAM
   * from one addon call instead of respond + write + end.
   */
  respondFlatWhole(w: FlatWriter, body: Buffer): void {
    this.startResponse();
    this.resEnded = true;
    this.session.h.respond(this.id, w.buf, w.pairs, false, w.len, body);
  }

  /**
   * respondFlat() with the list as a flat string ("name\0value\0...", `date` included) and its pair
   * count; `neverIndexed` ("name\0name...") as the upstream sent them, when it did.
   */
  respondFlatString(flat: string, pairs: number, opts?: { endStream?: boolean; waitForTrailers?: boolean }, neverIndexed?: string): void {
    const end = this.startResponse(opts);
    if (neverIndexed === undefined) this.session.h.respond(this.id, flat, pairs, end);
    else this.session.h.respond(this.id, flat, pairs, end, undefined, undefined, neverIndexed);
  }

  /**
   * respondFlatString() with the list in parts, which the addon joins: the [start, end) runs of
   * `src` (a list the addon gave, such as an upstream's head) and `extra` (NUL-terminated pairs).
   * `upStream` (non-zero) of the client session numbered `upSession`: `src` is that stream's
   * response head, which the addon then cuts the runs from itself (runs in RUNS_TABLE only).
   */
  respondRuns(src: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, opts?: { endStream?: boolean; waitForTrailers?: boolean }, neverIndexed?: string, upSession = 0, upStream = 0): void {
    const end = this.startResponse(opts);
    const h = this.session.h;
    if (upStream !== 0 && runs === null && h.respondHeld !== undefined && h.respondHeld(this.id, upSession, upStream, nRuns, extra, pairs, end, neverIndexed) !== RESPONSE_NOT_HELD) return;
    if (neverIndexed === undefined) h.respondRuns(this.id, src, runs, nRuns, extra, pairs, end);
    else h.respondRuns(this.id, src, runs, nRuns, extra, pairs, end, neverIndexed);
  }

  /** false: the stream holds its high-water mark; 'drain' follows. */
  write(chunk: Buffer): boolean {
    if (this.closed || this.resEnded) return true;
    return this.session.h.data(this.id, chunk, false);
  }

  /** write() for `len` bytes at `off` of a batch's pool numbered `gen` (NativeH2Session.dataAt). */
  writeAt(pool: Buffer, off: number, len: number, gen: number): boolean {
    if (this.closed || this.resEnded) return true;
    const h = this.session.h;
    return h.dataAt !== undefined ? h.dataAt(this.id, pool, off, len, gen) : h.data(this.id, pool.subarray(off, off + len), false);
  }

  end(chunk?: Buffer): void {
    if (this.closed || this.resEnded) return;
    this.resEnded = true;
    const h = this.session.h;
    if (this.waitTrailers && this.onWantTrailers) {
      if (chunk?.length) h.data(this.id, chunk, false);
      // node:http2 asks for trailers once the body is out; here the body is queued, which is
      // the same order on the wire (trailers go after the last DATA frame).
      this.onWantTrailers.call(this);
      if (!this.trailersSent && !this.closed) h.data(this.id, null, true);
      return;
    }
    h.data(this.id, chunk?.length ? chunk : null, true);
  }

  /** Fields listed under NEVER_INDEXED go out as never-indexed literals. */
  sendTrailers(t: H2Headers): void {
    if (this.closed || this.trailersSent) return;
    this.trailersSent = true;
    const flat = flatten(t, false);
    const never = neverIndexedOf(t);
    if (never === undefined) this.session.h.trailers(this.id, flat, flatPairs);
    else this.session.h.trailers(this.id, flat, flatPairs, undefined, never);
  }

  /**
   * sendTrailers() with the list already flat ("name\0value\0...") and its pair count (0: none);
   * `neverIndexed` ("name\0name...") as the upstream sent them, when it did.
   */
  sendTrailersFlat(flat: string, pairs: number, neverIndexed?: string): void {
    if (this.closed || this.trailersSent) return;
    this.trailersSent = true;
    if (neverIndexed === undefined) this.session.h.trailers(this.id, flat, pairs);
    else this.session.h.trailers(this.id, flat, pairs, undefined, neverIndexed);
  }

  /**
   * sendTrailersFlat() with the list written into `w` (its bytes are copied during the call);
   * `neverIndexed` ("name\0name...") as the upstream sent them, when it did.
   */
  sendTrailersBytes(w: FlatWriter, neverIndexed?: string): void {
    if (this.closed || this.trailersSent) return;
    this.trailersSent = true;
    if (neverIndexed === undefined) this.session.h.trailers(this.id, w.buf, w.pairs, w.len);
    else this.session.h.trailers(this.id, w.buf, w.pairs, w.len, neverIndexed);
  }

  /** RST_STREAM with `code` (NO_ERROR by default). The close handler runs once it is sent. */
  close(code: number = NO_ERROR): void {
    if (this.closed) return;
    this.closed = true;
    this.rstCode = code;
    this.session.h.rst(this.id, code);
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (!this.paused) return this;
    this.paused = false;
    const held = this.held;
    if (held) {
      // Handed on in order; the handler may pause again, and what is left waits for the next resume.
      while (held.length && !this.paused && !this.destroyed) {
        const d = held.shift()!;
        // The peer's window grows only now that the bytes are taken: a paused stream holds at most one window.
        this.session.h.consume(this.id, d.length);
        this.onData?.call(this, d);
      }
      if (held.length === 0) this.held = null;
    }
    if (this.heldEnd && !this.paused && this.held === null && !this.destroyed) {
      this.heldEnd = false;
      this.onEnd?.call(this);
    }
    return this;
  }

  /**
   * @internal A chunk from the batch; true when it is held (paused), so not taken yet: the addon
   * then leaves its window closed until resume() consumes it. Taken chunks are consumed by the
   * addon once the batch's call returns.
   */
  data(d: Buffer): boolean {
    if (this.paused || this.held !== null) {
      (this.held ??= []).push(d);
      return true;
    }
    this.onData?.call(this, d);
    return false;
  }

  /**
   * @internal data() for `len` bytes at `off` in the batch's Buffer `pool`, the addon's data pool
   * numbered `gen`: handed on so to a 'dataAt' handler, else (or when held) as a view.
   */
  dataAt(pool: Buffer, off: number, len: number, gen: number): boolean {
    const h = this.onDataAt;
    if (h === null || this.paused || this.held !== null) return this.data(pool.subarray(off, off + len));
    h.call(this, pool, off, len, gen);
    return false;
  }

  /** @internal */
  ended(): void {
    if (this.reqEnded) return;
    this.reqEnded = true;
    if (this.paused || this.held !== null) {
      this.heldEnd = true;
      return;
    }
    this.onEnd?.call(this);
  }

  /** @internal */
  drained(): void {
    const f = this.onDrain;
    this.onDrain = null;
    f?.();
  }

  /** @internal the stream is gone (`code` 0: both sides ended cleanly). */
  gone(code: number): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closed = true;
    this.rstCode ??= code;
    this.held = null;
    this.onClose?.call(this);
  }
}

/**
 * A request's last DATA chunk, while it is handed out: the batch holds the END of the same stream
 * as its very next event. A consumer that forwards the body (an upstream HTTP/2 try) may keep the
 * chunk (holdFinal) and send it with END_STREAM when the END arrives, one addon call where a
 * chunk and an end took two.
 */
let finalChunk = false;
/** The consumer keeping a final chunk: told to send it as it is if the END did not take it. */
let heldFinal: FinalChunkHolder | null = null;

export interface FinalChunkHolder {
  /** Sends the chunk it kept as a plain DATA (its END was not delivered at once: a paused stream). */
  flushFinal(): void;
}

/** Whether the chunk being handed out is the request's last, its END next in the same batch. */
export function chunkIsFinal(): boolean {
  return finalChunk;
}

/**
 * `h` keeps the final chunk (chunkIsFinal()) until the END, or until flushFinal(). One holder at
 * a time: another one (a chunk written to two places) has the first send its chunk now.
 */
export function holdFinal(h: FinalChunkHolder): void {
  const prev = heldFinal;
  heldFinal = h;
  if (prev !== null && prev !== h) prev.flushFinal();
}

/** `h` sent what it kept (its end came): nothing to flush. */
export function releaseFinal(h: FinalChunkHolder): void {
  if (heldFinal === h) heldFinal = null;
}

/**
 * One downstream HTTP/2 connection on the addon. Owns the fd given to it; `socket` stands in
 * for node's session.socket as the key under which the connection's addresses are registered
 * (rbac/identity.ts registerDownstream).
 */
export class NativeH2Connection {
  readonly h: NativeH2Session;
  private readonly streams = new StreamSlots<NativeH2Stream>();
  /** A key object only (never read from): see the class comment. */
  readonly socket: object = {};
  private ended = false;
  private closing = false;
  /** A NEVER_INDEXED event's names, for the HEADERS event right after it. */
  private never: string | undefined = undefined;
  /** The last request head the addon gave as a string (KEPT_LIST names it). */
  private lastHead = '';
  /**
   * The request list of the HEADERS event being dispatched is lastHead again, the same string
   * (the addon found its bytes unchanged: KEPT_LIST).
   */
  listRepeated = false;
  /** The owner's: what it took from the connection's last request list (h2_session.ts RequestListScan). */
  listMemo: object | null = null;

  constructor(
    fd: number,
    settings: NativeH2Settings,
    initial: Buffer | null,
    private readonly handlers: NativeH2Handlers,
  ) {
    const b = native();
    if (!b.H2Session) throw new Error('the native addon has no H2Session: rebuild it (npm run build:native)');
    const opts: NativeH2SessionOptions = {
      maxConcurrentStreams: settings.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
      initialWindowSize: settings.initialWindowSize ?? 65535,
      maxHeaderListSize: settings.maxHeaderListSize,
      maxHeaderPairs: settings.maxHeaderPairs,
      highWaterMark: settings.highWaterMark ?? 1024 * 1024,
      streamHighWaterMark: settings.streamHighWaterMark ?? 64 * 1024,
      idleTimeoutMs: settings.idleTimeoutMs ?? 0,
    };
    opts.events = EVENTS;
    opts.fields = FIELD_TABLE;
    this.h = new NumberedH2Session(
      new b.H2Session(fd, opts, initial, poolGens()
        ? (n, objs, data, fresh, base, gen, ...strings) => this.onEvents(n, objs ?? strings, data, fresh, base, gen)
        : (((n: number, objs: string[] | null, data: Buffer | null, fresh: Uint32Array | null, base: number, ...strings: string[]) => this.onEvents(n, objs ?? strings, data, fresh, base, 0)) as unknown as NativeH2EventsHandler)),
      b.H2Session.calls,
    );
  }

  /** Graceful: GOAWAY, and the end once the streams already taken are done. */
  close(): void {
    if (this.ended || this.closing) return;
    this.closing = true;
    this.h.close();
  }

  /** Ends now: every open stream's close handler runs, then onEnd(LOCAL), before this returns. */
  destroy(): void {
    if (!this.ended) this.h.destroy();
  }

  get isClosing(): boolean {
    return this.closing;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  private onEvents(n: number, objs: string[] | null, data: Buffer | null, fresh: Uint32Array | null, base: number, gen: number): void {
    // One clock read for the batch (clock.ts): each exchange read it up to four times.
    const clock = enterBatch();
    try {
      this.handle(n, objs, data, fresh, base, gen);
    } finally {
      leaveBatch(clock);
    }
  }

  private handle(n: number, objs: string[] | null, data: Buffer | null, fresh: Uint32Array | null, base: number, gen: number): void {
    const ev = fresh ?? EVENTS;
    let off = base;
    // The header blocks' field tables, one record per HEADERS event in order (see FIELD_TABLE).
    let recs = batchRecords(fresh);
    let at = 1;
    for (let i = 0; i < 3 * n; i += 3) {
      const kind = ev[i]!;
      const p = ev[i + 2]!;
      // A handler destroyed the connection (its end came in a batch of its own): the rest of
      // this one belongs to streams that are gone.
      if (this.ended) break;
      let list: string | undefined;
      if (kind === H2Event.HEADERS || kind === H2Event.HEADERS_END) {
        // Every request head given as a string is kept (the addon compares the next one with
        // its bytes), whether or not a stream takes it.
        this.listRepeated = p === KEPT_LIST;
        if (p !== KEPT_LIST) list = this.lastHead = objs![p]!;
        else list = this.lastHead;
        if (recs > 0) {
          recs--;
          at = primeFlat(list, at);
        }
      }
      try {
        if (kind === H2Event.DATA) {
          // The batch's bytes, from `base` in a Buffer shared with other batches (8 KiB, or the
          // batch's own when larger), as offsets there when it is a numbered pool (dataAt), else
          // as views: whoever keeps a view keeps that Buffer alive. A zeroed length tells the
          // addon the chunk is held, not taken: no window for it yet.
          const s = this.streams.get(ev[i + 1]!);
          const from = off;
          off += p;
          finalChunk = i + 3 < 3 * n && ev[i + 3] === H2Event.END && ev[i + 4] === ev[i + 1];
          try {
            if (s && (gen !== 0 ? s.dataAt(data!, from, p, gen) : s.data(data!.subarray(from, from + p)))) ev[i + 2] = 0;
          } finally {
            finalChunk = false;
          }
        } else {
          this.dispatch(kind, ev[i + 1]!, list !== undefined ? list : kind === H2Event.NEVER_INDEXED ? objs![p]! : p);
          // A final chunk its END did not take (the stream paused, the exchange not forwarding
          // the end yet) goes as it is.
          if (heldFinal !== null) {
            const h = heldFinal;
            heldFinal = null;
            h.flushFinal();
          }
        }
      } catch (err) {
        // A handler's bug costs its stream, never the rest of the batch (other streams' events)
        // nor the process.
        log.error({ err: (err as Error)?.stack ?? String(err) }, 'native HTTP/2 session: a stream handler threw');
        const s = this.streams.get(ev[i + 1]!);
        if (s && !s.closed) s.close(INTERNAL_ERROR);
      }
    }
    // The batch ended (or its connection did) between a final chunk and its END.
    if (heldFinal !== null) {
      const h = heldFinal;
      heldFinal = null;
      h.flushFinal();
    }
  }

  private dispatch(kind: number, id: number, payload: string | number): void {
    switch (kind) {
      case H2Event.NEVER_INDEXED:
        this.never = payload as string;
        break;
      case H2Event.HEADERS:
      case H2Event.HEADERS_END: {
        const s = new NativeH2Stream(this, id);
        this.streams.set(id, s);
        const hs = this.handlers;
        const never = this.never;
        if (never !== undefined) this.never = undefined;
        if (hs.onStreamFlat !== undefined) hs.onStreamFlat(s, payload as string, kind === H2Event.HEADERS_END, never);
        else hs.onStream(s, headerObject(payload as string, never), kind === H2Event.HEADERS_END);
        break;
      }
      case H2Event.END:
        this.streams.get(id)?.ended();
        break;
      case H2Event.CLOSE: {
        const s = this.streams.get(id);
        if (s) {
          this.streams.delete(id);
          s.gone(payload as number);
        }
        break;
      }
      case H2Event.DRAIN:
        this.streams.get(id)?.drained();
        break;
      case H2Event.GOAWAY:
        // The peer opens no new streams; those it has go on. Nothing to do until it closes.
        break;
      case H2Event.IDLE:
        this.handlers.onIdle();
        break;
      case H2Event.SESSION_END:
        this.end(payload as H2SessionEnd);
        break;
    }
  }

  private end(reason: H2SessionEnd): void {
    if (this.ended) return;
    this.ended = true;
    const open: NativeH2Stream[] = [];
    this.streams.forEach((s) => open.push(s));
    for (const s of open) {
      this.streams.delete(s.id);
      s.gone(CANCEL);
    }
    this.handlers.onEnd(reason);
  }
}

// ---- client mode: upstream connections (src/upstream/http2_pool.ts) ----

/**
 * The owner of one client stream (an upstream try), called straight from the event batch: no
 * stream object, no emitter. DATA is handed on as it arrives; a chunk the owner takes at once
 * has its window given back by the addon after the batch, one it holds (returns true) only when
 * the owner calls `consume()` for it, which is what lets the peer send more (end-to-end flow
 * control).
 */
export interface NativeH2ClientStreamUser {
  /** The final response head (1xx answers never reach here); `endStream`: no body follows. */
  h2Headers(headers: H2Headers, endStream: boolean): void;
  /**
   * Optional, in place of h2Headers: the head as the addon's flat list (`:status` first, no
   * trailing NUL); `neverIndexed` ("name\0name...") only when the peer sent any field so (h2Headers
   * finds them on the object under NEVER_INDEXED).
   */
  h2HeadersFlat?(flat: string, endStream: boolean, neverIndexed?: string): void;
  /** true: held, not taken; the owner calls `h.consume(id, d.length)` when it takes it. */
  h2Data(d: Buffer): boolean;
  /**
   * Optional, in place of h2Data: the chunk as `len` bytes at `off` in `pool`, the batch's Buffer,
   * whose addon data pool number is `gen` (NativeH2Session.dataAt takes the four as they are).
   * Same answer as h2Data's; a chunk it holds it makes a view of.
   */
  h2DataAt?(pool: Buffer, off: number, len: number, gen: number): boolean;
  h2Trailers(t: H2Headers): void;
  /** Optional, in place of h2Trailers: the trailers as the addon's flat list (no trailing NUL); `neverIndexed` as h2HeadersFlat's. */
  h2TrailersFlat?(flat: string, neverIndexed?: string): void;
  /** The response ended (after its last DATA or its trailers). */
  h2End(): void;
  /** The stream is gone: 0 once both sides ended cleanly, else the RST_STREAM code. Last call. */
  h2Close(code: number): void;
  /** The request body queued below the stream's high-water mark again. */
  h2Drain(): void;
}

/** What a client connection tells its pool. */
export interface NativeH2ClientHandlers {
  /** The peer's SETTINGS arrived; its stream limit (2^32-1 when it sets none). */
  onSettings(maxConcurrentStreams: number): void;
  /** GOAWAY: streams above `lastStreamId` are closed with REFUSED_STREAM right after this. */
  onGoaway(lastStreamId: number, code: number): void;
  /** The connection is gone; every stream has had h2Close already. */
  onEnd(reason: H2SessionEnd): void;
}

export interface NativeH2ClientSettings {
  initialWindowSize?: number;
  maxHeaderListSize?: number;
  maxHeaderPairs?: number;
  highWaterMark?: number;
  streamHighWaterMark?: number;
}

/**
 * One upstream HTTP/2 (h2c) connection on the addon: owns a connected fd (from the addon's
 * connect()). Requests are flattened once into the "name\0value\0..." form the addon takes.
 */
export class NativeH2ClientConnection {
  readonly h: NativeH2Session;
  private readonly streams = new StreamSlots<NativeH2ClientStreamUser>();
  private ended = false;
  private closing = false;
  /** A NEVER_INDEXED event's names, for the HEADERS or TRAILERS event right after it. */
  private never: string | undefined = undefined;
  /** The last response head and trailers the addon gave as strings (KEPT_LIST names them). */
  private lastHead = '';
  private lastTrailers = '';

  constructor(
    fd: number,
    settings: NativeH2ClientSettings,
    private readonly handlers: NativeH2ClientHandlers,
  ) {
    const b = native();
    if (!b.H2Session) throw new Error('the native addon has no H2Session: rebuild it (npm run build:native)');
    const opts: NativeH2SessionOptions = {
      // Only bounds pushed streams, which a client refuses (ENABLE_PUSH 0).
      maxConcurrentStreams: 100,
      initialWindowSize: settings.initialWindowSize ?? 65535,
      // node:http2's client defaults: 64 KiB of header list, 128 fields.
      maxHeaderListSize: settings.maxHeaderListSize ?? 65535,
      maxHeaderPairs: settings.maxHeaderPairs ?? 128,
      highWaterMark: settings.highWaterMark ?? 1024 * 1024,
      streamHighWaterMark: settings.streamHighWaterMark ?? 64 * 1024,
      idleTimeoutMs: 0,
      client: true,
    };
    opts.events = EVENTS;
    opts.fields = FIELD_TABLE;
    this.h = new NumberedH2Session(
      new b.H2Session(fd, opts, null, poolGens()
        ? (n, objs, data, fresh, base, gen, ...strings) => this.onEvents(n, objs ?? strings, data, fresh, base, gen)
        : (((n: number, objs: string[] | null, data: Buffer | null, fresh: Uint32Array | null, base: number, ...strings: string[]) => this.onEvents(n, objs ?? strings, data, fresh, base, 0)) as unknown as NativeH2EventsHandler)),
      b.H2Session.calls,
    );
  }

  /**
   * Opens a stream for `user`; its id, or 0 when the connection takes no new stream. Fields listed
   * under NEVER_INDEXED go out as never-indexed literals.
   */
  request(headers: H2Headers, endStream: boolean, user: NativeH2ClientStreamUser): number {
    if (this.ended || this.closing) return 0;
    const flat = flatten(headers, false);
    const never = neverIndexedOf(headers);
    const id = never === undefined ? this.h.request(flat, flatPairs, endStream) : this.h.request(flat, flatPairs, endStream, undefined, never);
    if (id <= 0) return 0;
    this.streams.set(id, user);
    return id;
  }

  /**
   * request() with the list already flat ("name\0value\0...", pseudo-headers first) and its pair
   * count; `neverIndexed` ("name\0name...") as the downstream sent them, when it did.
   */
  requestFlat(flat: string, pairs: number, endStream: boolean, user: NativeH2ClientStreamUser, neverIndexed?: string): number {
    if (this.ended || this.closing) return 0;
    const id = neverIndexed === undefined ? this.h.request(flat, pairs, endStream) : this.h.request(flat, pairs, endStream, undefined, neverIndexed);
    if (id <= 0) return 0;
    this.streams.set(id, user);
    return id;
  }

  /**
   * requestFlat() with the list in parts (FlatRequest's in upstream_try.ts), which the addon
   * joins: a list joined here would be a concatenated string V8 copies once more to hand over.
   */
  requestRuns(method: string, path: string, authority: string, src: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, user: NativeH2ClientStreamUser, neverIndexed?: string, fillId?: boolean): number {
    if (this.ended || this.closing) return 0;
    const h = this.h;
    const id = h.requestRuns(method, path, authority, src, runs, nRuns, extra, pairs, endStream, neverIndexed, fillId);
    if (id <= 0) return 0;
    this.streams.set(id, user);
    return id;
  }

  /**
   * requestRuns() for a request still held by the native downstream stream `downStream` of the
   * session numbered `downSession` (requestHeld in native/http2/session.cc). REQUEST_NOT_HELD
   * when it is not: the caller then uses requestRuns().
   */
  requestHeld(downSession: number, downStream: number, same: number, method: string, path: string, authority: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, user: NativeH2ClientStreamUser, neverIndexed?: string, fillId?: boolean): number {
    if (this.ended || this.closing) return 0;
    const h = this.h;
    const id = h.requestHeld(downSession, downStream, same, method, path, authority, runs, nRuns, extra, pairs, endStream, neverIndexed, fillId);
    if (id === REQUEST_NOT_HELD) return id;
    if (id <= 0) return 0;
    this.streams.set(id, user);
    return id;
  }

  get isClosing(): boolean {
    return this.closing || this.ended;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /** Graceful: no new stream; the end once the open ones are done. */
  close(): void {
    if (this.ended || this.closing) return;
    this.closing = true;
    this.h.close();
  }

  destroy(): void {
    if (!this.ended) this.h.destroy();
  }

  private onEvents(n: number, objs: string[] | null, data: Buffer | null, fresh: Uint32Array | null, base: number, gen: number): void {
    // As on the server side: one clock read for the batch.
    const clock = enterBatch();
    try {
      this.handle(n, objs, data, fresh, base, gen);
    } finally {
      leaveBatch(clock);
    }
  }

  private handle(n: number, objs: string[] | null, data: Buffer | null, fresh: Uint32Array | null, base: number, gen: number): void {
    const ev = fresh ?? EVENTS;
    let off = base;
    let recs = batchRecords(fresh);
    let at = 1;
    for (let i = 0; i < 3 * n; i += 3) {
      if (this.ended) break;
      const kind = ev[i]!;
      const id = ev[i + 1]!;
      const p = ev[i + 2]!;
      let list: string | undefined;
      if (kind === H2Event.HEADERS || kind === H2Event.HEADERS_END || kind === H2Event.TRAILERS) {
        // Every list given as a string is kept (the addon compares the next one with its bytes),
        // whether or not a stream still takes it.
        if (p !== KEPT_LIST) {
          list = objs![p]!;
          if (kind === H2Event.TRAILERS) this.lastTrailers = list;
          else this.lastHead = list;
        } else list = kind === H2Event.TRAILERS ? this.lastTrailers : this.lastHead;
        if (recs > 0) {
          recs--;
          at = primeFlat(list, at);
        }
      }
      try {
        if (kind === H2Event.DATA) {
          const from = off;
          off += p;
          // A stream nobody tracks any more still gets its window back (the slot stays).
          const u = this.streams.get(id);
          if (u && (gen !== 0 && u.h2DataAt !== undefined ? u.h2DataAt(data!, from, p, gen) : u.h2Data(data!.subarray(from, from + p)))) ev[i + 2] = 0;
        } else {
          this.dispatch(kind, id, list !== undefined ? list : kind === H2Event.NEVER_INDEXED ? objs![p]! : p);
        }
      } catch (err) {
        // As on the server side: a handler's bug costs its stream only.
        log.error({ err: (err as Error)?.stack ?? String(err) }, 'native HTTP/2 client session: a stream handler threw');
        if (id > 0 && this.streams.get(id) && !this.ended) this.h.rst(id, INTERNAL_ERROR);
      }
    }
  }

  private dispatch(kind: number, id: number, payload: string | number): void {
    switch (kind) {
      case H2Event.NEVER_INDEXED:
        this.never = payload as string;
        break;
      case H2Event.HEADERS:
      case H2Event.HEADERS_END: {
        const never = this.never;
        if (never !== undefined) this.never = undefined;
        const u = this.streams.get(id);
        if (u === undefined) break;
        if (u.h2HeadersFlat !== undefined) u.h2HeadersFlat(payload as string, kind === H2Event.HEADERS_END, never);
        else u.h2Headers(headerObject(payload as string, never), kind === H2Event.HEADERS_END);
        break;
      }
      case H2Event.TRAILERS: {
        const never = this.never;
        if (never !== undefined) this.never = undefined;
        const u = this.streams.get(id);
        if (u === undefined) break;
        if (u.h2TrailersFlat !== undefined) u.h2TrailersFlat(payload as string, never);
        else u.h2Trailers(headerObject(payload as string, never));
        break;
      }
      case H2Event.END:
        this.streams.get(id)?.h2End();
        break;
      case H2Event.CLOSE: {
        const u = this.streams.get(id);
        if (u) {
          this.streams.delete(id);
          u.h2Close(payload as number);
        }
        break;
      }
      case H2Event.DRAIN:
        this.streams.get(id)?.h2Drain();
        break;
      case H2Event.GOAWAY:
        this.closing = true;
        this.handlers.onGoaway(id, payload as number);
        break;
      case H2Event.SETTINGS:
        this.handlers.onSettings(payload as number);
        break;
      case H2Event.SESSION_END:
        this.end(payload as H2SessionEnd);
        break;
    }
  }

  private end(reason: H2SessionEnd): void {
    if (this.ended) return;
    this.ended = true;
    const open: [number, NativeH2ClientStreamUser][] = [];
    this.streams.forEach((u, id) => open.push([id, u]));
    for (const [id, u] of open) {
      this.streams.delete(id);
      u.h2Close(CANCEL);
    }
    this.handlers.onEnd(reason);
  }
}
