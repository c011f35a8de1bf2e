import { AsyncResource } from 'node:async_hooks';
import http2 from 'node:http2';
import { copyOut } from '../../../protocols/http1/batch_reader.js';
import { BODY_ERROR, BodyFramer, BodyMode } from '../../../protocols/http1/body.js';
import { DEFAULT_LIMITS, responseHasNoBody, wantsKeepAlive } from '../../../protocols/http1/decoder.js';
import { parseResponseHead } from '../../../protocols/http1/parser.js';
import { F, HeadStatus, type MessageHead } from '../../../protocols/http1/types.js';
import type { Host } from '../../../upstream/host.js';
import { drainResponse } from '../../../upstream/http1_drain.js';
import type { Http1ClusterPools, Http1ConnUser, Http1HostPool, Http1UpstreamConn } from '../../../upstream/http1_pool.js';
import type { H2UpstreamSession, Http2ClusterPools } from '../../../upstream/http2_pool.js';
import { chunkIsFinal, flatStatus, headerObject, holdFinal, NativeH2ClientConnection, releaseFinal, setNeverIndexed, type FinalChunkHolder, type H2Headers, type NativeH2ClientStreamUser } from '../../../protocols/http2/native_session.js';
import type { HttpRetryPolicy } from '../../../router/http_route_table.js';
import { CALL_ARGS, loadNative, REQUEST_NOT_HELD, RUNS_TABLE } from '../../../native.js';
import { HEAD_NOT_HELD, HEAD_NOT_SENT } from '../../../protocols/http1/encoder.js';
import { UUID_LENGTH, uuidV4, writeUuidV4 } from '../../../protocols/http1/request_id.js';

/** Header objects as node:http2 uses them: lower-case names, pseudo-headers first. */
export type HeaderObject = Record<string, string | string[] | undefined>;

/**
 * An upstream request's header list in the addon's flat form ("name\0value\0...", every value
 * NUL-terminated): `:method`, `:path`, `:authority`, `:scheme`, the downstream's fields that are
 * kept (runs of `src`, the downstream's own flat list), then the fields the proxy adds (`extra`).
 * An HTTP/2 try hands `flat` to the native session, an HTTP/1 try writes its head from the runs
 * in one pass; the header object (node:http2 sessions, mirrors) is built only when asked.
 */
/** FlatRequest.hold()'s bits: which pseudo-header values are the held request's own (requestHeld's `same`). */
export const HELD_METHOD = 1;
export const HELD_PATH = 2;
export const HELD_AUTHORITY = 4;
/**
 * sendHttp1HeadHeldArgs' `same` bits past the pseudo-headers' (kHeldExtraGen, kHeldRunsTable in
 * native/http1/http1_js.cc): `extra` is the string numbered CALL_ARGS[7] (heldExtraGen), so the
 * addon copies the header lines it made of that string last, if it still has them, instead of
 * reading and converting it again (the usual added pairs repeat request after request); and the
 * runs are the runs table's. An addon without them reads both, as before.
 */
const HELD_EXTRA_GEN = 8;
const HELD_RUNS_TABLE = 16;
/** The last `extra` numbered for the addon, and its number (a new one for every other string, never 0). */
let heldExtra: string | null = null;
let heldExtraGen = 0;

export class FlatRequest {
  private obj: HeaderObject | null = null;
  private built: string | null = null;
  /**
   * The native downstream stream whose request `src` is (hold()): its session's number and the
   * stream id, 0 when none; and which of method, path and authority are that request's own.
   */
  private heldSession = 0;
  private heldStream = 0;
  private heldSame = 0;

  constructor(
    /** The downstream's list as the addon gave it (no NUL after the last value). */
    private readonly src: string,
    /** [start, end) offsets into `src` of the kept pairs, two numbers per run. */
    private readonly runs: number[],
    /** Pairs the proxy adds, each value NUL-terminated. */
    private readonly extra: string,
    readonly pairs: number,
    readonly method: string,
    readonly path: string,
    readonly authority: string,
    /** A content-length field is among the regular ones. */
    readonly hasContentLength: boolean,
    /**
     * `extra` ends with REQUEST_ID_FILL_PAIR: each writer puts a fresh id in its place (the
     * addon as it writes the request; `flat` and h1HeadJs here).
     */
    readonly fillsId = false,
  ) {}

  /** The kept runs and the added pairs, as given (for a memo of how a list is forwarded). */
  parts(): { runs: number[]; extra: string } {
    return { runs: this.runs, extra: this.extra };
  }

  /** The whole list, pseudo-headers first (built on first use). */
  get flat(): string {
    let f = this.built;
    if (f !== null) return f;
    f = `:method\0${this.method}\0:path\0${this.path}\0:authority\0${this.authority}\0:scheme\0http\0`;
    const r = this.runs;
    const s = this.src;
    for (let k = 0; k < r.length; k += 2) f += r[k + 1] === s.length ? `${s.slice(r[k], r[k + 1])}\0` : s.slice(r[k], r[k + 1]);
    const x = this.extra;
    return (this.built = this.fillsId ? `${f}${x.slice(0, -(UUID_LENGTH + 1))}${uuidV4()}\0` : f + x);
  }

  /** The header object this list stands for (as headerObject() reads it), built once. */
  object(): HeaderObject {
    return (this.obj ??= headerObject(this.flat.slice(0, -1)));
  }

  /**
   * The HTTP/1.1 head: request line, host, the kept fields less `te` (hop-by-hop), the added ones,
   * and `transfer-encoding: chunked` when asked; as H1Try writes it from an object. Written by the
   * addon in one call when it has writeHttp1HeadFromFlat, else by h1HeadJs (the reference).
   */
  h1Head(chunked: boolean): Buffer {
    const w = writeFromFlat;
    if (w === null) return this.h1HeadJs(chunked);
    const size = this.h1Size(chunked);
    const b = Buffer.allocUnsafe(size);
    const o = w(b, this.method, this.path, this.authority, this.src, runsArg === RUNS_TABLE ? null : runsArg, this.runs.length >> 1, this.extra, chunked, undefined, this.fillsId);
    return o === size ? b : b.subarray(0, o);
  }

  /**
   * h1Head(false) sent on `fd` (the connection's sendFd()) by the addon, without a Buffer;
   * `size` is h1Size(false), called just before. Bytes the kernel took (`size` when all), -errno,
   * or HEAD_NOT_SENT when nothing was tried (no addon, or a head of another size). The caller
   * writes what is left from h1Head().
   */
  sendH1Head(fd: number, size: number): number {
    const w = writeFromFlat;
    if (w === null) return HEAD_NOT_SENT;
    const runs = runsArg === RUNS_TABLE ? null : runsArg;
    const held = sendHeld;
    if (this.heldStream !== 0 && held !== null) {
      // The addon cuts the kept fields from the request it holds (as requestOn's requestHeld):
      // `src` is not read back, nor the method, path and authority that are its own.
      let sent: number;
      const ha = sendHeldArgs;
      if (ha !== null) {
        const extra = this.extra;
        if (extra !== heldExtra) {
          heldExtra = extra;
          heldExtraGen++;
        }
        const a = CALL_ARGS;
        a[0] = fd;
        a[1] = size;
        a[2] = this.heldSession;
        a[3] = this.heldStream;
        a[4] = this.heldSame | HELD_EXTRA_GEN | (runs === null ? HELD_RUNS_TABLE : 0);
        a[5] = this.runs.length >> 1;
        a[6] = this.fillsId ? 1 : 0;
        a[7] = heldExtraGen;
        sent = ha(this.method, this.path, this.authority, runs, extra);
      } else sent = held(fd, size, this.heldSession, this.heldStream, this.heldSame, this.method, this.path, this.authority, runs, this.runs.length >> 1, this.extra, this.fillsId);
      if (sent !== HEAD_NOT_HELD) return sent;
      this.heldStream = 0;
    }
    return w(fd, this.method, this.path, this.authority, this.src, runs, this.runs.length >> 1, this.extra, false, size, this.fillsId);
  }

  /**
   * Opens this request on an HTTP/2 upstream connection, as `c.requestFlat(this.flat, ...)` would
   * (that list is the reference), with the addon joining the parts.
   */
  requestOn(c: NativeH2ClientConnection, endStream: boolean, user: NativeH2ClientStreamUser, neverIndexed?: string): number {
    const r = this.runs;
    if (runsArg.length < r.length) runsArg = new Int32Array(Math.max(r.length, 2 * runsArg.length));
    for (let k = 0; k < r.length; k++) runsArg[k] = r[k]!;
    if (this.heldStream !== 0) {
      // The addon copies the kept fields from the request it holds: no string crosses back, and
      // the fields nghttp2 checked on the way in are not scanned again; nor are the method, path
      // and authority that are the request's own read (heldSame).
      const id = c.requestHeld(
        this.heldSession,
        this.heldStream,
        this.heldSame,
        this.method,
        this.path,
        this.authority,
        runsArg === RUNS_TABLE ? null : runsArg,
        r.length >> 1,
        this.extra,
        this.pairs,
        endStream,
        user,
        neverIndexed,
        this.fillsId,
      );
      if (id !== REQUEST_NOT_HELD) return id;
      // The downstream stream is gone (a mirror or a retry outliving it): the parts as they are.
      this.heldStream = 0;
    }
    return c.requestRuns(this.method, this.path, this.authority, this.src, runsArg === RUNS_TABLE ? null : runsArg, r.length >> 1, this.extra, this.pairs, endStream, user, neverIndexed, this.fillsId);
  }

  /**
   * `src` is the request the native downstream stream `stream` of session `session` (its sid())
   * holds; `same`: HELD_* bits for the pseudo-header values that are that request's own.
   */
  hold(session: number, stream: number, same: number): void {
    this.heldSession = session;
    this.heldStream = stream;
    this.heldSame = same;
  }

  /** The HTTP/1.1 head's size, with runsArg filled with the runs for the addon. */
  h1Size(chunked: boolean): number {
    const r = this.runs;
    if (runsArg.length < r.length) runsArg = new Int32Array(Math.max(r.length, 2 * runsArg.length));
    // Each NUL of a pair becomes a two-byte separator (": " or CRLF), and src's last pair has no
    // NUL of its own. upstreamFlatOf leaves no `te` in an HTTP/1 request's runs; should one be
    // there, the addon leaves it out and the head is a little shorter than this.
    let bytes = this.extra.length + 2 * (this.pairs - 4);
    for (let k = 0; k < r.length; k += 2) {
      runsArg[k] = r[k]!;
      runsArg[k + 1] = r[k + 1]!;
      bytes += r[k + 1]! - r[k]!;
    }
    if (r.length > 0 && r[r.length - 1] === this.src.length) bytes++;
    return this.method.length + this.path.length + this.authority.length + 22 + bytes + (chunked ? 28 : 0);
  }

  /** h1Head in TypeScript: without the addon, and the reference its writer is tested against. */
  h1HeadJs(chunked: boolean): Buffer {
    const pre = `${this.method} ${this.path} HTTP/1.1\r\nhost: ${this.authority}\r\n`;
    // The downstream's list and the additions as bytes (two native writes of flat strings), then
    // the kept runs rewritten byte by byte (a typed-array loop; charCodeAt on a concatenated
    // string measured several times slower).
    const s = this.src;
    const n = s.length;
    const x = this.extra;
    const total = n + x.length;
    if (scratch.length < total) scratch = Buffer.allocUnsafe(Math.max(total, 2 * scratch.length));
    const src = scratch;
    src.write(s, 0, n, 'latin1');
    src.write(x, n, x.length, 'latin1');
    let bytes = x.length;
    const r = this.runs;
    for (let k = 0; k < r.length; k += 2) bytes += r[k + 1]! - r[k]! + 1;
    // Each NUL becomes two bytes (": " or CRLF): an upper bound.
    const b = Buffer.allocUnsafe(pre.length + bytes + 2 * this.pairs + (chunked ? 28 : 0) + 2);
    let o = b.write(pre, 0, 'latin1');
    for (let k = 0; k < r.length; k += 2) o = h1Fields(src, r[k]!, r[k + 1]!, b, o);
    o = h1Fields(src, n, total, b, o);
    // The id's value closes the additions' last line ("x-request-id: <id>\r\n").
    if (this.fillsId) writeUuidV4(b, o - UUID_LENGTH - 2);
    if (chunked) o += b.write('transfer-encoding: chunked\r\n', o, 'latin1');
    b[o++] = 13;
    b[o++] = 10;
    return o === b.length ? b : b.subarray(0, o);
  }
}

/** A connection's body framer (made on its first response); a fresh one without a connection. */
function framerOf(conn: Http1UpstreamConn | null): BodyFramer {
  if (conn === null) return new BodyFramer();
  return (conn.framer ??= new BodyFramer());
}

/** FlatRequest.h1HeadJs's bytes of the flat lists (used within one call). */
let scratch = Buffer.allocUnsafe(4096);

type WriteFromFlat = (out: Buffer | number, method: string, path: string, authority: string, src: string, runs: Int32Array | null, nRuns: number, extra: string, chunked: boolean, size?: number, fillId?: boolean) => number;

/** The addon's writeHttp1HeadFromFlat (native/http1/http1_js.cc); null without it or with STRAIT_HTTP1_ENCODER=ts. */
const writeFromFlat: WriteFromFlat | null = (() => {
  if (process.env.STRAIT_HTTP1_ENCODER === 'ts') return null;
  try {
    const f = (loadNative() as unknown as { writeHttp1HeadFromFlat?: WriteFromFlat }).writeHttp1HeadFromFlat;
    return typeof f === 'function' ? f : null;
  } catch {
    return null;
  }
})();

type SendHeld = (fd: number, size: number, downSession: number, downStream: number, same: number, method: string, path: string, authority: string, runs: Int32Array | null, nRuns: number, extra: string, fillId: boolean) => number;

/** The addon's sendHttp1HeadHeld (native/http1/http1_js.cc), with writeFromFlat; null without it. */
const sendHeld: SendHeld | null = (() => {
  if (writeFromFlat === null) return null;
  try {
    const f = (loadNative() as unknown as { sendHttp1HeadHeld?: SendHeld }).sendHttp1HeadHeld;
    return typeof f === 'function' ? f : null;
  } catch {
    return null;
  }
})();

type SendHeldArgs = (method: string, path: string, authority: string, runs: Int32Array | null, extra: string) => number;

/**
 * sendHeld with its numbers in CALL_ARGS ([fd, size, downSession, downStream, same, nRuns,
 * fillId]): seven number arguments fewer per request; null with an addon without it.
 */
const sendHeldArgs: SendHeldArgs | null = (() => {
  if (sendHeld === null) return null;
  const f = (loadNative() as unknown as { sendHttp1HeadHeldArgs?: SendHeldArgs }).sendHttp1HeadHeldArgs;
  return typeof f === 'function' ? f : null;
})();

/** FlatRequest's runs for the addon (used within one call): RUNS_TABLE, or an array of its own once a list has more runs. */
let runsArg = RUNS_TABLE;

/** Writes the pairs in src[i, end) ("name\0value\0...", last NUL optional) as header lines at b[o]; the new offset. */
function h1Fields(src: Buffer, i: number, end: number, b: Buffer, o: number): number {
  while (i < end) {
    if (src[i] === 116 && src[i + 1] === 101 && src[i + 2] === 0) {
      // te: hop-by-hop, never sent to an HTTP/1 upstream.
      i += 3;
      while (i < end && src[i++] !== 0);
      continue;
    }
    let c: number;
    while (i < end && (c = src[i++]!) !== 0) b[o++] = c;
    b[o++] = 58;
    b[o++] = 32;
    while (i < end && (c = src[i++]!) !== 0) b[o++] = c;
    b[o++] = 13;
    b[o++] = 10;
  }
  return o;
}

/** `refused_stream`: an HTTP/2 upstream reset the stream with REFUSED_STREAM before answering (a kind of reset). */
export type TryFailureKind = 'connect_failure' | 'reset' | 'refused_stream' | 'protocol_error' | 'overflow';

/** What one upstream attempt reports to the exchange that made it. */
export interface TryEvents {
  /** Final (non-1xx) response headers; `endStream` when no body or trailers follow. */
  onResponse(status: number, headers: HeaderObject, endStream: boolean): void;
  /**
   * Optional: an HTTP/1 upstream's final response head as parsed (fields as offsets into its
   * bytes), for an owner that forwards it without a header object. Without it, onResponse gets
   * the head's header object (hop-by-hop fields left out, `:status` added).
   * `wholeLen`: when the entire body came in the same read as the head (content-length), its
   * length, and it lies in head.buf right after the head (head.start + head.headBytes); else -1.
   * Returning true says the owner sent that body on and ended its response with the head: no
   * onData follows for it, only onEnd.
   */
  onH1ResponseHead?(status: number, head: MessageHead, endStream: boolean, wholeLen: number): boolean;
  /**
   * Optional: a native HTTP/2 upstream's final response head as the addon's flat list
   * ("name\0value\0...", `:status` first, no trailing NUL). Without it, onResponse gets its object.
   * `neverIndexed`: the names the upstream sent as never-indexed literals ("name\0name..."), only
   * when it sent any; header objects list them under NEVER_INDEXED (native_session.ts).
   * `upSession` (its sid()) and `upStream`: the client session and stream that keep this head
   * while the call lasts (NativeH2Stream.respondRuns cuts the forwarded list from it).
   */
  onH2ResponseFlat?(status: number, flat: string, endStream: boolean, neverIndexed: string | undefined, upSession: number, upStream: number): void;
  onData(chunk: Buffer): void;
  /**
   * Optional, in place of onData for a native HTTP/2 upstream's chunk taken at once: `len` bytes
   * at `off` in `pool` (the addon's data pool numbered `gen`, NativeH2Session.dataAt), no view made.
   */
  onDataAt?(pool: Buffer, off: number, len: number, gen: number): void;
  onEnd(trailers: HeaderObject | null): void;
  /** Optional: the response ended with trailers from a native HTTP/2 upstream, as the addon's flat list. Without it, onEnd gets their object. */
  onEndFlat?(trailers: string): void;
  /** With onEndFlat: the never-indexed names of the trailers onEndFlat will bring, before it and only when there are any. */
  onTrailersNeverIndexed?(names: string): void;
  /**
   * The names the downstream sent never indexed ("name\0name..."), for an HTTP/2 try of a
   * FlatRequest to send them so again (RFC 7541 §7.1.3); undefined when none. A header object
   * carries its own, under NEVER_INDEXED.
   */
  readonly requestNeverIndexed?: string | undefined;
  /** No response (or an unusable one) came; before onResponse only. */
  onFailure(kind: TryFailureKind): void;
  /** The response broke off after onResponse. */
  onAbort(): void;
}

/** One attempt at an upstream, whatever protocol it speaks, as object headers and body bytes. */
export interface UpstreamTry {
  /** false: wait for `onDrain` before writing more. */
  write(chunk: Buffer): boolean;
  /** Optional: write() for `len` bytes at `off` of a batch's pool numbered `gen` (NativeH2Session.dataAt). */
  writeAt?(pool: Buffer, off: number, len: number, gen: number): boolean;
  end(): void;
  onDrain(cb: () => void): void;
  /** Stop/restart delivering response data (the downstream is slow). */
  pause(): void;
  resume(): void;
  /**
   * Abandon the attempt (timeout, downstream gone). No events after this. `downstreamGone`: the
   * client went away, nothing is wrong with the upstream; an HTTP/1.1 try whose request has left
   * may then read the rest of its response and pool the connection (H1Try.abort).
   */
  abort(downstreamGone?: boolean): void;
}

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_REFUSED_STREAM } = http2.constants;

/**
 * session.request() options with the RFC 7540 priority defaults already set. node:http2 up to
 * v24 copies the options and adds weight/parent/exclusive/silent to the copy when they are
 * missing, which measured ~15% of a client stream's CPU here; present, they are only validated.
 * Later Node versions dropped priority signaling and warn on `weight` (DEP0194), so it is left
 * out there. request() copies these objects, so sharing them is safe.
 */
const PRIORITY_VALIDATED = Number(process.versions.node.split('.')[0]) <= 24;
/** `silent` is a priority option node:http2 reads but does not declare in its types. */
type RequestOptions = http2.ClientSessionRequestOptions & { silent?: boolean };
const REQ_OPEN: RequestOptions = PRIORITY_VALIDATED ? { endStream: false, weight: 16, parent: 0, exclusive: false, silent: false } : { endStream: false };
const REQ_END: RequestOptions = PRIORITY_VALIDATED ? { endStream: true, weight: 16, parent: 0, exclusive: false, silent: false } : { endStream: true };

/**
 * node:http2's request() binds each new stream's connect callback with AsyncResource#bind, which
 * in Node 20-22 also defines a deprecated `asyncResource` accessor pair wrapped in two
 * deprecate() closures on every bound function: ~8% of the proxy's CPU in a gRPC unary profile,
 * and the proxy's CPU per call fell ~20% without it (perf-reports/2026-12-03-h2-session5.md).
 * Only request() calls bind while it runs, and nothing reads that deprecated property, so bind
 * is swapped for this one around the call: the same async scope, without the accessor.
 */
type Bind = typeof AsyncResource.prototype.bind;
function plainBind<F extends (...args: any[]) => any>(this: AsyncResource, fn: F, thisArg?: ThisParameterType<F>): F {
  const resource = this;
  if (thisArg !== undefined) return resource.runInAsyncScope.bind(resource, fn, thisArg) as unknown as F;
  return function (this: unknown, ...args: Parameters<F>) {
    return resource.runInAsyncScope(fn, this, ...args);
  } as F;
}

function requestStream(session: http2.ClientHttp2Session, headers: HeaderObject, opts: RequestOptions): http2.ClientHttp2Stream {
  const proto = AsyncResource.prototype as { bind: Bind };
  // Read at each call, not at load: whatever bind is installed (an APM agent's wrapper) is put back.
  const prev = proto.bind;
  proto.bind = plainBind as Bind;
  try {
    return session.request(headers, opts);
  } finally {
    proto.bind = prev;
  }
}

/** The try a client stream belongs to: lets one set of module-level listeners serve every stream. */
const TRY = Symbol('strait.h2try');
type TryStream = http2.ClientHttp2Stream & { [TRY]: H2Try };

function onStreamResponse(this: TryStream, h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
  this[TRY].response(h, flags);
}
function onStreamData(this: TryStream, d: Buffer): void {
  this[TRY].data(d);
}
function onStreamTrailers(this: TryStream, t: http2.IncomingHttpHeaders): void {
  this[TRY].trailers = t as HeaderObject;
}
function onStreamEnd(this: TryStream): void {
  this[TRY].ended();
}
function onStreamClose(this: TryStream): void {
  this[TRY].closed(this);
}
function ignore(): void {}

/**
 * H2Try's yes/no state, bits of one small integer (seven boolean fields were 56 bytes of each
 * try); a const enum so that its accessors are small enough to inline (as SF's in
 * native_session.ts).
 */
const enum TF {
  END_SENT = 1,
  N_PAUSED = 2,
  HELD_END = 4,
  STREAM_GONE = 8,
  REQUEST_ENDED = 16,
  DONE = 32,
  RESPONDED = 64,
}

/**
 * HTTP/2 upstream: one stream on a pooled, multiplexed session. The session is node:http2's or,
 * with `--h2-engine native`, the addon's (NativeH2ClientConnection), whichever the pool handed
 * out; on the latter this object is the stream's event target itself (no stream object).
 */
export class H2Try implements UpstreamTry, NativeH2ClientStreamUser, FinalChunkHolder {
  /** TF bits; read and written through the accessors below. */
  private bits = 0;
  /** Native path: the request's END_STREAM was handed to the session. */
  private get endSent(): boolean { return (this.bits & TF.END_SENT) !== 0; }
  private set endSent(v: boolean) { this.bits = v ? this.bits | TF.END_SENT : this.bits & ~TF.END_SENT; }
  /** Native path: response delivery paused by the exchange; DATA waits in `held` unconsumed. */
  private get nPaused(): boolean { return (this.bits & TF.N_PAUSED) !== 0; }
  private set nPaused(v: boolean) { this.bits = v ? this.bits | TF.N_PAUSED : this.bits & ~TF.N_PAUSED; }
  private get heldEnd(): boolean { return (this.bits & TF.HELD_END) !== 0; }
  private set heldEnd(v: boolean) { this.bits = v ? this.bits | TF.HELD_END : this.bits & ~TF.HELD_END; }
  /** Native path: h2Close ran (the session forgot the stream). */
  private get streamGone(): boolean { return (this.bits & TF.STREAM_GONE) !== 0; }
  private set streamGone(v: boolean) { this.bits = v ? this.bits | TF.STREAM_GONE : this.bits & ~TF.STREAM_GONE; }
  private get requestEnded(): boolean { return (this.bits & TF.REQUEST_ENDED) !== 0; }
  private set requestEnded(v: boolean) { this.bits = v ? this.bits | TF.REQUEST_ENDED : this.bits & ~TF.REQUEST_ENDED; }
  private get done(): boolean { return (this.bits & TF.DONE) !== 0; }
  private set done(v: boolean) { this.bits = v ? this.bits | TF.DONE : this.bits & ~TF.DONE; }
  private get responded(): boolean { return (this.bits & TF.RESPONDED) !== 0; }
  private set responded(v: boolean) { this.bits = v ? this.bits | TF.RESPONDED : this.bits & ~TF.RESPONDED; }
  private stream: http2.ClientHttp2Stream | null = null;
  /** Native path: the request's last chunk, kept for end() to send with END_STREAM (write()). */
  private finalChunk: Buffer | null = null;
  /** Where the final chunk is in finalChunk when that is a batch's pool (writeAt), else -1; its length and pool number. */
  private finalAt = -1;
  private finalLen = 0;
  private finalGen = 0;
  private session: H2UpstreamSession | null = null;
  /** The native connection and stream id, once open (null on the node:http2 path). */
  private nc: NativeH2ClientConnection | null = null;
  private sid = 0;
  private held: Buffer[] | null = null;
  /** Body chunks written before the stream opened; null while there are none. */
  private pending: Buffer[] | null = null;
  /** @internal set by the stream's 'trailers' listener */
  trailers: HeaderObject | null = null;
  /** Native path: the trailers as the addon delivered them. */
  private trailersFlat: string | null = null;
  private drainCb: (() => void) | null = null;
  /** Gives up the request's place while it waits for stream capacity (pending); null once served. */
  private cancelAcquire: (() => void) | null = null;

  constructor(
    private readonly pools: Http2ClusterPools,
    private readonly host: Host,
    headers: HeaderObject | FlatRequest,
    endStream: boolean,
    private readonly ev: TryEvents,
  ) {
    this.requestEnded = endStream;
    // A ready connection with room (most requests) is taken without a callback: the closure and
    // the context it captures were ~130 bytes of every gRPC request.
    const ready = pools.acquireNow(host);
    if (ready !== null) this.open(ready, headers);
    else this.acquire(headers);
  }

  private acquire(headers: HeaderObject | FlatRequest): void {
    const { pools, host, ev } = this;
    this.cancelAcquire = pools.acquire(host, (session, reason) => {
      this.cancelAcquire = null;
      if (this.done) {
        if (session) pools.released(host, session);
        return;
      }
      if (!session) {
        this.done = true;
        ev.onFailure(reason === 'overflow' ? 'overflow' : 'connect_failure');
        return;
      }
      this.open(session, headers);
    });
  }

  private open(session: H2UpstreamSession, headers: HeaderObject | FlatRequest): void {
    if (session instanceof NativeH2ClientConnection) {
      this.openNative(session, headers);
      return;
    }
    const pending = this.pending;
    this.pending = null;
    let s: TryStream;
    try {
      let h: HeaderObject;
      if (headers instanceof FlatRequest) {
        h = headers.object();
        const never = this.ev.requestNeverIndexed;
        if (never !== undefined) setNeverIndexed(h, never);
      } else h = headers;
      s = requestStream(session, h, this.requestEnded && pending === null ? REQ_END : REQ_OPEN) as TryStream;
    } catch {
      this.pools.released(this.host, session);
      this.done = true;
      this.ev.onFailure('reset');
      return;
    }
    this.stream = s;
    this.session = session;
    s[TRY] = this;
    s.on('response', onStreamResponse);
    s.on('data', onStreamData);
    s.on('trailers', onStreamTrailers);
    s.on('end', onStreamEnd);
    // A stream error is followed by 'close', which reports it; unhandled it would throw.
    s.on('error', ignore);
    s.on('close', onStreamClose);
    if (pending) for (const b of pending) s.write(b);
    if (this.requestEnded && !s.writableEnded) s.end();
    if (this.drainCb) {
      const cb = this.drainCb;
      this.drainCb = null;
      cb();
    }
  }

  private openNative(c: NativeH2ClientConnection, headers: HeaderObject | FlatRequest): void {
    const pending = this.pending;
    this.pending = null;
    const endNow = this.requestEnded && pending === null;
    let id: number;
    try {
      id = headers instanceof FlatRequest ? headers.requestOn(c, endNow, this, this.ev.requestNeverIndexed) : c.request(headers as H2Headers, endNow, this);
    } catch {
      // A header value the addon refuses (CR/LF, NUL): as node:http2's request() throwing.
      this.pools.released(this.host, c);
      this.done = true;
      this.ev.onFailure('reset');
      return;
    }
    if (id === 0) {
      // Closing (GOAWAY crossed the acquire) or out of stream ids: nothing was sent, retriable.
      this.pools.released(this.host, c);
      this.done = true;
      this.ev.onFailure('refused_stream');
      return;
    }
    this.nc = c;
    this.sid = id;
    this.session = c;
    this.endSent = endNow;
    if (pending) for (const b of pending) c.h.data(id, b, false);
    if (this.requestEnded && !this.endSent) {
      this.endSent = true;
      c.h.data(id, null, true);
    }
    if (this.drainCb) {
      const cb = this.drainCb;
      this.drainCb = null;
      cb();
    }
  }

  /** @internal NativeH2ClientStreamUser */
  h2Headers(h: H2Headers, endStream: boolean): void {
    if (this.done) return;
    this.responded = true;
    this.ev.onResponse(Number(h[':status']), h as HeaderObject, endStream);
    if (endStream) this.h2End();
  }

  /** @internal NativeH2ClientStreamUser: the head as the addon delivers it, handed on flat when the owner takes it so. */
  h2HeadersFlat(flat: string, endStream: boolean, neverIndexed?: string): void {
    if (this.done) return;
    this.responded = true;
    const status = flatStatus(flat);
    const ev = this.ev;
    // The session and stream that keep this head (respondHeldArgs cuts the runs from it).
    if (ev.onH2ResponseFlat !== undefined) ev.onH2ResponseFlat(status, flat, endStream, neverIndexed, this.nc!.h.sid(), this.sid);
    else ev.onResponse(status, headerObject(flat, neverIndexed) as HeaderObject, endStream);
    if (endStream) this.h2End();
  }

  /** @internal NativeH2ClientStreamUser: true when held (consumed on resume), else taken now. */
  h2Data(d: Buffer): boolean {
    if (this.done) return false;
    if (this.nPaused || this.held !== null) {
      // Not consumed: the upstream may send at most the rest of its window (flow control end to end).
      (this.held ??= []).push(d);
      return true;
    }
    this.ev.onData(d);
    return false;
  }

  /** @internal NativeH2ClientStreamUser: h2Data for a chunk in the addon's data pool. */
  h2DataAt(pool: Buffer, off: number, len: number, gen: number): boolean {
    if (this.done) return false;
    if (this.nPaused || this.held !== null) {
      (this.held ??= []).push(pool.subarray(off, off + len));
      return true;
    }
    const ev = this.ev;
    if (ev.onDataAt !== undefined) ev.onDataAt(pool, off, len, gen);
    else ev.onData(pool.subarray(off, off + len));
    return false;
  }

  /** @internal NativeH2ClientStreamUser */
  h2Trailers(t: H2Headers): void {
    this.trailers = t as HeaderObject;
  }

  /** @internal NativeH2ClientStreamUser */
  h2TrailersFlat(flat: string, neverIndexed?: string): void {
    const ev = this.ev;
    if (ev.onEndFlat !== undefined) {
      this.trailersFlat = flat;
      // Told now rather than kept here: a field on every try for what few responses have.
      if (neverIndexed !== undefined && !this.done) ev.onTrailersNeverIndexed?.(neverIndexed);
    } else this.trailers = headerObject(flat, neverIndexed) as HeaderObject;
  }

  /** @internal NativeH2ClientStreamUser */
  h2End(): void {
    if (this.nPaused || this.held !== null) {
      this.heldEnd = true;
      return;
    }
    this.ended();
  }

  /** @internal NativeH2ClientStreamUser */
  h2Close(code: number): void {
    const c = this.nc!;
    this.streamGone = true;
    this.pools.released(this.host, c);
    // A clean close with the response's tail still held for a paused exchange: resume() ends it.
    if (code === 0 && this.heldEnd) return;
    this.held = null;
    if (this.done) return;
    this.done = true;
    if (this.responded) this.ev.onAbort();
    else this.ev.onFailure(code === NGHTTP2_REFUSED_STREAM ? 'refused_stream' : 'reset');
  }

  /** @internal NativeH2ClientStreamUser */
  h2Drain(): void {
    const cb = this.drainCb;
    this.drainCb = null;
    cb?.();
  }

  /** @internal stream listener */
  response(h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
    const status = Number(h[':status']);
    if (status >= 100 && status < 200) return;
    this.responded = true;
    this.ev.onResponse(status, h as HeaderObject, (flags & NGHTTP2_FLAG_END_STREAM) !== 0);
  }

  /** @internal stream listener */
  data(d: Buffer): void {
    if (!this.done) this.ev.onData(d);
  }

  /** @internal stream listener: the response is complete. */
  ended(): void {
    if (this.done) return;
    this.done = true;
    const tf = this.trailersFlat;
    if (tf !== null) this.ev.onEndFlat!(tf);
    else this.ev.onEnd(this.trailers);
  }

  /** @internal stream listener: gives the stream back to the pool; before 'end' it is a failure. */
  closed(s: http2.ClientHttp2Stream): void {
    this.pools.released(this.host, this.session!);
    if (this.done) return;
    this.done = true;
    if (this.responded) this.ev.onAbort();
    else this.ev.onFailure(s.rstCode === NGHTTP2_REFUSED_STREAM ? 'refused_stream' : 'reset');
  }

  write(chunk: Buffer): boolean {
    if (this.done) return true;
    const nc = this.nc;
    if (nc) {
      if (this.endSent) return true;
      if (this.finalChunk !== null) this.flushFinal();
      // The request's last chunk, its END next in the same batch: kept to go with END_STREAM in
      // one addon call (end()); the batch sends it as it is should the END not come through.
      if (chunkIsFinal()) {
        this.finalChunk = chunk;
        holdFinal(this);
        return true;
      }
      return nc.h.data(this.sid, chunk, false);
    }
    if (!this.stream) {
      (this.pending ??= []).push(chunk);
      return false; // resumes when the stream opens
    }
    return this.stream.write(chunk);
  }

  /** write() for bytes of a batch's pool, sent from there by the addon (NativeH2Session.dataAt). */
  writeAt(pool: Buffer, off: number, len: number, gen: number): boolean {
    const nc = this.nc;
    if (nc === null || this.done || this.endSent) return this.write(pool.subarray(off, off + len));
    if (this.finalChunk !== null) this.flushFinal();
    if (chunkIsFinal()) {
      this.finalChunk = pool;
      this.finalAt = off;
      this.finalLen = len;
      this.finalGen = gen;
      holdFinal(this);
      return true;
    }
    // Pool numbers come only from an addon with dataAt's call (native_session.ts poolGens()).
    return nc.h.dataAt!(this.sid, pool, off, len, gen);
  }

  end(): void {
    this.requestEnded = true;
    const nc = this.nc;
    if (nc) {
      const last = this.finalChunk;
      const at = this.finalAt;
      if (last !== null) {
        this.finalChunk = null;
        this.finalAt = -1;
        releaseFinal(this);
      }
      if (!this.endSent && !this.done) {
        this.endSent = true;
        if (at >= 0) nc.h.dataAt!(this.sid, last!, at, this.finalLen, this.finalGen, true);
        else nc.h.data(this.sid, last, true);
      }
      return;
    }
    if (this.stream && !this.stream.writableEnded) this.stream.end();
  }

  /** @internal FinalChunkHolder: the kept last chunk goes without END_STREAM (its end was held back). */
  flushFinal(): void {
    const d = this.finalChunk;
    if (d === null) return;
    const at = this.finalAt;
    this.finalChunk = null;
    this.finalAt = -1;
    releaseFinal(this);
    if (this.done || this.endSent) return;
    if (at >= 0) this.nc!.h.dataAt!(this.sid, d, at, this.finalLen, this.finalGen);
    else this.nc!.h.data(this.sid, d, false);
  }

  onDrain(cb: () => void): void {
    if (!this.stream) this.drainCb = cb;
    else this.stream.once('drain', cb);
  }

  pause(): void {
    if (this.nc) this.nPaused = true;
    else this.stream?.pause();
  }

  resume(): void {
    if (!this.nc) {
      this.stream?.resume();
      return;
    }
    if (!this.nPaused) return;
    this.nPaused = false;
    const held = this.held;
    if (held) {
      // In order; the exchange may pause again from onData, and the rest waits for the next resume.
      while (held.length && !this.nPaused && !this.done) {
        const d = held.shift()!;
        this.nc.h.consume(this.sid, d.length);
        this.ev.onData(d);
      }
      if (held.length === 0 || this.done) this.held = null;
    }
    if (this.heldEnd && !this.nPaused && this.held === null) {
      this.heldEnd = false;
      this.ended();
    }
  }

  abort(): void {
    // Still waiting for capacity: leave the queue now, so max_pending_requests counts only
    // requests that still want a stream.
    const cancel = this.cancelAcquire;
    if (cancel !== null) {
      this.cancelAcquire = null;
      cancel();
    }
    if (this.done && !this.stream && !this.nc) return;
    this.done = true;
    if (this.nc) {
      this.held = null;
      // Still open (no h2Close yet): reset it; its close gives the slot back to the pool.
      if (!this.streamGone) {
        this.nc.h.rst(this.sid, NGHTTP2_CANCEL);
        this.pools.stats.upstream_rq_tx_reset.value++;
      }
      return;
    }
    if (this.stream && !this.stream.closed) {
      this.stream.close(NGHTTP2_CANCEL);
      this.pools.stats.upstream_rq_tx_reset.value++;
    }
  }
}

/** Hop-by-hop and framing headers that never cross a protocol boundary. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'transfer-encoding', 'te', 'http2-settings', 'host']);

/** The header object of an HTTP/1 head, less hop-by-hop fields (no `:status`). */
export function headerObjectOf(head: MessageHead): HeaderObject {
  const out: HeaderObject = {};
  const f = head.fieldSlots;
  for (let i = head.fieldsAt; i < head.fieldsEnd; i += F.SIZE) {
    const name = head.buf.toString('latin1', f[i + F.NAME_START]!, f[i + F.NAME_END]!).toLowerCase();
    if (HOP.has(name)) continue;
    const v = head.buf.toString('latin1', f[i + F.VALUE_START]!, f[i + F.VALUE_END]!);
    const prev = out[name];
    if (prev === undefined) out[name] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[name] = [prev, v];
  }
  return out;
}

/** The HTTP/1.1 head of an upstream request object (hop-by-hop fields left out). */
export function h1HeadOf(headers: HeaderObject, method: string, chunked: boolean): Buffer {
  let h = `${method} ${headers[':path']} HTTP/1.1\r\nhost: ${headers[':authority'] ?? ''}\r\n`;
  // for-in and no array per value: this runs once per request.
  for (const k in headers) {
    const v = headers[k];
    if (k[0] === ':' || v === undefined || HOP.has(k)) continue;
    if (typeof v === 'string') h += `${k}: ${v}\r\n`;
    else for (const x of v) h += `${k}: ${x}\r\n`;
  }
  if (chunked) h += 'transfer-encoding: chunked\r\n';
  return Buffer.from(`${h}\r\n`, 'latin1');
}

/**
 * HTTP/1.1 upstream for a request that arrived as HTTP/2: the head is encoded from the header
 * object, a body without Content-Length is sent chunked, and the response's chunk framing is
 * removed (HTTP/2 frames carry the payload only).
 */
export class H1Try implements UpstreamTry, Http1ConnUser {
  private conn: Http1UpstreamConn | null = null;
  private cancel: (() => void) | null = null;
  /** Body chunks written before a connection was there; null until the first. */
  private pending: Buffer[] | null = null;
  private ended = false;
  private done = false;
  private respBuf: Buffer | null = null;
  private resp: MessageHead | null = null;
  /**
   * The response body's framer: its connection's (one response at a time on it), taken when the
   * head arrives, so a try costs no framer of its own (~100 bytes per request in flight).
   */
  private framer: BodyFramer | null = null;
  private drainCb: (() => void) | null = null;
  /** The exchange paused the upstream read (its client is slow); undone before the conn is pooled. */
  private paused = false;
  private readonly chunked: boolean;
  /** The request head as bytes; null until needed (a flat request's head may leave without them). */
  private head: Buffer | null = null;
  private readonly flat: FlatRequest | null = null;

  constructor(
    private readonly pools: Http1ClusterPools,
    host: Host,
    headers: HeaderObject | FlatRequest,
    endStream: boolean,
    private readonly method: string,
    private readonly ev: TryEvents,
  ) {
    this.ended = endStream;
    if (headers instanceof FlatRequest) {
      this.chunked = !endStream && !headers.hasContentLength;
      this.flat = headers;
    } else {
      this.chunked = !endStream && headers['content-length'] === undefined;
      this.head = h1HeadOf(headers, method, this.chunked);
    }
    // An idle keep-alive connection (the usual case) is taken without building acquire's
    // callback; the closure lives in wait() so that this constructor allocates no context.
    const pool = pools.forHost(host);
    const idle = pool.takeIdle();
    if (idle !== null) this.attach(idle);
    else this.wait(pool, host);
  }

  private wait(pool: Http1HostPool, host: Host): void {
    this.cancel = pool.acquire(this.pools.cluster.spec.connectTimeoutMs, (conn, reason) => this.acquired(conn, reason, host));
  }

  private acquired(conn: Http1UpstreamConn | null, reason: string, host: Host): void {
    this.cancel = null;
    if (this.done) {
      if (conn) this.pools.forHost(host).release(conn, true);
      return;
    }
    if (!conn) {
      this.done = true;
      this.ev.onFailure(reason === 'overflow' ? 'overflow' : 'connect_failure');
      return;
    }
    this.attach(conn);
  }

  /** Sends the head (and what body came meanwhile) on `conn`, which this try now holds. */
  private attach(conn: Http1UpstreamConn): void {
    this.conn = conn;
    conn.user = this;
    const pending = this.pending;
    if (pending === null && !this.chunked) {
      // Head only (a bodiless request, or a body still to come): one direct send(2) through
      // the pool's connection when nothing is queued, not the stream's write machinery; a flat
      // request's head is built and sent by one addon call, as bytes only if the kernel leaves some.
      const fr = this.flat;
      const fd = fr !== null ? conn.sendFd() : -1;
      if (fd < 0) conn.write(this.headBytes());
      else {
        const size = fr!.h1Size(false);
        const sent = fr!.sendH1Head(fd, size);
        if (sent !== size) conn.wrote(this.headBytes(), sent);
      }
    } else {
      conn.socket.cork();
      conn.socket.write(this.headBytes());
      if (pending !== null) for (const b of pending) this.writeBody(b);
      this.pending = null;
      if (this.ended) this.writeEnd();
      conn.socket.uncork();
    }
    if (this.drainCb) {
      const cb = this.drainCb;
      this.drainCb = null;
      cb();
    }
  }

  private headBytes(): Buffer {
    return (this.head ??= this.flat!.h1Head(this.chunked));
  }

  private writeBody(b: Buffer): boolean {
    const s = this.conn!.socket;
    if (!this.chunked) return s.write(b);
    if (b.length === 0) return true;
    s.write(`${b.length.toString(16)}\r\n`);
    s.write(b);
    return s.write('\r\n');
  }

  private writeEnd(): void {
    if (this.chunked) this.conn!.socket.write('0\r\n\r\n');
  }

  write(chunk: Buffer): boolean {
    if (this.done) return true;
    if (!this.conn) {
      (this.pending ??= []).push(chunk);
      return false;
    }
    return this.writeBody(chunk);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.conn && !this.done) this.writeEnd();
  }

  onDrain(cb: () => void): void {
    if (!this.conn) this.drainCb = cb;
    else this.conn.socket.once('drain', cb);
  }

  pause(): void {
    if (!this.conn) return;
    this.paused = true;
    this.conn.socket.pause();
  }

  resume(): void {
    if (!this.conn) return;
    this.paused = false;
    this.conn.socket.resume();
  }

  abort(downstreamGone = false): void {
    if (this.done) return;
    // A request on its way upstream that this side gives up on: a local reset, as Envoy counts
    // it, whether its connection closes below or is drained (read to the response's end, pooled).
    if (this.conn !== null) this.pools.stats.upstream_rq_tx_reset.value++;
    if (downstreamGone && this.drain()) return;
    this.done = true;
    if (this.cancel) this.cancel();
    const c = this.conn;
    this.conn = null;
    if (c) {
      c.user = null;
      c.destroy();
    }
  }

  /**
   * The client is gone but its whole request went upstream: the rest of the response is read and
   * dropped and the connection pooled (upstream/http1_drain.ts). A head still deferred never left:
   * the connection goes back at once. False: nothing to drain, close as before.
   */
  private drain(): boolean {
    const c = this.conn;
    if (c === null || !this.ended || this.pending !== null) return false;
    if (c.dropDeferred()) {
      c.user = null;
      if (this.paused) c.socket.resume();
      this.pools.forHost(c.pool.host).release(c, true);
    } else if (!drainResponse(c, this.method, this.respBuf, this.resp !== null ? this.framer : null, this.resp === null || wantsKeepAlive(this.resp))) return false;
    this.letGoFramer();
    this.conn = null;
    this.done = true;
    this.paused = false;
    return true;
  }

  /**
   * A read as `src[off, end)`, valid only during this call (the batch reader's arena). The usual
   * case, a whole final response in the read (a head without a body, or with its whole
   * content-length body and nothing after it) that the exchange sends on within the call
   * (onH1ResponseHead), is parsed and handed on from where it lies: no copy of the read. Anything
   * else takes a copy and onUpstreamData.
   */
  onUpstreamRead(src: Buffer, off: number, end: number): void {
    const ev = this.ev;
    if (this.done || this.resp !== null || this.respBuf !== null || ev.onH1ResponseHead === undefined) {
      this.onUpstreamData(copyOut(src, off, end));
      return;
    }
    const conn = this.conn;
    const r = parseResponseHead(src, off, end, DEFAULT_LIMITS, conn !== null ? conn.spareHead : null);
    if (typeof r === 'number' || r.status < 200) {
      // Cut, bad or interim: the general path parses it again from a copy.
      this.onUpstreamData(copyOut(src, off, end));
      return;
    }
    const at = off + r.headBytes;
    const noBody = responseHasNoBody(r.status, this.method);
    const cl = r.contentLength;
    if (noBody ? at !== end : r.chunked || cl <= 0 || end - at !== cl) {
      this.onUpstreamData(copyOut(src, off, end));
      return;
    }
    if (conn !== null) conn.spareHead = r;
    this.resp = r;
    const f = (this.framer = framerOf(conn));
    f.reset(noBody ? BodyMode.NONE : BodyMode.LENGTH, noBody ? 0 : cl);
    f.onPayload = null;
    // The body is src[at, end): right after the head in r.buf (a head parsed in place).
    const taken = ev.onH1ResponseHead(r.status, r, noBody, noBody ? -1 : end - at);
    // The exchange may have aborted this try from there (a status it retries on).
    if (this.done) return;
    if (noBody) {
      this.complete(true);
      return;
    }
    // Not taken (the exchange took the object path): the body goes on as a copy it may keep.
    if (!taken) {
      this.feed(copyOut(src, at, end), 0);
      return;
    }
    // Taken: the exchange sent it; the framer only counts it.
    f.feed(src, at, end);
    if (f.done) this.complete(true);
  }

  onUpstreamData(chunk: Buffer): void {
    if (this.done) return;
    if (this.resp) {
      this.feed(chunk, 0);
      return;
    }
    const buf = this.respBuf ? Buffer.concat([this.respBuf, chunk]) : chunk;
    let off = 0;
    // The connection's previous response head is refilled: nothing holds it once its try is
    // done (exchanges copy what they keep), and a head and its fields array cost ~400 bytes.
    const conn = this.conn;
    for (;;) {
      const r = parseResponseHead(buf, off, buf.length, DEFAULT_LIMITS, conn !== null ? conn.spareHead : null);
      if (typeof r === 'number') {
        if (r === HeadStatus.NEED_MORE) {
          this.respBuf = buf.subarray(off);
          return;
        }
        this.fail('protocol_error');
        return;
      }
      off += r.headBytes;
      if (conn !== null) conn.spareHead = r;
      if (r.status >= 100 && r.status < 200) continue;
      this.respBuf = null;
      this.resp = r;
      const noBody = responseHasNoBody(r.status, this.method);
      const mode = noBody ? BodyMode.NONE : r.chunked ? BodyMode.CHUNKED : r.contentLength >= 0 ? BodyMode.LENGTH : BodyMode.UNTIL_CLOSE;
      const f = (this.framer = framerOf(conn));
      f.reset(mode, r.contentLength > 0 ? r.contentLength : 0);
      // LENGTH and UNTIL_CLOSE bodies are the payload as is; only chunked needs onPayload (and its
      // closure, which the connection's framer holds until letGoFramer()).
      f.onPayload = mode === BodyMode.CHUNKED ? (b, s, e) => this.ev.onData(b.subarray(s, e)) : null;
      const ev = this.ev;
      let taken = false;
      if (ev.onH1ResponseHead !== undefined) {
        const cl = r.contentLength;
        // The body, when all here, is buf[off, off + cl): right after the head in r.buf.
        taken = ev.onH1ResponseHead(r.status, r, mode === BodyMode.NONE, mode === BodyMode.LENGTH && cl > 0 && buf.length - off >= cl ? cl : -1);
      } else {
        const h = headerObjectOf(r);
        h[':status'] = String(r.status);
        ev.onResponse(r.status, h, mode === BodyMode.NONE);
      }
      // The exchange may have aborted this try from onResponse (a status it retries on):
      // nothing of this response may reach it after that.
      if (this.done) return;
      if (mode === BodyMode.NONE) {
        this.complete(off === buf.length);
        return;
      }
      if (off < buf.length) this.feed(buf, off, taken);
      return;
    }
  }

  /** `taken`: the owner already has this payload (onH1ResponseHead's `whole`): framed, not handed on. */
  private feed(buf: Buffer, off: number, taken = false): void {
    const f = this.framer!;
    const e = f.feed(buf, off, buf.length);
    if (e === BODY_ERROR) {
      this.done = true;
      this.conn?.destroy();
      this.ev.onAbort();
      return;
    }
    if (!taken && !f.onPayload && e > off) this.ev.onData(buf.subarray(off, e));
    if (f.done && !this.done) this.complete(e === buf.length);
  }

  /** The connection goes on without this try: its framer must not keep this try's callback. */
  private letGoFramer(): void {
    const f = this.framer;
    if (f !== null) f.onPayload = null;
  }

  private complete(clean: boolean): void {
    const c = this.conn;
    this.letGoFramer();
    this.conn = null;
    this.done = true;
    if (c) {
      // The body's last chunk may have paused the read (the exchange resumes only this try, and
      // only while it holds the conn): a pooled conn must be read, or the next response on it
      // is never seen.
      if (this.paused) {
        this.paused = false;
        c.socket.resume();
      }
      const keepAlive = wantsKeepAlive(this.resp!);
      this.pools.forHost(c.pool.host).release(c, clean && this.ended && keepAlive, !keepAlive);
    }
    this.ev.onEnd(null);
  }

  private fail(kind: TryFailureKind): void {
    this.done = true;
    const c = this.conn;
    this.conn = null;
    c?.destroy();
    this.ev.onFailure(kind);
  }

  onUpstreamClose(): void {
    this.conn = null;
    if (this.done) return;
    if (!this.resp) {
      this.done = true;
      this.ev.onFailure('reset');
      return;
    }
    if (this.framer!.mode === BodyMode.UNTIL_CLOSE) {
      this.done = true;
      this.ev.onEnd(null);
      return;
    }
    this.done = true;
    this.ev.onAbort();
  }
}

// ---- hedging (hedge_policy.hedge_on_per_try_timeout) ----

/**
 * What a hedged exchange hears from a try it stopped waiting for (its per-try timeout passed and
 * a new try started) but did not cancel. `parkedResponse` returns true when the exchange made
 * the parked try its current one (the answer then flows on as usual), false when it dropped it.
 */
export interface HedgeOwner {
  parkedResponse(p: ParkedTry, status: number, grpcStatus: number): boolean;
  parkedFailure(p: ParkedTry, kind: TryFailureKind): void;
}

/** A try left running after its per-try timeout. Holds the host's rq_active until dropped or promoted. */
export type ParkedTry = TryRelay | ParkedH1Conn;

/**
 * Events of one try, passed on to the exchange; once `parked`, a response head or failure goes
 * to the owner's parked handlers first. Only built for routes that hedge, so other requests keep
 * handing themselves to the try directly.
 */
export class TryRelay implements TryEvents {
  parked = false;
  try: UpstreamTry | null = null;

  constructor(
    private readonly owner: TryEvents & HedgeOwner,
    readonly host: Host,
    readonly t0: number,
  ) {}

  get requestNeverIndexed(): string | undefined {
    return this.owner.requestNeverIndexed;
  }

  onResponse(status: number, headers: HeaderObject, endStream: boolean): void {
    if (this.parked) {
      const g = headers['grpc-status'];
      if (!this.owner.parkedResponse(this, status, endStream && g !== undefined ? Number(Array.isArray(g) ? g[0] : g) : -1)) return;
    }
    this.owner.onResponse(status, headers, endStream);
  }

  onData(chunk: Buffer): void {
    if (!this.parked) this.owner.onData(chunk);
  }

  onEnd(trailers: HeaderObject | null): void {
    if (!this.parked) this.owner.onEnd(trailers);
  }

  onFailure(kind: TryFailureKind): void {
    if (this.parked) this.owner.parkedFailure(this, kind);
    else this.owner.onFailure(kind);
  }

  onAbort(): void {
    if (!this.parked) this.owner.onAbort();
  }

  /** The losing try: reset the stream, or close the HTTP/1.1 connection (never back to the pool). */
  drop(): void {
    this.parked = false;
    const t = this.try;
    this.try = null;
    t?.abort();
  }
}

/**
 * An HTTP/1.1 upstream connection whose try was hedged: reads until a response head is complete,
 * then asks the owner whether it wins. A winner's bytes are handed to the connection's new user
 * (the exchange) as they arrived; a loser's connection is destroyed, since the rest of its
 * response would otherwise be read as the answer to the next request on it.
 */
export class ParkedH1Conn implements Http1ConnUser {
  readonly parked = true;
  private buf: Buffer | null;

  constructor(
    private readonly owner: HedgeOwner,
    public conn: Http1UpstreamConn | null,
    readonly host: Host,
    readonly t0: number,
    /** Bytes of a response head that had begun to arrive. */
    already: Buffer | null,
  ) {
    this.buf = already;
    conn!.user = this;
  }

  onUpstreamData(chunk: Buffer): void {
    const c = this.conn;
    if (!c) return;
    const buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    let off = 0;
    for (;;) {
      const r = parseResponseHead(buf, off, buf.length);
      if (typeof r === 'number') {
        if (r === HeadStatus.NEED_MORE) {
          this.buf = buf;
          return;
        }
        this.fail('protocol_error');
        return;
      }
      off += r.headBytes;
      if (r.status >= 100 && r.status < 200) continue;
      this.buf = null;
      const g = r.fieldsEnd !== r.fieldsAt ? grpcStatusOfHead(r) : -1;
      if (!this.owner.parkedResponse(this, r.status, g)) return;
      // Promoted: the owner is the connection's user now; it parses the head again from the start.
      const u = c.user;
      if (u && u !== this) u.onUpstreamData(buf);
      return;
    }
  }

  onUpstreamClose(): void {
    if (!this.conn) return;
    this.conn = null;
    this.owner.parkedFailure(this, 'reset');
  }

  private fail(kind: TryFailureKind): void {
    this.drop();
    this.owner.parkedFailure(this, kind);
  }

  /** Takes the connection for the owner (promotion). */
  take(): Http1UpstreamConn {
    const c = this.conn!;
    this.conn = null;
    return c;
  }

  drop(): void {
    const c = this.conn;
    this.conn = null;
    if (c) {
      c.user = null;
      c.destroy();
    }
  }
}

/** An HTTP/1 head's grpc-status (the first one), -1 when it has none. */
export function grpcStatusOfHead(r: MessageHead): number {
  const f = r.fieldSlots;
  for (let i = r.fieldsAt; i < r.fieldsEnd; i += F.SIZE) {
    if (r.buf.toString('latin1', f[i + F.NAME_START]!, f[i + F.NAME_END]!).toLowerCase() === 'grpc-status') return Number(r.buf.toString('latin1', f[i + F.VALUE_START]!, f[i + F.VALUE_END]!));
  }
  return -1;
}

/** Whether a response status is one the retry policy retries on (no budget check, no side effects). */
export function statusRetriable(p: HttpRetryPolicy, status: number, grpcStatus: number): boolean {
  return (
    (p.on5xx && status >= 500) ||
    (p.onGatewayError && (status === 502 || status === 503 || status === 504)) ||
    (p.onRetriableStatusCodes && p.retriableStatusCodes.has(status)) ||
    (grpcStatus >= 0 && p.grpcCodes.has(grpcStatus))
  );
}
