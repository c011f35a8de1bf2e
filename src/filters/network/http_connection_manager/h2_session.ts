/**
 * Downstream HTTP/2 (h2c with prior knowledge) on node:http2. nghttp2 does the framing in C, but
 * every request still becomes a ServerHttp2Stream plus header objects, which costs more per
 * request than the HTTP/1 byte path; the bench's h2c rows measure it. Routing, retries and
 * timeouts follow the same route table and policies as HTTP/1.
 *
 * With `--h2-engine native`, plaintext connections on the native io engine are served by the
 * addon's nghttp2 session instead (src/protocols/http2/native_session.ts): H2Exchange sees the
 * same small stream surface (H2DownStream) either way.
 */
import { registerDownstream, socketDownstream } from '../../../rbac/identity.js';
import type { RequestTrace } from '../../../observability/tracing/tracer.js';
import { newEntry, type AccessLogEntry } from '../../../observability/access_log/entry.js';
import type { MetadataValue } from '../../http/types.js';
import { applyLocalReplyHeaders } from './local_reply.js';
import http2 from 'node:http2';
import net from 'node:net';
import { DirectSocket, type ClientSocket } from '../../../io/direct_socket.js';
import { log } from '../../../log.js';
import { effectiveTimeoutMs, pathOnly, rewritePath, streamDurationMs, upstreamGrpcTimeout, type ForwardAction, type HeaderMutation, type HttpRoute, type HttpRequestView, type RedirectAction } from '../../../router/http_route_table.js';
import { pickRouteCluster, type HttpLbContext } from '../../../router/hash_policy.js';
import type { Cluster } from '../../../upstream/cluster.js';
import type { Host } from '../../../upstream/host.js';
import { OutlierResult } from '../../../upstream/outlier/monitor.js';
import { outlierOfFailure } from './http1_session.js';
import type { BreakerState } from '../../../upstream/circuit_breakers.js';
import { upstreamProtocolOf, useStreamSlots } from '../../../upstream/http2_pool.js';
import { countUpstreamStatus, type HTTP_CLUSTER_STATS } from '../../../upstream/http_stats.js';
import type { StatsOf } from '../../../observability/stats.js';
import type { ExchangeObserver, FilterDoneHook, FilterReply, HttpFilterRequest, ResponseBodyFilter } from '../../http/types.js';
import { withFilterHeaders } from '../../http/chain.js';
import { applyHeaderObject, editLocalReplyObject } from './response_edits.js';
import { innerTry, TransformTry } from './transform_try.js';
import type { Downstream } from '../../../io/engine.js';
import { native, RUNS_TABLE, setTable, TableSlot } from '../../../native.js';
import { h2Engine } from '../../../protocols/http2/engine.js';
import { PrematureResets } from './premature_resets.js';
import { pathRedirect, preparePath } from './normalize_path.js';
import { XFCC, XfccAction, xfccAction, xfccElement, xfccValue, type XfccConfig } from './xfcc.js';
import { FieldToken, flatBase, flatGet, flatIndex, flatTab, flatOf, H2SessionEnd, headerObject, httpDate, NativeH2Connection, NativeH2Stream, neverIndexedOf, setNeverIndexed, type NativeH2Handlers, type NativeH2Settings } from '../../../protocols/http2/native_session.js';
import { FLAT, FlatBlocks, nameIs, type FlatWriter } from '../../../protocols/http2/flat_headers.js';
import { REQUEST_ID_FILL_PAIR, uuidV4 } from '../../../protocols/http1/request_id.js';
// The native HTTP/2 sessions read the clock once per event batch (native_session.ts onEvents).
import { now as clockNow } from '../../../protocols/http1/clock.js';
import { F, HeaderKind, type MessageHead } from '../../../protocols/http1/types.js';
import { headFlagsInTables } from '../../../protocols/http1/parser.js';
import { ResponseHas } from '../../../protocols/http1/native_head.js';
import type { ConnectionContext } from '../types.js';
import type { HttpConnectionManagerFilter } from './filter.js';
import { sendMirrors } from './mirror.js';
import { armDeadline, disarmDeadline, type DeadlineList, type DeadlineOwner } from './deadlines.js';
import type { TimedStream } from './stream_timeouts.js';
import { grpcStatusOfHttp } from '../../../protocols/http2/grpc_status.js';
import { FlatRequest, grpcStatusOfHead, HELD_AUTHORITY, HELD_METHOD, HELD_PATH, headerObjectOf, H1Try, H2Try, TryRelay, statusRetriable, type HedgeOwner, type HeaderObject, type ParkedTry, type TryEvents, type TryFailureKind, type UpstreamTry } from './upstream_try.js';
import { noteTried, pickTryHost, type TriedHosts } from './retry_hosts.js';
import { stripHostPort } from './host_port.js';
import { flatDropUnderscored, flatHasUnderscore, objectDropUnderscored, objectHasUnderscore, Underscores } from './underscores.js';
import { PerConnection } from '../../../io/per_connection.js';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** Shared by every stream: a peer's stream error must not throw, and one function needs no closure per stream. */
function ignore(): void {}

type ClusterHttpStats = StatsOf<typeof HTTP_CLUSTER_STATS>;

const RESET = new Error('stream reset by the proxy');

/**
 * RST_STREAM INTERNAL_ERROR on a downstream stream, whatever has been sent. node:http2's
 * close(code) ends the writable side first, so a stream whose response had begun went out with
 * END_STREAM and the client took a cut-short body for a whole one; destroy(err) resets the
 * stream where it stands (rst code INTERNAL_ERROR for an error), dropping what is queued.
 */
function resetDownstream(s: H2DownStream): void {
  if (s instanceof NativeH2Stream) return s.close(NGHTTP2_INTERNAL_ERROR);
  const n = s as unknown as http2.ServerHttp2Stream;
  if (n.destroyed) return;
  // destroy(err) emits 'error': a stream that failed before start() has no listener yet.
  n.on('error', ignore);
  n.destroy(RESET);
}

/**
 * The exchange a downstream stream belongs to: one set of module-level listeners finds it here,
 * instead of a closure per listener per stream.
 */
const EX = Symbol('strait.h2exchange');

/**
 * What H2Exchange uses of a downstream stream: node:http2's ServerHttp2Stream, or the addon
 * session's NativeH2Stream, which implements exactly this.
 */
export interface H2DownStream {
  readonly session: { readonly socket: object } | undefined;
  readonly closed: boolean;
  readonly destroyed: boolean;
  respond(headers: HeaderObject, opts: { endStream?: boolean; waitForTrailers?: boolean }): void;
  write(chunk: Buffer): boolean;
  /** Optional (NativeH2Stream): write() for `len` bytes at `off` of a batch's pool (NativeH2Session.dataAt). */
  writeAt?(pool: Buffer, off: number, len: number, gen: number): boolean;
  end(chunk?: Buffer): void;
  close(code?: number): void;
  sendTrailers(trailers: HeaderObject): void;
  pause(): unknown;
  resume(): unknown;
  on(event: string, fn: (...a: any[]) => void): unknown;
  once(event: string, fn: (...a: any[]) => void): unknown;
}
type ExStream = H2DownStream & { [EX]: H2Exchange };
/** The session socket as socketDownstream takes it (a key object for native sessions, registered up front). */
function sessionSocket(s: H2DownStream): net.Socket | undefined {
  return s.session?.socket as net.Socket | undefined;
}

function onDownClose(this: ExStream): void {
  this[EX].onClose();
}
function onDownData(this: ExStream, d: Buffer): void {
  this[EX].onBody(d);
}
function onDownDataAt(this: ExStream, pool: Buffer, off: number, len: number, gen: number): void {
  this[EX].onBodyAt(pool, off, len, gen);
}
function onDownEnd(this: ExStream): void {
  this[EX].onRequestEnd();
}
function onWantTrailers(this: ExStream): void {
  this[EX].sendTrailers();
}

/** Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); `te` is allowed as "trailers" only. */
const H2_FORBIDDEN_LIST = ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'transfer-encoding', 'http2-settings', 'host'];
const H2_FORBIDDEN = new Set(H2_FORBIDDEN_LIST);

/**
 * Methods whose requests should have no body (Envoy's list): an empty one gets no content-length:
 * 0 upstream. Compared in place: the method is a string sliced per request, and a Set lookup
 * hashed it every time (~330 instructions a request).
 */
function bodiless(m: string): boolean {
  return m === 'GET' || m === 'HEAD' || m === 'DELETE' || m === 'TRACE' || m === 'CONNECT';
}

/** Every header of a request, pseudo-headers included, for filters that forward them (ext_authz). */
function h2HeaderList(h: HeaderObject): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const k of Object.keys(h)) {
    const v = h[k];
    if (Array.isArray(v)) for (const x of v) out.push([k, x]);
    else if (v !== undefined) out.push([k, String(v)]);
  }
  return out;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * The connection as the listener left it (addresses restored from SO_ORIGINAL_DST or a PROXY
 * header, TLS facts), for the session node:http2 creates synchronously inside
 * emit('connection'): the 'session' handler registers it for the session's socket, so routing
 * (ORIGINAL_DST, source-IP hashing), x-forwarded-for, RBAC and access logs see what tcp_proxy
 * and HTTP/1.1 see.
 */
let handing: Downstream | null = null;
/** Its connection, which the session's drain hook is set on. */
let handingConn: ConnectionContext | null = null;

/** Each node:http2 session's premature-reset count (a native connection holds its own). */
const resetsOf = new PerConnection<PrematureResets>('strait.prematureResets');
/** For a stream whose session is already gone (it cannot be closed for resets any more). */
const NO_GUARD = new PrematureResets(() => {}, () => {});

/**
 * headers_with_underscores_action on a node:http2 stream, before the exchange exists: false when
 * the stream was reset (REJECT_REQUEST, as Envoy's HTTP/2 codec); DROP_HEADER deletes the fields.
 */
function objectUnderscoresOk(filter: HttpConnectionManagerFilter, stream: http2.ServerHttp2Stream, headers: Record<string, unknown>): boolean {
  const us = filter.underscoreStats!.http2;
  if (filter.config.underscores === Underscores.DROP_HEADER) {
    us.dropped.value += objectDropUnderscored(headers);
    return true;
  }
  if (!objectHasUnderscore(headers)) return true;
  us.rejected.value++;
  resetDownstream(stream as unknown as H2DownStream);
  return false;
}

/** The same on a native stream's flat field list: the list to serve, or null when the stream was reset. */
function flatUnderscoresOk(filter: HttpConnectionManagerFilter, stream: NativeH2Stream, flat: string): string | null {
  const us = filter.underscoreStats!.http2;
  if (filter.config.underscores === Underscores.DROP_HEADER) {
    if (!flat.includes('_')) return flat;
    const d = flatDropUnderscored(flat);
    us.dropped.value += d.dropped;
    return d.flat;
  }
  if (!flatHasUnderscore(flat)) return flat;
  us.rejected.value++;
  resetDownstream(stream);
  return null;
}

/** Requests started per node:http2 session, under max_requests_per_connection. */
const requestsOf = new PerConnection<number>('strait.requests');

/**
 * max_requests_per_connection on HTTP/2: the stream that reaches it is served, and GOAWAY tells
 * the client to open a new connection for the next ones (Envoy's drain sequence).
 */
function countRequest(filter: HttpConnectionManagerFilter, session: http2.Http2Session, max: number): void {
  const n = (requestsOf.get(session) ?? 0) + 1;
  requestsOf.set(session, n);
  if (n !== max) return;
  filter.stats.downstream_cx_max_requests_reached.value++;
  session.close();
}

/** Creates the connection manager's HTTP/2 server (never listening: connections are handed to it). */
export function createH2Server(filter: HttpConnectionManagerFilter): http2.Http2Server {
  const cfg = filter.config;
  const server = http2.createServer({
    maxHeaderListPairs: cfg.limits.maxHeaders + 8,
    settings: { maxHeaderListSize: cfg.limits.maxHeadBytes, ...cfg.h2Settings },
  });
  const maxRequests = cfg.maxRequestsPerConnection;
  server.on('stream', (stream, headers, flags) => {
    if (cfg.underscores !== Underscores.ALLOW && !objectUnderscoresOk(filter, stream, headers as Record<string, unknown>)) return;
    try {
      const resets = resetsOf.get(stream.session!) ?? NO_GUARD;
      new H2Exchange(filter, stream, headers as HeaderObject, null, resets).start((flags & NGHTTP2_FLAG_END_STREAM) !== 0);
    } catch (err) {
      // A bug must cost this stream, never the process.
      log.error({ err: (err as Error).stack }, 'http connection manager failed on an HTTP/2 stream');
      resetDownstream(stream);
    }
    if (maxRequests > 0 && stream.session) countRequest(filter, stream.session, maxRequests);
  });
  // A protocol error ends that session with GOAWAY (nghttp2 does it); other connections go on.
  server.on('sessionError', () => filter.stats.downstream_cx_protocol_error.value++);
  server.on('session', (session) => {
    useStreamSlots(session);
    resetsOf.set(session, new PrematureResets(() => session.destroy(), () => filter.stats.downstream_rq_too_many_premature_resets.value++));
    const d = handing;
    if (d) registerDownstream(session.socket, { remote: d.remote, local: d.local, tls: d.tls ?? null, filterState: d.filterState ?? null, socket: session.socket, close: () => session.destroy() } as Downstream);
    // Drain and hot restart: GOAWAY naming the last stream taken; the session ends after those.
    if (handingConn) handingConn.drain = () => session.close();
    session.on('error', () => {});
    if (cfg.idleTimeoutMs > 0) {
      session.setTimeout(cfg.idleTimeoutMs, () => {
        filter.stats.downstream_cx_idle_timeout.value++;
        session.close();
      });
    }
  });
  return server;
}

/** Hands a downstream connection to the HTTP/2 server; `already` are bytes read while sniffing. */
export function serveH2(filter: HttpConnectionManagerFilter, conn: ConnectionContext, from: ClientSocket, already: Buffer | null): void {
  // HTTP/2 state cannot move to another process: a hot restart drains the connection instead.
  conn.handover = null;
  let socket: net.Socket;
  if (from instanceof DirectSocket) {
    // Its fd moves on, with the bytes read for it and not yet delivered after `already`.
    const { fd, rest } = from.take();
    const bytes = rest === null ? already : already === null || already.length === 0 ? rest : Buffer.concat([already, rest]);
    if (h2Engine() === 'native' && native().H2Session) {
      startNativeH2(filter, conn, fd, bytes);
      return;
    }
    socket = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: false, pauseOnCreate: true } as net.SocketConstructorOpts);
    already = bytes;
  } else {
    socket = from;
    if (h2Engine() === 'native' && serveH2Native(filter, conn, socket, already)) return;
  }
  const st = filter.stats;
  st.downstream_cx_http2_total.value++;
  st.downstream_cx_http2_active.value++;
  socket.removeAllListeners('data');
  socket.removeAllListeners('end');
  socket.pause();
  // node:http2 reads what is already buffered on the socket before its own reads.
  if (already && already.length) socket.unshift(already);
  conn.abort = () => socket.destroy();
  socket.on('error', () => {});
  socket.once('close', () => {
    st.downstream_cx_active.value--;
    st.downstream_cx_http2_active.value--;
    st.downstream_cx_destroy.value++;
    conn.done();
  });
  handing = conn.downstream;
  handingConn = conn;
  try {
    filter.h2Server().emit('connection', socket);
  } finally {
    handing = null;
    handingConn = null;
  }
}

/**
 * `--h2-engine native`: the connection's fd moves from `socket` to the addon's nghttp2 session.
 * Only for a plaintext socket of the native io engine with nothing buffered in it; false leaves
 * the connection to node:http2, untouched.
 */
function serveH2Native(filter: HttpConnectionManagerFilter, conn: ConnectionContext, socket: net.Socket, already: Buffer | null): boolean {
  if (filter.rt.engine.name !== 'native' || conn.downstream.tls || (socket as { encrypted?: boolean }).encrypted) return false;
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0 || socket.readableLength > 0) return false;
  const b = native();
  if (!b.H2Session) return false; // an addon built before native/http2
  // A copy of the fd for the session; closing the socket then closes only node's copy (libuv
  // stops polling it first), and the connection itself stays open.
  let own: number;
  try {
    own = b.upgrade.dup(fd);
  } catch {
    return false; // EMFILE: node:http2 serves this one on the socket it already has
  }
  socket.removeAllListeners();
  socket.on('error', ignore);
  socket.destroy();
  startNativeH2(filter, conn, own, already);
  return true;
}

/** HTTP/2's connection preface: what a client sends first (an HTTP/1 parser would call it malformed). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * codec AUTO on the native engines: a connection whose client has already sent HTTP/2's preface
 * when it is accepted goes to the addon's session at once, by a peek at the socket (as Envoy's
 * http_inspector decides), instead of through a net.Socket and an HTTP/1 session that read the
 * bytes only to hand the connection over. HTTP/2 clients write the preface as soon as they are
 * connected, so it is often there already. False, with nothing touched, otherwise: the bytes are
 * sniffed as before. Only where the connection would otherwise get a net.Socket: an HTTP/1
 * session on a DirectSocket hands the fd over for less than the peek costs every connection.
 */
export function serveH2IfPreface(filter: HttpConnectionManagerFilter, conn: ConnectionContext): boolean {
  const engine = filter.rt.engine;
  if (engine.takeIfStartsWith === undefined || h2Engine() !== 'native' || conn.initialData || conn.downstream.tls || !native().H2Session) return false;
  const fd = engine.takeIfStartsWith(conn.downstream, H2_PREFACE);
  if (fd < 0) return false;
  conn.handover = null; // HTTP/2 state cannot move to another process: drained instead
  startNativeH2(filter, conn, fd, null);
  return true;
}

/** The addon's nghttp2 session serves the connection on `own` (its fd from now on). */
function startNativeH2(filter: HttpConnectionManagerFilter, conn: ConnectionContext, own: number, already: Buffer | null): void {
  const st = filter.stats;
  const cfg = filter.config;
  st.downstream_cx_http2_total.value++;
  st.downstream_cx_http2_active.value++;
  let c: NativeH2Connection | null = null;
  const maxRequests = cfg.maxRequestsPerConnection;
  let requests = 0;
  const resets = new PrematureResets(() => c?.destroy(), () => st.downstream_rq_too_many_premature_resets.value++);
  const settings: NativeH2Settings = {
    maxConcurrentStreams: cfg.h2Settings.maxConcurrentStreams,
    initialWindowSize: cfg.h2Settings.initialWindowSize,
    maxHeaderListSize: cfg.limits.maxHeadBytes,
    maxHeaderPairs: cfg.limits.maxHeaders + 8,
    highWaterMark: Math.max(64 * 1024, conn.bufferLimit),
    idleTimeoutMs: cfg.idleTimeoutMs,
  };
  // `held`: `flat` is the very list the addon holds for the stream (requestHeld and
  // sendHttp1HeadHeld cut the upstream request's fields from that block by offsets in it).
  const startFlat = (stream: NativeH2Stream, flat: string, endStream: boolean, neverIndexed: string | undefined, held: boolean): void => {
    if (cfg.underscores !== Underscores.ALLOW) {
      const f = flatUnderscoresOk(filter, stream, flat);
      if (f === null) return;
      if (f !== flat) held = false;
      flat = f;
    }
    try {
      const ex = new H2Exchange(filter, stream, null, flat, resets);
      if (!held) ex.flatRewritten();
      if (neverIndexed !== undefined) ex.requestNeverIndexedIs(neverIndexed);
      ex.start(endStream);
    } catch (err) {
      // A bug must cost this stream, never the process.
      log.error({ err: (err as Error).stack }, 'http connection manager failed on an HTTP/2 stream');
      resetDownstream(stream);
    }
    if (maxRequests > 0 && ++requests === maxRequests) {
      // max_requests_per_connection: this stream is served; GOAWAY sends the next ones elsewhere.
      st.downstream_cx_max_requests_reached.value++;
      c?.close();
    }
  };
  const handlers: NativeH2Handlers = {
    onStream(stream, headers, endStream) {
      startFlat(stream, flatOf(headers, false)[0].slice(0, -1), endStream, neverIndexedOf(headers), false);
    },
    onStreamFlat(stream, flat, endStream, neverIndexed) {
      startFlat(stream, flat, endStream, neverIndexed, true);
    },
    onIdle() {
      if (!c || c.isClosing) return;
      st.downstream_cx_idle_timeout.value++;
      c.close();
    },
    onEnd(reason) {
      if (reason === H2SessionEnd.PROTOCOL_ERROR) st.downstream_cx_protocol_error.value++;
      st.downstream_cx_active.value--;
      st.downstream_cx_http2_active.value--;
      st.downstream_cx_destroy.value++;
      conn.done();
    },
  };
  let connection: NativeH2Connection;
  try {
    connection = new NativeH2Connection(own, settings, already && already.length ? already : null, handlers);
  } catch (err) {
    // The session could not start (it closed the fd): this connection is lost, the process is not.
    log.error({ err: (err as Error).message }, 'native HTTP/2 session failed to start');
    st.downstream_cx_active.value--;
    st.downstream_cx_http2_active.value--;
    st.downstream_cx_destroy.value++;
    conn.done();
    return;
  }
  c = connection;
  const d = conn.downstream;
  registerDownstream(connection.socket, { remote: d.remote, local: d.local, tls: null, filterState: d.filterState ?? null, socket: connection.socket, close: () => connection.destroy() } as unknown as Downstream);
  conn.abort = () => connection.destroy();
  conn.drain = () => connection.close();
}

/**
 * The state of an exchange that only some requests use: tracing, an access log, the HTTP filters'
 * done hooks and fault delay, the buffer filter's hold, retries (backoff, per-try timeout, the
 * max_retries slot), hedging, mirroring and never-indexed fields. An exchange is allocated per
 * request and every field of it initialized and then scavenged: these 20 live here, allocated on
 * first use, and the common exchange holds one null in their place (gRPC unary: 6% fewer bytes allocated per
 * request, see perf-reports/2026-12-04-h2-exchange-alloc.md).
 */
class H2ExchangeMore {
  /** Spans of this request; null without tracing. */
  trace: RequestTrace | null = null;
  /** For the access log (this object exists from the start when there is one): wall-clock start, Envoy's response flags, body bytes, response headers. */
  startMs = 0;
  flags = '';
  rxBytes = 0;
  txBytes = 0;
  respHeaders: HeaderObject | null = null;
  /** HTTP filters that acted on this request, told when it is over. */
  notify: FilterDoneHook[] | null = null;
  /** stream_idle_timeout / request_timeout watch (stream_timeouts.ts); null when neither is set. */
  timed: TimedStream | null = null;
  /** A filter (queued permit, fault delay) or the buffer filter holds the request; its body is kept meanwhile. */
  delayed = false;
  delayTimer: NodeJS.Timeout | null = null;
  /** The max_retries slot a retry holds while backing off. */
  retryHeld: BreakerState | null = null;
  /** A filter chose the gRPC status of the local reply. */
  grpcOverride: number | null = null;
  perTryTimer: NodeJS.Timeout | null = null;
  backoffTimer: NodeJS.Timeout | null = null;
  /** max_stream_duration's timer, when one applies. */
  durationTimer: NodeJS.Timeout | null = null;
  /** The request was copied to the route's mirror clusters. */
  mirrored = false;
  /** The buffer filter holds this request until its body is complete: at most `holdMax` bytes, then `holdThen`. */
  holdMax = 0;
  holdThen: (() => void) | null = null;
  /** Past holdMax, holdThen runs with what came (a filter's allowPartial) instead of a 413. */
  holdPartial = false;
  /** On hedging routes: the current try's relay, and tries left running past their per-try timeout. */
  relay: TryRelay | null = null;
  hedged: TryRelay[] | null = null;
  /**
   * Names the client sent in the request, and an HTTP/2 upstream in its trailers, as HPACK
   * never-indexed literals ("name\0name..."): the next hop must get them so too (RFC 7541 §7.1.3).
   */
  rqNever: string | undefined = undefined;
  trNever: string | undefined = undefined;
  /** Response header edits the HTTP filters decided (HttpFilterRequest.responseHeaders), after the route's. */
  respEdit: HeaderMutation | null = null;
  /** The filters' dynamic metadata (HttpFilterRequest.dynamicMetadata), for the access log. */
  meta: Map<string, Map<string, MetadataValue>> | null = null;
  /** The filters' response body transform (HttpFilterRequest.responseBody, the compressor): each try goes through a TransformTry. */
  respBody: ResponseBodyFilter | null = null;
  /** A filter watching the exchange (HttpFilterRequest.observer, grpc_stats). */
  obs: ExchangeObserver | null = null;
}

/** The body of a request that has none yet: shared, never pushed to (onBody replaces it). */
const NO_BODY: Buffer[] = [];

/**
 * H2Exchange's yes/no state, bits of one small integer (eight boolean fields were 64 bytes of
 * each exchange); a const enum so that its accessors are small enough to inline (as SF's in
 * native_session.ts).
 */
const enum XF {
  GRPC = 1,
  BODY_OVERFLOW = 2,
  REQUEST_DONE = 4,
  RESPONSE_STARTED = 8,
  FINISHED = 16,
  DOWN_PAUSED = 32,
  FLAT_HELD = 64,
  SENDS_TRAILERS = 128,
}

/**
 * What H2Exchange.scan took from a connection's last request list (NativeH2Connection.listMemo).
 * A client repeats one list, and the addon then hands over the same string (KEPT_LIST): the next
 * exchange takes these strings instead of scanning and slicing again. Being the very strings of
 * the last request also makes later compares with what that request left behind (the route
 * table's last target) a reference compare: a path of 13 bytes or more is a sliced string, which
 * V8 compares out of line (~470 instructions a gRPC request).
 */
class RequestListScan {
  /** The connection's last request list; the fields below are its when `filled`. */
  list: string | null = null;
  filled = false;
  /** How upstreamFlat forwarded the list last (set once it is `filled`), null when not kept. */
  up: UpstreamFlatMemo | null = null;
  method = '';
  path = '';
  authority: string | undefined = undefined;
  host: string | undefined = undefined;
  contentType: string | undefined = undefined;
  grpcTimeout: string | undefined = undefined;
  grpc = false;
}

/** upstreamFlatOf's inputs besides the list, and its answer (the parts of a FlatRequest) and request id. */
class UpstreamFlatMemo {
  readonly ip: string | undefined;
  readonly emptyBody: boolean;
  readonly generateRequestId: boolean;
  readonly fillId: boolean | undefined;
  readonly xfcc: number;
  readonly xfccElement: string;
  readonly originalPath: string | undefined;
  readonly requestId: string | null;
  readonly runs: number[];
  readonly extra: string;
  readonly pairs: number;
  readonly hasContentLength: boolean;
  readonly fillsId: boolean;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly authority: string,
    readonly h1: boolean,
    e: UpstreamEdits,
    r: FlatRequest,
  ) {
    this.ip = e.ip;
    this.emptyBody = e.emptyBody;
    this.generateRequestId = e.generateRequestId;
    this.fillId = e.fillId;
    this.xfcc = e.xfcc;
    this.xfccElement = e.xfccElement;
    this.originalPath = e.originalPath;
    this.requestId = e.requestId;
    const p = r.parts();
    this.runs = p.runs;
    this.extra = p.extra;
    this.pairs = r.pairs;
    this.hasContentLength = r.hasContentLength;
    this.fillsId = r.fillsId;
  }
}

/** One HTTP/2 request/response exchange, with the same route, retry and timeout semantics as HTTP/1. */
class H2Exchange implements TryEvents, HedgeOwner, TriedHosts, DeadlineOwner {
  /** XF bits; read and written through the accessors below. */
  private bits: number = XF.FLAT_HELD;
  private get grpc(): boolean { return (this.bits & XF.GRPC) !== 0; }
  private set grpc(v: boolean) { this.bits = v ? this.bits | XF.GRPC : this.bits & ~XF.GRPC; }
  private get bodyOverflow(): boolean { return (this.bits & XF.BODY_OVERFLOW) !== 0; }
  private set bodyOverflow(v: boolean) { this.bits = v ? this.bits | XF.BODY_OVERFLOW : this.bits & ~XF.BODY_OVERFLOW; }
  private get requestDone(): boolean { return (this.bits & XF.REQUEST_DONE) !== 0; }
  private set requestDone(v: boolean) { this.bits = v ? this.bits | XF.REQUEST_DONE : this.bits & ~XF.REQUEST_DONE; }
  private get responseStarted(): boolean { return (this.bits & XF.RESPONSE_STARTED) !== 0; }
  private set responseStarted(v: boolean) { this.bits = v ? this.bits | XF.RESPONSE_STARTED : this.bits & ~XF.RESPONSE_STARTED; }
  private get finished(): boolean { return (this.bits & XF.FINISHED) !== 0; }
  private set finished(v: boolean) { this.bits = v ? this.bits | XF.FINISHED : this.bits & ~XF.FINISHED; }
  private get downPaused(): boolean { return (this.bits & XF.DOWN_PAUSED) !== 0; }
  private set downPaused(v: boolean) { this.bits = v ? this.bits | XF.DOWN_PAUSED : this.bits & ~XF.DOWN_PAUSED; }
  /** `flat` is the list the native downstream session holds for the stream (flatRewritten()). */
  private get flatHeld(): boolean { return (this.bits & XF.FLAT_HELD) !== 0; }
  private set flatHeld(v: boolean) { this.bits = v ? this.bits | XF.FLAT_HELD : this.bits & ~XF.FLAT_HELD; }
  /** The response was started with waitForTrailers: onEnd must answer 'wantTrailers'. */
  private get sendsTrailers(): boolean { return (this.bits & XF.SENDS_TRAILERS) !== 0; }
  private set sendsTrailers(v: boolean) { this.bits = v ? this.bits | XF.SENDS_TRAILERS : this.bits & ~XF.SENDS_TRAILERS; }
  private route: HttpRoute | null = null;
  private action: ForwardAction | null = null;
  /** The route's hash and subset for every try, and a generated hash cookie (hash_policy.ts). */
  lb: HttpLbContext | null = null;
  private cluster: Cluster | null = null;
  /** The cluster's stats, looked up once when the cluster is chosen. */
  private cs: ClusterHttpStats | null = null;
  /** The upstream request: an object, or on the flat path a FlatRequest (its object built if asked). */
  private upReq: HeaderObject | FlatRequest | null = null;
  private requestId: string | null = null;
  /** The request body kept for retries and mirrors: NO_BODY until the first chunk. */
  private body: Buffer[] = NO_BODY;
  private bodyBytes = 0;
  private try: UpstreamTry | null = null;
  private host: Host | null = null;
  private retries = 0;
  /** Hosts this request's tries went to, for the previous_hosts retry predicate (retry_hosts.ts). */
  triedFirst: Host | null = null;
  triedMore: Host[] | null = null;
  /** The route timeout: links in its timeout length's list (deadlines.ts), armed while dlList is set. */
  dlPrev: DeadlineOwner | null = null;
  dlNext: DeadlineOwner | null = null;
  dlDue = 0;
  dlList: DeadlineList | null = null;
  /** The circuit-breaker request slot the current try holds (max_requests of the route's priority). */
  private rqHeld: BreakerState | null = null;
  /** clock.ts now() at the request and at the current try's start (the _rq_time histograms). */
  private readonly t0 = clockNow();
  private tryT0 = 0;
  /** The :status sent downstream; 0 until one is. */
  private status = 0;
  /** The rarely used state (H2ExchangeMore); null until something needs it. */
  private x: H2ExchangeMore | null = null;

  /** The request's header object: node:http2's, or built from `flat` the first time it is asked for. */
  private h: HeaderObject | null;
  /** The fields every exchange reads, taken once (repeats joined as headerObject joins them). */
  private method = '';
  private rqPath = '';
  /** :path as the native downstream's list has it (rqPath may be normalized or rewritten since). */
  private rqPathIn = '';
  /** The path the route rewrote rqPath to (the upstream's :path), null when it did not. */
  private upPath: string | null = null;
  private rqAuthority: string | undefined = undefined;
  private rqHost: string | undefined = undefined;
  private rqContentType: string | undefined = undefined;
  private rqGrpcTimeout: string | undefined = undefined;

  /**
   * One pass over the flat request for the fields above, instead of a lookup per field; whether
   * it is gRPC (its first content-type starts with application/grpc, as the joined value would).
   */
  private scan(s: string): boolean {
    // A flat list comes from the native session alone.
    const c = (this.stream as NativeH2Stream).session;
    let memo = c.listMemo as RequestListScan | null;
    if (memo === null) c.listMemo = memo = new RequestListScan();
    // Only a list the addon found repeated is compared with the memo's, normally the very same
    // string (a reference compare): a new list costs no compare (lists that differ often differ
    // only past their first bytes). A list a stream was refused for (underscores) may have come
    // between, and then compares unequal.
    if (!c.listRepeated || memo.list !== s) {
      // A list seen once is not worth the stores (each a write barrier: the memo is old, the
      // strings young); the fields are kept when it comes again.
      memo.list = s;
      memo.filled = false;
      memo.up = null;
      return this.scanFields(s);
    }
    if (memo.filled) {
      this.method = memo.method;
      this.rqPath = this.rqPathIn = memo.path;
      this.rqAuthority = memo.authority;
      this.rqHost = memo.host;
      this.rqContentType = memo.contentType;
      this.rqGrpcTimeout = memo.grpcTimeout;
      return memo.grpc;
    }
    const grpc = this.scanFields(s);
    memo.filled = true;
    memo.method = this.method;
    memo.path = this.rqPath;
    memo.authority = this.rqAuthority;
    memo.host = this.rqHost;
    memo.contentType = this.rqContentType;
    memo.grpcTimeout = this.rqGrpcTimeout;
    memo.grpc = grpc;
    return grpc;
  }

  private scanFields(s: string): boolean {
    const m = flatIndex(s);
    const t = flatTab;
    let grpc = false;
    for (let j = 0, r = flatBase; j < m; j++, r += 3) {
      switch (t[r + 2]) {
        case FieldToken.GRPC_CONTENT_TYPE:
          if (this.rqContentType === undefined) grpc = true;
          this.rqContentType = joinValue(this.rqContentType, s.slice(t[r]! + 1, t[r + 1]!));
          break;
        case FieldToken.HOST:
          this.rqHost = joinValue(this.rqHost, s.slice(t[r]! + 1, t[r + 1]!));
          break;
        case FieldToken.PATH:
          this.rqPath = this.rqPathIn = s.slice(t[r]! + 1, t[r + 1]!);
          break;
        case FieldToken.METHOD:
          this.method = s.slice(t[r]! + 1, t[r + 1]!);
          break;
        case FieldToken.AUTHORITY:
          this.rqAuthority = s.slice(t[r]! + 1, t[r + 1]!);
          break;
        case FieldToken.CONTENT_TYPE:
          this.rqContentType = joinValue(this.rqContentType, s.slice(t[r]! + 1, t[r + 1]!));
          break;
        case FieldToken.GRPC_TIMEOUT:
          this.rqGrpcTimeout = joinValue(this.rqGrpcTimeout, s.slice(t[r]! + 1, t[r + 1]!));
          break;
      }
    }
    return grpc;
  }

  constructor(
    private readonly filter: HttpConnectionManagerFilter,
    private readonly stream: H2DownStream,
    headers: HeaderObject | null,
    /** A native stream's request list as the addon gave it ("name\0value\0...", no trailing NUL). */
    private readonly flat: string | null,
    /** The connection's count of streams and premature resets. */
    private readonly resets: PrematureResets,
  ) {
    this.h = headers;
    if (flat !== null) this.grpc = this.scan(flat);
    else {
      const h = headers!;
      this.method = first(h[':method']) ?? '';
      this.rqPath = first(h[':path']) ?? '';
      this.rqAuthority = first(h[':authority']);
      this.rqHost = first(h.host);
      this.rqContentType = first(h['content-type']);
      this.rqGrpcTimeout = first(h['grpc-timeout']);
      // node:http2 lists what arrived never indexed on every header object (mostly none).
      const never = neverIndexedOf(h);
      if (never !== undefined) this.more.rqNever = never;
      this.grpc = (this.rqContentType ?? '').startsWith('application/grpc');
    }
    if (filter.accessLog) this.more.startMs = Date.now();
  }

  /** The request list was rewritten (underscored fields dropped): the addon's block is not it. */
  flatRewritten(): void {
    this.flatHeld = false;
  }

  /** The rarely used state, allocated on first use. */
  private get more(): H2ExchangeMore {
    return (this.x ??= new H2ExchangeMore());
  }

  /** A native stream's request had these fields never indexed ("name\0name..."); before start(). */
  requestNeverIndexedIs(names: string): void {
    this.more.rqNever = names;
  }

  /** TryEvents: the request's never-indexed names, for a try of the flat request. */
  get requestNeverIndexed(): string | undefined {
    const x = this.x;
    return x !== null ? x.rqNever : undefined;
  }

  // Reads of the rarely used state (writes go through `more`, or `x` when only clearing).
  private get trace(): RequestTrace | null {
    const x = this.x;
    return x !== null ? x.trace : null;
  }

  private get delayed(): boolean {
    const x = this.x;
    return x !== null && x.delayed;
  }

  private get backoffTimer(): NodeJS.Timeout | null {
    const x = this.x;
    return x !== null ? x.backoffTimer : null;
  }

  private get relay(): TryRelay | null {
    const x = this.x;
    return x !== null ? x.relay : null;
  }

  private get hedged(): TryRelay[] | null {
    const x = this.x;
    return x !== null ? x.hedged : null;
  }

  private clearPerTryTimer(): void {
    const x = this.x;
    if (x !== null && x.perTryTimer !== null) {
      clearTimeout(x.perTryTimer);
      x.perTryTimer = null;
    }
  }

  /** Response body bytes, counted for the access log. */
  private countTx(n: number): void {
    const x = this.x;
    if (x !== null) x.txBytes += n;
  }

  private get headers(): HeaderObject {
    return (this.h ??= headerObject(this.flat!));
  }

  /** One request header as first() reads it from the object, looked up in the flat list while there is no object. */
  private hdr(n: string): string | undefined {
    const h = this.h;
    return first(h !== null ? h[n] : flatGet(this.flat!, n, n.charCodeAt(0) === 58));
  }

  /** Adds one of Envoy's short response flags (UF, UT, NR...) for %RESPONSE_FLAGS%. */
  private flag(f: string): void {
    if (!this.filter.accessLog && this.filter.config.localReply === null) return;
    const x = this.more;
    x.flags = x.flags ? `${x.flags},${f}` : f;
  }

  /** Writes the access log line of this exchange (only called when there is a log). */
  private logAccess(): void {
    this.filter.accessLog!.log(this.entry());
  }

  /** What the access log and local_reply_config's filters see of this exchange. */
  private entry(): AccessLogEntry {
    const h = this.headers;
    const x = this.more;
    const e = newEntry(x.startMs);
    e.durationMs = Date.now() - x.startMs;
    e.bytesReceived = x.rxBytes;
    e.bytesSent = x.txBytes;
    const sock = sessionSocket(this.stream);
    if (sock) {
      const d = socketDownstream(sock);
      e.downstreamRemote = d.remote;
      e.downstreamLocal = d.local;
    }
    e.upstreamCluster = this.cluster?.name ?? null;
    e.upstreamHost = this.host?.label ?? null;
    e.responseFlags = x.flags;
    e.responseCode = this.status;
    e.protocol = 'HTTP/2';
    const rid = this.requestId;
    const up = this.upPath;
    e.requestHeader = (n) => {
      if (up !== null && n === ':path') return up;
      if (up !== null && n === ORIGINAL_PATH) return this.rqPath;
      const v = first(h[n === ':authority' && h[n] === undefined ? 'host' : n]);
      return v === undefined && n === 'x-request-id' && rid ? rid : v;
    };
    const rh = x.respHeaders;
    e.responseHeader = rh ? (n) => first(rh[n]) : null;
    e.dynamicMetadata = x.meta;
    return e;
  }

  private get stats() {
    return this.filter.stats;
  }

  /** `endStream`: the HEADERS frame ended the request (a GET): there is no body to wait for. */
  start(endStream: boolean): void {
    const st = this.stats;
    st.downstream_rq_total.value++;
    st.downstream_rq_http2_total.value++;
    st.downstream_rq_active.value++;
    const s = this.stream as ExStream;
    s[EX] = this;
    s.on('error', ignore);
    s.on('close', onDownClose);
    const to = this.filter.streamTimeouts;
    if (to !== null) this.more.timed = to.watch(this);
    if (endStream) {
      // Known complete now, the try is sent as complete: an HTTP/1 upstream then gets a plain head
      // in one write instead of a chunked head and a later "0\r\n\r\n" write (Node still ends
      // the readable side on its own, so 'data'/'end' need no listeners).
      this.requestDone = true;
      if (to !== null) this.x!.timed!.requestDone = true;
    } else {
      s.on('data', onDownData);
      if (s instanceof NativeH2Stream) s.on('dataAt', onDownDataAt);
      s.on('end', onDownEnd);
    }
    const cfg = this.filter.config;
    const method = this.method;
    let path = this.rqPath;
    // normalize_path: filters, routing, the trace and the upstream all see the canonical path.
    let badPath = false;
    let redirect = false;
    if (cfg.pathWork && path.charCodeAt(0) === 0x2f) {
      const n = preparePath(path, cfg);
      if (n === null) badPath = true;
      else {
        this.rqPath = path = n;
        // gRPC clients cannot follow a redirect: theirs is refused, as Envoy does.
        if (pathRedirect && this.grpc) badPath = true;
        else redirect = pathRedirect;
      }
    }
    let host = this.rqAuthority ?? this.rqHost ?? '';
    if (cfg.stripAnyHostPort) host = host.replace(/:\d+$/, '');
    else if (cfg.stripMatchingHostPort) host = stripHostPort(host, socketDownstream(sessionSocket(this.stream)!).local.port);
    const header = (n: string) => this.hdr(n);
    const trace = this.filter.tracer?.start(method, path, host, header, socketDownstream(sessionSocket(this.stream)!)) ?? null;
    if (trace !== null) this.more.trace = trace;
    // A fragment is never part of a request target (RFC 9113 §8.3.1, RFC 9112 §3.2): refused as
    // Envoy does (http_reject_path_with_fragment), so no path match sees a path the upstream won't.
    if (method === 'CONNECT' || !path.startsWith('/') || path.includes('#') || badPath) {
      this.localReply(method === 'CONNECT' ? 403 : 400, '');
      return;
    }
    if (redirect) {
      // UNESCAPE_AND_REDIRECT: the client asks again with the unescaped path (Envoy's 307).
      this.localReply(307, '', { location: path });
      return;
    }
    const view: HttpRequestView = { host, path, method, header };
    const route = cfg.routes.route(view);
    if (route !== null && route.action.kind === 'forward' && (cfg.maxStreamDurationMs > 0 || route.action.limitsStream)) this.armMaxDuration(route.action);
    // Only a chain with filters gets a request object (and the downstream's addresses) built.
    const req: HttpFilterRequest | null = this.filter.httpFilters && {
      method,
      path,
      header: view.header,
      grpc: this.grpc,
      downstream: socketDownstream(sessionSocket(this.stream)!),
      routePriority: route?.action.kind === 'forward' ? route.action.priority : 0,
      perRoute: route?.perFilter ?? null,
      headers: () => h2HeaderList(this.headers),
      protocol: 'HTTP/2',
    };
    const v = req && this.filter.runFilters(req);
    if (req !== null && req.observer) this.more.obs = req.observer;
    if (v) {
      if (v.notify) this.more.notify = v.notify;
      // Header edits a filter decided (ext_authz) go on the upstream request with the route's own.
      // Response header edits (cors, ext_authz) go on whatever response follows, local replies too.
      const routed = () => {
        if (req!.responseHeaders) this.more.respEdit = req!.responseHeaders;
        if (req!.responseBody) this.more.respBody = req!.responseBody;
        if (req!.dynamicMetadata) this.more.meta = req!.dynamicMetadata;
        if (req!.path !== path) this.rqPath = path = req!.path;
        if (req!.observer && this.more.obs === null) this.observeLate(req!.observer);
        this.act(route && withFilterHeaders(route, req!), method, path, host);
      };
      const replied = (r: FilterReply) => {
        if (req!.responseHeaders) this.more.respEdit = req!.responseHeaders;
        if (req!.dynamicMetadata) this.more.meta = req!.dynamicMetadata;
        const o = this.x !== null ? this.x.obs : null;
        if (o !== null) {
          const c = this.filter.routeCluster(route, header);
          if (c) o.routed(c);
        }
        this.filterReply(r);
      };
      const go = () => (v.reply ? replied(v.reply) : routed());
      if (v.wait) {
        // A filter holds the request (a queued rate-limit permit, an authorization check): the body is held meanwhile.
        const x = this.more;
        x.delayed = true;
        const ask = (): void => {
          x.delayed = true;
          v.wait!((reply) => {
            if (this.finished) return;
            x.delayed = false;
            if (reply) replied(reply);
            else routed();
          });
        };
        const nb = v.needBody;
        if (nb && !this.requestDone) {
          // The filter decides on the body (ext_authz with_request_body): held until complete,
          // or until maxBytes when allowPartial (413 past it otherwise), as the buffer filter does.
          x.holdMax = nb.maxBytes;
          x.holdPartial = nb.allowPartial;
          x.holdThen = () => {
            req!.body = this.heldBody(nb.maxBytes);
            ask();
          };
          return;
        }
        if (nb) req!.body = this.heldBody(nb.maxBytes);
        ask();
        return;
      }
      if (v.delayMs > 0) {
        // Fault delay: request data keeps arriving and is held until the request goes on.
        const x = this.more;
        x.delayed = true;
        x.delayTimer = setTimeout(() => {
          x.delayTimer = null;
          x.delayed = false;
          go();
        }, v.delayMs);
        return;
      }
      go();
      return;
    }
    if (req !== null) {
      if (req.responseHeaders) this.more.respEdit = req.responseHeaders;
      if (req.responseBody) this.more.respBody = req.responseBody;
      if (req.dynamicMetadata) this.more.meta = req.dynamicMetadata;
      if (req.path !== path) this.rqPath = path = req.path;
      // A filter that let the request through may still edit it (the compressor's remove_accept_encoding_header).
      if (route && req.upstreamHeaders) {
        this.act(withFilterHeaders(route, req), method, path, host);
        return;
      }
    }
    this.act(route, method, path, host);
  }

  /** An observer a filter set after a held request resumed: it is told the body held meanwhile. */
  private observeLate(o: ExchangeObserver): void {
    this.more.obs = o;
    for (const b of this.body) o.requestData(b);
  }

  /** @internal the downstream's 'end': the request is complete. */
  onRequestEnd(): void {
    this.requestDone = true;
    const x = this.x;
    if (x !== null && x.timed !== null) {
      x.timed.requestDone = true;
      x.timed.touch();
    }
    const then = x !== null ? x.holdThen : null;
    if (then !== null) {
      x!.holdThen = null;
      x!.delayed = false;
      then();
    }
    this.try?.end();
    this.maybeMirror();
  }

  private filterReply(r: FilterReply): void {
    if (r.flag) this.flag(r.flag);
    const headers: HeaderObject = {};
    for (const [k, val] of r.headers ?? []) headers[k] = val;
    if (this.grpc && r.grpcStatus !== undefined) {
      this.more.grpcOverride = r.grpcStatus;
      this.localReply(r.status >= 300 ? r.status : 500, r.body, headers);
      return;
    }
    this.localReply(r.status, r.body, headers);
  }

  private act(route: HttpRoute | null, method: string, path: string, host: string): void {
    const st = this.stats;
    if (!route) {
      st.no_route.value++;
      this.flag('NR');
      this.localReply(404, '');
      return;
    }
    this.route = route;
    const a = route.action;
    if (a.kind === 'direct') {
      st.rq_direct_response.value++;
      this.localReply(a.status, a.body, a.body.length ? { 'content-type': 'text/plain' } : {}, route.responseHeaders);
      return;
    }
    if (a.kind === 'redirect') {
      st.rq_redirect.value++;
      this.localReply(a.status, '', { location: this.location(a, route, host, path) }, route.responseHeaders);
      return;
    }
    // The buffer filter's limit, unless the route's BufferPerRoute disables (0) or replaces it.
    const fh = this.filter.holdRequestBytes;
    const hold = fh > 0 && route.bufferMaxBytes != null ? route.bufferMaxBytes : fh;
    if (hold > 0 && !this.requestDone && (this.x === null || this.x.holdMax === 0)) {
      // envoy.filters.http.buffer: the whole body first (413 past the limit), then the route.
      if (Number(this.hdr('content-length') ?? 0) > hold) {
        this.payloadTooLarge();
        return;
      }
      const x = this.more;
      x.holdMax = hold;
      x.holdThen = () => this.act(route, method, path, host);
      x.delayed = true;
      return;
    }
    this.action = a;
    const sock = a.lb || a.clusterHeader ? sessionSocket(this.stream) : undefined;
    const peer = sock ? socketDownstream(sock).remote : null;
    const name = a.lb || a.clusterHeader ? pickRouteCluster(a, this, (n) => (n === 'host' ? (this.hdr('host') ?? this.hdr(':authority')) : this.hdr(n)), path, peer?.address ?? '', peer?.port ?? 0) : a.clusters!.pick();
    const cluster = name ? this.filter.rt.clusters.get(name) : undefined;
    if (!cluster) {
      st.no_cluster.value++;
      this.flag('NC');
      this.routerReply(a.clusterNotFoundStatus, '');
      return;
    }
    this.cluster = cluster;
    if (this.x !== null && this.x.obs !== null) this.x.obs.routed(cluster);
    this.cs = this.filter.statsFor(cluster);
    st.rq_total.value++;
    const rm = route.requestHeaders;
    // The flat path where it makes exactly the object path's edits: no request header mutation,
    // no per-try attempt count, no tracing headers to rewrite.
    // On a route with max_stream_duration the upstream learns the stream's limit in grpc-timeout.
    const gt = a.limitsStream && this.grpc ? upstreamGrpcTimeout(a, this.filter.config.maxStreamDurationMs, this.rqGrpcTimeout) : null;
    this.upReq =
      (this.flat !== null && rm.remove.length === 0 && rm.add.length === 0 && !a.attemptCount && this.trace === null && gt === null
        ? this.upstreamFlat(a, route, method, path, host, upstreamProtocolOf(cluster) === 'http1')
        : null) ?? this.upstreamHeaders(a, route, method, path, host);
    if (gt !== null) (this.upReq as HeaderObject)['grpc-timeout'] = gt;
    const timeoutMs = effectiveTimeoutMs(a, this.grpc, this.rqGrpcTimeout);
    if (timeoutMs > 0) armDeadline(this, timeoutMs);
    this.startTry();
    this.maybeMirror();
  }

  /**
   * Once the request is complete, copies it to the route's mirror clusters. A body that outgrew
   * the buffer limit is not kept, so such a request is not mirrored (Envoy abandons it too).
   */
  private maybeMirror(): void {
    const m = this.action?.mirrors;
    const up = this.upReq;
    if (!m || this.x?.mirrored || !this.requestDone || this.bodyOverflow || !up) return;
    const x = this.more;
    x.mirrored = true;
    let h: HeaderObject;
    if (up instanceof FlatRequest) {
      h = up.object();
      if (x.rqNever !== undefined) setNeverIndexed(h, x.rqNever);
    } else h = up;
    sendMirrors(this.filter, m, h, this.body);
  }

  private location(a: RedirectAction, route: HttpRoute, host: string, target: string): string {
    const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host);
    let hostName = m ? m[1]! : host;
    let port = m?.[2] ?? '';
    if (a.host) {
      const hm = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(a.host);
      hostName = hm ? hm[1]! : a.host;
      if (hm?.[2]) port = hm[2];
    }
    if (a.port) port = String(a.port);
    else if (a.scheme && a.scheme !== 'http' && (port === '80' || port === '443')) port = '';
    let p = a.path ?? rewritePath(target, route.matchedPrefix, a.prefixRewrite, a.regexRewrite);
    if (a.path && !a.path.includes('?') && target.includes('?')) p += target.slice(target.indexOf('?'));
    if (a.stripQuery) p = pathOnly(p);
    return `${a.scheme ?? 'http'}://${hostName}${port ? `:${port}` : ''}${p}`;
  }

  private upstreamHeaders(a: ForwardAction, route: HttpRoute, method: string, path: string, host: string): HeaderObject {
    const h = this.headers;
    // Routes without request header mutations (the common case) build no drop set or add list.
    const rm = route.requestHeaders;
    let drop: Set<string> | null = null;
    let add: Array<[string, string]> | null = null;
    if (rm.remove.length || rm.add.length || a.attemptCount) {
      drop = new Set<string>(rm.remove);
      add = [];
      if (a.attemptCount) drop.add('x-envoy-attempt-count'); // each try sets its own
      for (const m of rm.add) {
        if (m.value === '' && !m.keepEmpty) continue;
        if (m.action === 'ADD_IF_ABSENT' && h[m.name] !== undefined) continue;
        if (m.action === 'OVERWRITE_IF_EXISTS' && h[m.name] === undefined) continue;
        if (m.action === 'OVERWRITE_IF_EXISTS_OR_ADD' || m.action === 'OVERWRITE_IF_EXISTS') drop.add(m.name);
        add.push([m.name, m.value]);
      }
    }
    const upPath = this.upstreamPath(a, route, path);
    const e = this.upstreamEdits(a, path);
    const out = upstreamObject(h, method, upPath, a.hostRewrite ?? host, e, drop);
    const never = this.requestNeverIndexed;
    if (never !== undefined) setNeverIndexed(out, never);
    this.requestId = e.requestId;
    this.trace?.upstreamHeaderObject(this.cluster!.name, this.requestId, out);
    if (add) {
      for (const [k, v] of add) {
        const prev = out[k];
        out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
    }
    return out;
  }

  /**
   * The upstream request's :path: `path` as the route rewrites it (kept in upPath when it does).
   * A route with a rewrite sends the path it had as x-envoy-original-path, and the access log's
   * :path is the rewritten one, as in Envoy (its router rewrites the request headers in place).
   */
  private upstreamPath(a: ForwardAction, route: HttpRoute, path: string): string {
    if (a.prefixRewrite === null && a.regexRewrite === null) return path;
    return (this.upPath = rewritePath(path, route.matchedPrefix, a.prefixRewrite, a.regexRewrite));
  }

  /** What both upstream header builders add or rewrite for this request (EDITS, refilled). */
  private upstreamEdits(a: ForwardAction, path: string): UpstreamEdits {
    const cfg = this.filter.config;
    // Only when the address is used (one property read; the session's socket is a Proxy).
    const xs = cfg.useRemoteAddress && !cfg.skipXffAppend ? sessionSocket(this.stream) : undefined;
    const xe = this.xfccEdits(cfg.xfcc);
    const e = EDITS;
    e.originalPath = a.prefixRewrite !== null || a.regexRewrite !== null ? path : undefined;
    e.ip = xs ? socketDownstream(xs).remote.address : undefined;
    // Nothing arrived: before the first try no chunk is dropped from `body` (only an overflow
    // with a try running empties it), so its byte count is every byte received.
    e.emptyBody = this.requestDone && this.bodyBytes === 0 && !this.bodyOverflow;
    e.generateRequestId = cfg.generateRequestId;
    e.fillId = cfg.generateRequestId && this.x === null && !cfg.alwaysSetRequestIdInResponse && cfg.localReply === null && a.retry === null && !a.hedgeOnPerTryTimeout && a.mirrors === null;
    e.requestId = null;
    e.xfcc = xe.xfcc;
    e.xfccElement = xe.xfccElement;
    return e;
  }

  /** What x-forwarded-client-cert becomes (xfcc.ts); SANITIZE, the default, looks nothing up. */
  private xfccEdits(x: XfccConfig): { xfcc: number; xfccElement: string } {
    if (x.mode === 'SANITIZE') return XFCC_DROP;
    const tls = socketDownstream(sessionSocket(this.stream)!).tls;
    const xfcc = xfccAction(x, tls);
    return { xfcc, xfccElement: xfcc === XfccAction.APPEND || xfcc === XfccAction.SET ? xfccElement(x, tls!) : '' };
  }

  /** The upstream request on the flat path (upstreamFlatOf), null where only the object path applies. */
  private upstreamFlat(a: ForwardAction, route: HttpRoute, method: string, path: string, host: string, h1: boolean): FlatRequest | null {
    const upPath = this.upstreamPath(a, route, path);
    const authority = a.hostRewrite ?? host;
    const e = this.upstreamEdits(a, path);
    const flat = this.flat!;
    // A list the connection repeats (its fields taken from the memo, scan()) was forwarded the
    // same way last time, unless an input differs: its strings are the memo's, so the compares
    // are reference compares.
    const memo = this.flatHeld ? ((this.stream as NativeH2Stream).session.listMemo as RequestListScan | null) : null;
    let r: FlatRequest | null;
    const m = memo !== null && memo.filled && memo.list === flat ? memo.up : null;
    if (m !== null && m.method === method && m.path === upPath && m.authority === authority && m.h1 === h1 && m.ip === e.ip && m.emptyBody === e.emptyBody && m.generateRequestId === e.generateRequestId && m.fillId === e.fillId && m.xfcc === e.xfcc && m.xfccElement === e.xfccElement && m.originalPath === e.originalPath) {
      e.requestId = m.requestId;
      r = new FlatRequest(flat, m.runs, m.extra, m.pairs, method, upPath, authority, m.hasContentLength, m.fillsId);
    } else {
      r = upstreamFlatOf(flat, method, upPath, authority, e, h1);
      // Kept once the list has repeated, when nothing in it is this request's own (a generated
      // id written as a string).
      if (memo !== null && memo.filled && memo.list === flat) memo.up = r !== null && !flatIdGenerated ? new UpstreamFlatMemo(method, upPath, authority, h1, e, r) : null;
    }
    if (r) {
      this.requestId = e.requestId;
      // The upstream request copies the kept fields from the request the addon holds (an HTTP/2
      // upstream's requestHeld, an HTTP/1 one's sendHttp1HeadHeld). The values kept as they
      // came are the very strings sliced from that request.
      const st = this.stream;
      if (this.flatHeld && st instanceof NativeH2Stream) {
        const same = (method === this.method ? HELD_METHOD : 0) | (upPath === this.rqPathIn ? HELD_PATH : 0) | (authority === this.rqAuthority ? HELD_AUTHORITY : 0);
        r.hold(st.session.h.sid(), st.id, same);
      }
    }
    return r;
  }

  // ---- tries ----

  private startTry(): void {
    const cluster = this.cluster!;
    const cs = this.cs!;
    const priority = this.action!.priority;
    const rm = cluster.breakers.at(priority);
    if (!rm.canRequest()) {
      // max_requests of the route's priority: answered at once, Envoy counts it as a pending overflow.
      cs.upstream_rq_pending_overflow.value++;
      this.flag('UO');
      this.routerReply(503, 'upstream connect error or disconnect/reset before headers. reset reason: overflow', { 'x-envoy-overloaded': 'true' });
      return;
    }
    const hp = this.action!.retry?.hosts ?? null;
    // Only ORIGINAL_DST picks by where the connection was going (the session's socket is a Proxy).
    const sock = cluster.spec.type === 'ORIGINAL_DST' ? sessionSocket(this.stream) : undefined;
    const host = pickTryHost(cluster, this.lb, hp, this, sock ? socketDownstream(sock).local : null);
    if (!host) {
      cluster.stats.upstream_cx_none_healthy.value++;
      this.routerReply(503, 'no healthy upstream');
      return;
    }
    this.host = host;
    if (hp?.previousHosts) noteTried(this, host);
    this.tryT0 = clockNow();
    this.releaseRq();
    rm.addRequest(1);
    this.rqHeld = rm;
    cs.upstream_rq_total.value++;
    cs.upstream_rq_active.value++;
    host.counters.rq_total++;
    host.counters.rq_active++;
    const perTry = this.action!.retry?.perTryTimeoutMs ?? 0;
    if (perTry > 0) this.more.perTryTimer = setTimeout(() => this.onPerTryTimeout(), perTry);
    const endNow = this.requestDone && this.body.length === 0;
    const proto = upstreamProtocolOf(cluster);
    const relay = this.action!.hedgeOnPerTryTimeout ? new TryRelay(this, host, this.tryT0) : null;
    const x = this.x;
    const xf = x !== null && x.respBody !== null ? new TransformTry(relay ?? this, x.respBody) : null;
    const ev: TryEvents = xf ?? relay ?? this;
    let up = this.upReq!;
    // An H2Try reads its headers only once its session is ready, maybe after a hedge started:
    // each try gets its own object when the count varies (never a FlatRequest: see act()).
    if (this.action!.attemptCount) up = { ...(up as HeaderObject), 'x-envoy-attempt-count': String(this.retries + 1) };
    let t: UpstreamTry =
      proto === 'http1'
        ? new H1Try(this.filter.poolsFor(cluster, priority), host, up, endNow, this.method, ev)
        : new H2Try(this.filter.h2PoolsFor(cluster, priority), host, up, endNow, ev);
    if (this.finished) return; // the try failed synchronously and a reply went out
    if (xf !== null) {
      xf.inner = t;
      t = xf;
    }
    this.try = t;
    if (relay) {
      relay.try = t;
      this.more.relay = relay;
    }
    for (const b of this.body) t.write(b);
    if (this.bodyOverflow) {
      this.body = NO_BODY;
      this.bodyBytes = 0;
    }
    if (this.requestDone && !endNow) t.end();
  }

  /** @internal the downstream's 'data' */
  onBody(d: Buffer): void {
    const x = this.x;
    if (x !== null) {
      // Request data after the exchange ended (a local reply) goes nowhere: not told.
      if (x.obs !== null && !this.finished) x.obs.requestData(d);
      x.rxBytes += d.length;
      if (x.timed !== null) x.timed.touch();
      if (x.holdThen !== null) {
        // Held by the buffer filter: its limit replaces the connection's (no pause, 413 past it).
        this.keep(d);
        if (this.bodyBytes > x.holdMax) {
          if (!x.holdPartial) this.payloadTooLarge();
          else {
            const then = x.holdThen;
            x.holdThen = null;
            then();
          }
        }
        return;
      }
    }
    if (this.finished || (!this.action && !this.delayed)) return;
    // Kept while no try takes it, and for what may send it again (a retry, a hedge, a mirror):
    // as Envoy's router, which buffers the body only then.
    if ((!this.bodyOverflow || !this.try) && (this.try === null || this.replays())) {
      this.keep(d);
      if (this.bodyBytes > this.filter.bufferLimit) {
        if (!this.bodyOverflow && this.action?.retry) this.cs!.retry_or_shadow_abandoned.value++;
        if (this.backoffTimer) {
          // No try in flight and no complete copy to replay: Envoy's router gives up with 507.
          this.routerReply(507, 'exceeded request buffer limit while retrying upstream');
          return;
        }
        // Too big to replay: retries are off for this request, as in Envoy.
        this.bodyOverflow = true;
        if (this.try) {
          this.body = NO_BODY;
          this.bodyBytes = 0;
        }
      }
    }
    // Streams are full duplex: request data keeps flowing after the response has started (gRPC bidi).
    const t = this.try;
    if (t) {
      if (!t.write(d) && !this.downPaused) {
        this.downPaused = true;
        this.stream.pause();
        t.onDrain(() => {
          this.downPaused = false;
          this.stream.resume();
        });
      }
    } else if (!t && this.bodyBytes > this.filter.bufferLimit && !this.downPaused) {
      // Connecting or backing off: stop reading until a try takes the bytes.
      this.downPaused = true;
      this.stream.pause();
    }
  }

  /**
   * @internal the native downstream's 'dataAt': a chunk as `len` bytes at `off` in the batch's
   * pool numbered `gen`, handed to a try that sends it from there (H2Try.writeAt) when nothing
   * else wants it (no observer, held body, retry, hedge or mirror); else onBody's view.
   */
  onBodyAt(pool: Buffer, off: number, len: number, gen: number): void {
    const t = this.try;
    if (this.x !== null || t === null || t.writeAt === undefined || this.finished || this.replays()) {
      this.onBody(pool.subarray(off, off + len));
      return;
    }
    if (!t.writeAt(pool, off, len, gen) && !this.downPaused) {
      this.downPaused = true;
      this.stream.pause();
      t.onDrain(() => {
        this.downPaused = false;
        this.stream.resume();
      });
    }
  }

  /** Whether the request may go out again (a retry, a hedge, a mirror): its body is then kept. */
  private replays(): boolean {
    const a = this.action;
    return a !== null && (a.retry !== null || a.mirrors !== null || a.hedgeOnPerTryTimeout);
  }

  /** The body held so far, at most `max` bytes of it (for a filter that asked: needBody). */
  private heldBody(max: number): Buffer {
    const b = this.body.length === 1 ? this.body[0]! : Buffer.concat(this.body);
    return b.length > max ? b.subarray(0, max) : b;
  }

  /** Keeps a request chunk in `body` (for a try yet to start, retries and mirrors). */
  private keep(d: Buffer): void {
    // A one-chunk body (a gRPC unary request) gets a one-slot array, not push()'s 17.
    if (this.body === NO_BODY) this.body = [d];
    else this.body.push(d);
    this.bodyBytes += d.length;
  }

  private releaseRetry(): void {
    const x = this.x;
    if (x === null) return;
    const rm = x.retryHeld;
    x.retryHeld = null;
    rm?.addRetry(-1);
  }

  private releaseRq(): void {
    const rm = this.rqHeld;
    this.rqHeld = null;
    rm?.addRequest(-1);
  }

  private payloadTooLarge(): void {
    const x = this.x;
    if (x !== null) {
      x.holdThen = null;
      x.delayed = false;
    }
    this.body = NO_BODY;
    this.bodyBytes = 0;
    this.stats.downstream_rq_too_large.value++;
    this.localReply(413, 'Payload Too Large');
  }

  private endTry(): void {
    this.releaseRq();
    this.clearPerTryTimer();
    if (!this.try) return;
    this.try = null;
    if (this.x !== null) this.x.relay = null;
    this.cs!.upstream_rq_active.value--;
    if (this.host) this.host.counters.rq_active--;
    if (this.downPaused) {
      this.downPaused = false;
      this.stream.resume();
    }
  }

  private abortTry(downstreamGone = false): void {
    const t = this.try;
    this.endTry();
    t?.abort(downstreamGone);
  }

  private retryAllowed(kind: TryFailureKind | 'per_try_timeout' | 'status' | 'hedge', status: number, grpcStatus: number): boolean {
    const p = this.action?.retry;
    if (!p || this.responseStarted || this.bodyOverflow || kind === 'overflow') return false;
    const cs = this.cs!;
    let match: boolean;
    // Envoy hedges on a per-try timeout whatever retry_on says; only the budget applies.
    if (kind === 'hedge') match = true;
    else if (kind === 'status') {
      match =
        (p.on5xx && status >= 500) ||
        (p.onGatewayError && (status === 502 || status === 503 || status === 504)) ||
        (p.onRetriableStatusCodes && p.retriableStatusCodes.has(status)) ||
        (grpcStatus >= 0 && p.grpcCodes.has(grpcStatus));
    } else if (kind === 'connect_failure') match = p.on5xx || p.onGatewayError || p.onConnectFailure;
    else match = p.on5xx || p.onGatewayError || p.onReset || (kind === 'refused_stream' && p.onRefusedStream);
    if (!match) return false;
    if (this.retries >= p.numRetries) {
      cs.upstream_rq_retry_limit_exceeded.value++;
      return false;
    }
    if (!this.cluster!.breakers.at(this.action!.priority).canRetry()) {
      cs.upstream_rq_retry_overflow.value++;
      return false;
    }
    return true;
  }

  private scheduleRetry(): void {
    const p = this.action!.retry!;
    this.retries++;
    this.cs!.upstream_rq_retry.value++;
    const ceiling = Math.min(p.backoffBaseMs * 2 ** (this.retries - 1), p.backoffMaxMs);
    // A retry holds a max_retries slot while it backs off (as the HTTP/1 side counts it).
    this.releaseRetry();
    const rm = this.cluster!.breakers.at(this.action!.priority);
    rm.addRetry(1);
    const x = this.more;
    x.retryHeld = rm;
    x.backoffTimer = setTimeout(() => {
      x.backoffTimer = null;
      this.releaseRetry();
      if (!this.finished) this.startTry();
    }, Math.random() * ceiling);
  }

  private failTry(kind: TryFailureKind | 'per_try_timeout'): void {
    const o = outlierOfFailure(kind);
    if (o !== null) this.host?.outlier.putResult(o);
    this.abortTry();
    if (this.finished) return;
    if (this.retryAllowed(kind, 0, -1)) {
      this.scheduleRetry();
      return;
    }
    if (this.hedged?.length) return; // a hedged try is still out; its answer may yet come
    if (this.retries > 0) this.flag('URX');
    this.flag(kind === 'overflow' ? 'UO' : kind === 'connect_failure' ? 'UF' : kind === 'per_try_timeout' ? 'UT' : kind === 'protocol_error' ? 'UPE' : 'UR');
    switch (kind) {
      case 'overflow':
        this.routerReply(503, 'upstream connect error or disconnect/reset before headers. reset reason: overflow', { 'x-envoy-overloaded': 'true' });
        return;
      case 'connect_failure':
        this.routerReply(503, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure');
        return;
      case 'per_try_timeout':
        this.routerReply(504, 'upstream request timeout');
        return;
      case 'protocol_error':
        this.routerReply(503, 'upstream connect error or disconnect/reset before headers. reset reason: protocol error');
        return;
      default:
        this.routerReply(503, 'upstream connect error or disconnect/reset before headers. reset reason: connection termination');
    }
  }

  private onPerTryTimeout(): void {
    this.more.perTryTimer = null;
    if (this.responseStarted || !this.try) return;
    this.cs!.upstream_rq_per_try_timeout.value++;
    // Hedge only once the whole request went out: the late try then has all of it to answer.
    const r = this.relay;
    if (r && this.requestDone && !this.bodyOverflow && this.retryAllowed('hedge', 0, -1)) {
      this.host?.outlier.putResult(OutlierResult.TIMEOUT);
      r.parked = true;
      const x = this.more;
      (x.hedged ??= []).push(r);
      // The parked try keeps its rq_active until it is dropped or wins.
      this.try = null;
      x.relay = null;
      this.scheduleRetry();
      return;
    }
    this.failTry('per_try_timeout');
  }

  // ---- HedgeOwner: tries left running after their per-try timeout ----

  parkedResponse(p: ParkedTry, status: number, grpcStatus: number): boolean {
    const r = p as TryRelay;
    if (this.finished || this.responseStarted) {
      this.dropParked(r);
      return false;
    }
    const policy = this.action!.retry;
    const others = this.try !== null || this.backoffTimer !== null || this.hedged!.length > 1;
    if (policy && others && statusRetriable(policy, status, grpcStatus)) {
      // Not usable, and another try may still answer: Envoy drops it rather than retrying.
      countUpstreamStatus(this.cs!, status, r.host);
      this.dropParked(r);
      return false;
    }
    // The first usable answer wins: the current try (if any) is cancelled, no retry will start.
    this.abortTry();
    const x = this.more;
    if (x.backoffTimer) clearTimeout(x.backoffTimer);
    x.backoffTimer = null;
    this.releaseRetry();
    x.hedged!.splice(x.hedged!.indexOf(r), 1);
    r.parked = false;
    this.try = r.try;
    x.relay = r;
    this.host = r.host;
    this.tryT0 = r.t0;
    return true;
  }

  parkedFailure(p: ParkedTry, kind: TryFailureKind): void {
    const r = p as TryRelay;
    const o = outlierOfFailure(kind);
    if (o !== null) r.host.outlier.putResult(o);
    this.dropParked(r);
    if (this.finished || this.try || this.backoffTimer || this.hedged?.length) return;
    // It was the last try out: fail (or retry) as that try's failure.
    this.failTry(kind);
  }

  private dropParked(r: TryRelay): void {
    const i = this.hedged?.indexOf(r) ?? -1;
    if (i < 0) return;
    this.hedged!.splice(i, 1);
    r.drop();
    this.cs!.upstream_rq_active.value--;
    r.host.counters.rq_active--;
  }

  private dropAllParked(): void {
    const h = this.hedged;
    if (!h) return;
    while (h.length) this.dropParked(h[h.length - 1]!);
  }

  /** @internal deadlines.ts: the route timeout passed. */
  /** Activity on the stream, either way: stream_idle_timeout starts over. */
  private touch(): void {
    const x = this.x;
    if (x !== null && x.timed !== null) x.timed.touch();
  }

  /**
   * @internal stream_timeouts.ts: nothing moved for stream_idle_timeout, or the request did not
   * arrive whole within request_timeout. As Envoy: 408 before the response began, else a reset.
   */
  onStreamTimeout(kind: 'idle' | 'request'): void {
    this.x!.timed = null; // the watcher let go already
    if (this.finished) return;
    const st = this.stats;
    if (kind === 'idle') st.downstream_rq_idle_timeout.value++;
    else st.downstream_rq_timeout.value++;
    this.abortTry();
    if (this.responseStarted) {
      this.finish();
      resetDownstream(this.stream);
      return;
    }
    this.localReply(408, kind === 'idle' ? 'stream timeout' : 'request timeout');
  }

  /** max_stream_duration (the route's, else the connection manager's), counted from the stream's start, as Envoy's. */
  private armMaxDuration(a: ForwardAction): void {
    const ms = streamDurationMs(a, this.filter.config.maxStreamDurationMs, this.rqGrpcTimeout);
    if (ms <= 0) return;
    this.more.durationTimer = setTimeout(() => this.onMaxDuration(), Math.max(0, ms - (clockNow() - this.t0)));
  }

  /** The stream outlived max_stream_duration: 408 (gRPC: DEADLINE_EXCEEDED) before the response began, else a reset. */
  private onMaxDuration(): void {
    const x = this.more;
    x.durationTimer = null;
    if (this.finished) return;
    this.stats.downstream_rq_max_duration_reached.value++;
    this.abortTry();
    if (this.responseStarted) {
      this.finish();
      resetDownstream(this.stream);
      return;
    }
    x.grpcOverride = 4;
    this.localReply(408, 'downstream duration timeout');
  }

  onDeadline(): void {
    if (this.finished) return;
    this.cs!.upstream_rq_timeout.value++;
    this.flag('UT');
    this.abortTry();
    if (this.responseStarted) {
      this.stats.rq_reset_after_downstream_response_started.value++;
      this.finish();
      resetDownstream(this.stream);
      return;
    }
    this.routerReply(504, 'upstream request timeout');
  }

  // ---- TryEvents ----

  /**
   * Counts a final response and decides what to do with it: false when it is retried instead (the
   * try is aborted), true when it is the answer.
   */
  private takeResponse(status: number, grpc: number): boolean {
    const cs = this.cs!;
    countUpstreamStatus(cs, status, this.host);
    if (this.retryAllowed('status', status, grpc)) {
      this.abortTry();
      this.scheduleRetry();
      return false;
    }
    this.clearPerTryTimer();
    this.responseStarted = true;
    this.dropAllParked();
    if (this.retries > 0) cs.upstream_rq_retry_success.value++;
    classify(this.stats, (this.status = status));
    return true;
  }

  /**
   * An HTTP/1 upstream's head, forwarded to a native downstream stream as flat bytes: the fields
   * are copied from the head's buffer with the edits onResponse makes to the object (hop-by-hop
   * out, server, x-request-id, date), no header object in between. Anything that needs the object
   * (node:http2 downstream, route response header mutations, attempt count, hash cookie, access
   * log) takes onResponse's path with the head's object instead.
   */
  onH1ResponseHead(status: number, head: MessageHead, endStream: boolean, wholeLen: number): boolean {
    if (this.finished) return false;
    this.touch();
    // A watched response takes the object path (gRPC never comes from an HTTP/1 upstream anyway).
    const stream = this.x !== null && this.x.obs !== null ? null : this.flatResponseStream();
    if (stream === null) {
      const h = headerObjectOf(head);
      h[':status'] = String(status);
      this.onResponse(status, h, endStream);
      return false;
    }
    if (!this.takeResponse(status, endStream ? grpcStatusOfHead(head) : -1)) return false;
    const cfg = this.filter.config;
    const w = FLAT;
    const rid = cfg.alwaysSetRequestIdInResponse ? this.requestId : null;
    // An HTTP/1 upstream has no trailers: END_STREAM rides on the last DATA frame.
    this.sendsTrailers = false;
    try {
      const present = headFlagsInTables(head);
      if (present >= 0) {
        // The usual case: the addon still holds the parser's results and picks the fields itself.
        const dropServer = writeH1ResponseExtras(w, status, present, cfg.serverHeaderTransformation, cfg.serverName, rid);
        stream.respondH1Head(w, dropServer, head.start + head.headBytes, wholeLen, endStream);
      } else {
        writeH1ResponseSpans(w.reset(), H1_SPANS, status, head, cfg.serverHeaderTransformation, cfg.serverName, rid);
        stream.respondSpans(w, head.buf, H1_SPANS, head.start + head.headBytes, wholeLen, endStream);
      }
    } catch {
      this.abortTry();
      this.finish();
      return false;
    }
    // A whole body (wholeLen >= 0) ended the response in the same addon call; the try's onEnd
    // then only completes the exchange.
    if (wholeLen >= 0) {
      this.countTx(wholeLen);
      return true;
    }
    if (endStream) this.complete();
    return false;
  }

  /**
   * The native downstream stream when the response may go out flat, or null when something needs
   * the header object: node:http2 downstream, route response header mutations, attempt count in
   * the response, a hash-policy cookie, an access log.
   */
  private flatResponseStream(): NativeH2Stream | null {
    const stream = this.stream;
    const rm = this.route!.responseHeaders;
    if (!(stream instanceof NativeH2Stream) || rm.remove.length || rm.add.length || this.action!.attemptCountInResponse || this.lb?.setCookie || this.filter.accessLog || (this.x !== null && this.x.respEdit !== null)) return null;
    return stream;
  }

  /**
   * A native HTTP/2 upstream's head, forwarded to a native downstream stream as a flat list: the
   * upstream's list is copied in runs with onResponse's edits (h2ResponseFlatOf); the same cases
   * as onH1ResponseHead take the object path.
   */
  onH2ResponseFlat(status: number, flat: string, endStream: boolean, neverIndexed: string | undefined, upSession: number, upStream: number): void {
    if (this.finished) return;
    this.touch();
    const stream = this.flatResponseStream();
    if (stream === null) {
      this.onResponse(status, headerObject(flat, neverIndexed), endStream);
      return;
    }
    const g = endStream ? flatGet(flat, 'grpc-status') : undefined;
    if (!this.takeResponse(status, g !== undefined ? Number(first(g)) : -1)) return;
    const x = this.x;
    if (x !== null && x.obs !== null) this.observeHead(x.obs, status, first(flatGet(flat, 'content-type')), first(g), endStream);
    const cfg = this.filter.config;
    const extra = h2ResponseRunsOf(flat, cfg.serverHeaderTransformation, cfg.serverName, cfg.alwaysSetRequestIdInResponse ? this.requestId : null);
    this.sendsTrailers = !endStream;
    try {
      stream.respondRuns(flat, respRuns === RUNS_TABLE ? null : respRuns, respRunCount, extra, flatOutPairs, { endStream, waitForTrailers: this.sendsTrailers }, neverIndexed, upSession, upStream);
    } catch {
      this.abortTry();
      this.finish();
      return;
    }
    if (endStream) this.complete();
  }

  onResponse(status: number, headers: HeaderObject, endStream: boolean): void {
    if (this.finished) return;
    this.touch();
    const grpc = endStream && headers['grpc-status'] !== undefined ? Number(first(headers['grpc-status'])) : -1;
    if (!this.takeResponse(status, grpc)) return;
    if (this.x !== null && this.x.obs !== null) this.observeHead(this.x.obs, status, first(headers['content-type']), endStream ? first(headers['grpc-status']) : undefined, endStream);
    const cfg = this.filter.config;
    // The try's header object is fresh per response and unused after this call, and respond()
    // copies what it gets: it is edited in place instead of copied once more. Its only pseudo-header
    // is :status (nghttp2 rejects others in a response; H1Try adds only that); the route's removals
    // are applied below by applyHeaderObject.
    const out = headers;
    editResponseObject(out, cfg.serverHeaderTransformation, cfg.serverName, cfg.alwaysSetRequestIdInResponse ? this.requestId : null);
    applyHeaderObject(out, this.route!.responseHeaders);
    const x = this.x;
    if (x !== null && x.respEdit !== null) applyHeaderObject(out, x.respEdit);
    if (this.action!.attemptCountInResponse) out['x-envoy-attempt-count'] = String(this.retries + 1);
    const sc = this.lb?.setCookie;
    if (sc) out['set-cookie'] = ([] as string[]).concat((out['set-cookie'] as string | string[] | undefined) ?? [], sc);
    if (this.x !== null) this.x.respHeaders = out; // for the access log
    // An HTTP/1 upstream never hands trailers on (H1Try ends with null): its body then ends with
    // END_STREAM on the last DATA frame, without a 'wantTrailers' round and an empty frame.
    this.sendsTrailers = !endStream && !(innerTry(this.try) instanceof H1Try);
    try {
      this.stream.respond(out, { endStream, waitForTrailers: this.sendsTrailers });
    } catch {
      this.abortTry();
      this.finish();
      return;
    }
    if (endStream) this.complete();
  }

  /** The upstream's answering head, to the exchange's observer; one that ends the response ends it there too. */
  private observeHead(o: ExchangeObserver, status: number, contentType: string | undefined, grpcStatus: string | undefined, endStream: boolean): void {
    o.responseHead(status, contentType, grpcStatus, endStream);
    if (endStream) o.responseEnd(undefined, clockNow() - this.tryT0);
  }

  /** The upstream's trailers: an object, or a native upstream's flat list. */
  private trailers: HeaderObject | string | null = null;

  onData(chunk: Buffer): void {
    if (this.finished) return;
    const x = this.x;
    if (x !== null && x.obs !== null) x.obs.responseData(chunk);
    this.countTx(chunk.length);
    this.touch();
    if (!this.stream.write(chunk)) this.holdUpstream();
  }

  onDataAt(pool: Buffer, off: number, len: number, gen: number): void {
    if (this.finished) return;
    const x = this.x;
    if (x !== null && x.obs !== null) x.obs.responseData(pool.subarray(off, off + len));
    this.countTx(len);
    this.touch();
    const s = this.stream;
    if (!(s.writeAt !== undefined ? s.writeAt(pool, off, len, gen) : s.write(pool.subarray(off, off + len)))) this.holdUpstream();
  }

  /** The downstream holds its high-water mark: the upstream waits for its drain. */
  private holdUpstream(): void {
    const t = this.try;
    t?.pause();
    this.stream.once('drain', () => t?.resume());
  }

  onEndFlat(trailers: string): void {
    this.onEnd(trailers);
  }

  onTrailersNeverIndexed(names: string): void {
    this.more.trNever = names;
  }

  onEnd(trailers: HeaderObject | string | null): void {
    if (this.finished) return;
    this.touch();
    const x = this.x;
    if (x !== null && x.obs !== null) x.obs.responseEnd(trailers === null ? undefined : first(typeof trailers === 'string' ? flatGet(trailers, 'grpc-status') : trailers['grpc-status']), clockNow() - this.tryT0);
    if (!this.sendsTrailers) {
      this.stream.end();
      this.complete();
      return;
    }
    this.trailers = trailers;
    // 'wantTrailers' comes once per stream: a plain listener, no once() wrapper.
    this.stream.on('wantTrailers', onWantTrailers);
    this.stream.end();
    this.complete();
  }

  /** @internal the downstream's 'wantTrailers': the upstream's trailers, less what HTTP/2 forbids. */
  sendTrailers(): void {
    const tr = this.trailers;
    const stream = this.stream;
    const x = this.x;
    const never = x !== null ? x.trNever : undefined;
    if (typeof tr === 'string' && stream instanceof NativeH2Stream) {
      try {
        // Most trailers (a gRPC status) keep every field: the addon's own string goes back as it
        // came, without a copy into the writer.
        const whole = trailersWhole(tr);
        if (whole >= 0) stream.sendTrailersFlat(tr, whole, never);
        else stream.sendTrailersBytes(writeTrailersFlat(FLAT, tr), never);
      } catch {
        stream.close();
      }
      return;
    }
    const src = typeof tr === 'string' ? headerObject(tr, never) : tr;
    const t: HeaderObject = {};
    if (src) {
      for (const k in src) {
        const v = src[k];
        if (k[0] !== ':' && v !== undefined && !H2_FORBIDDEN.has(k)) t[k] = v;
      }
      // Never-indexed names ride along (node:http2's own objects list them too).
      const names = neverIndexedOf(src);
      if (names !== undefined) setNeverIndexed(t, names);
    }
    try {
      this.stream.sendTrailers(t);
    } catch {
      this.stream.close();
    }
  }

  onFailure(kind: TryFailureKind): void {
    if (this.finished) return;
    if (kind === 'reset' || kind === 'refused_stream' || kind === 'protocol_error') this.cs!.upstream_rq_rx_reset.value++;
    this.failTry(kind);
  }

  onAbort(): void {
    if (this.finished) return;
    this.cs!.upstream_rq_rx_reset.value++;
    this.stats.rq_reset_after_downstream_response_started.value++;
    this.endTry();
    this.finish();
    resetDownstream(this.stream);
  }

  private complete(): void {
    this.cs!.upstream_rq_completed.value++;
    this.filter.upstreamDone(this.cluster!, this.tryT0, this.trace, this.status, this.host);
    this.endTry();
    this.finish();
  }

  // ---- endings ----

  /** A reply of the router's own (no cluster, overflow, no healthy host, an upstream failure or timeout): the route's response headers apply, as Envoy's router adds them. */
  private routerReply(status: number, body: Buffer | string, headers: HeaderObject = {}): void {
    this.localReply(status, body, headers, this.route?.responseHeaders);
  }

  private localReply(status: number, body: Buffer | string, headers: HeaderObject = {}, mutation?: HeaderMutation): void {
    this.abortTry();
    if (this.finished) return;
    if (this.responseStarted) {
      this.finish();
      resetDownstream(this.stream);
      return;
    }
    this.responseStarted = true;
    const cfg = this.filter.config;
    const lr = cfg.localReply;
    if (lr !== null) {
      const r = lr.rewrite(status, body, this.grpc, () => this.entry());
      if (r !== null) {
        status = r.status;
        body = r.body;
        const h: HeaderObject = { ...headers };
        if (r.contentType !== null) h['content-type'] = r.contentType;
        const add = (n: string, v: string) => {
          const p = h[n];
          h[n] = p === undefined ? v : ([] as string[]).concat(p, v);
        };
        applyLocalReplyHeaders(r, (n) => h[n] !== undefined, (n, v) => (h[n] = v), add);
        headers = h;
      }
    }
    const out: HeaderObject = {};
    if (cfg.serverHeaderTransformation !== 'PASS_THROUGH') out.server = cfg.serverName;
    if (cfg.alwaysSetRequestIdInResponse && this.requestId) out['x-request-id'] = this.requestId;
    // The router's own replies after tries (timeouts, resets, exhausted retries) say it too, as Envoy's do.
    if (this.action?.attemptCountInResponse && this.host !== null) out['x-envoy-attempt-count'] = String(this.retries + 1);
    const grpcOverride = this.x !== null ? this.x.grpcOverride : null;
    if (this.grpc && (status >= 300 || grpcOverride !== null)) {
      // gRPC clients read the status from grpc-status, never from :status: HTTP 200, trailers-only.
      classify(this.stats, (this.status = 200));
      // Envoy applies the route's edits first, then makes the reply a gRPC one whatever they said.
      if (mutation) applyHeaderObject(out, mutation);
      out[':status'] = '200';
      out['content-type'] = 'application/grpc';
      out['grpc-status'] = String(grpcOverride ?? grpcStatusOfHttp(status, true));
      const msg = typeof body === 'string' ? body : body.toString();
      if (msg) out['grpc-message'] = encodeURIComponent(msg);
      const x = this.x;
      if (x !== null && x.respEdit !== null) applyHeaderObject(out, x.respEdit);
      this.respondEnd(out, null);
      return;
    }
    classify(this.stats, (this.status = status));
    Object.assign(out, headers);
    out[':status'] = String(status);
    const b = typeof body === 'string' ? Buffer.from(body) : body;
    // The route's edits before the default content-type, which goes only where none is left (Envoy's order).
    if (mutation && (mutation.add.length || mutation.remove.length)) editLocalReplyObject(out, mutation, b.length > 0);
    if (b.length && out['content-type'] === undefined) out['content-type'] = 'text/plain';
    out['content-length'] = String(b.length);
    // The filters' response edits (cors, ext_authz) reach local replies too, as Envoy encodes those through its filters.
    const x = this.x;
    if (x !== null && x.respEdit !== null) applyHeaderObject(out, x.respEdit);
    this.respondEnd(out, b.length ? b : null);
  }

  /** A local reply's head and body (a gRPC one is trailers-only). */
  private respondEnd(h: HeaderObject, body: Buffer | null): void {
    const x = this.x;
    if (x !== null) {
      x.respHeaders = h;
      if (body) x.txBytes += body.length;
      // A local reply's body is never gRPC messages: only its head is told.
      if (x.obs !== null) x.obs.responseHead(Number(h[':status']), first(h['content-type']), first(h['grpc-status']), body === null);
    }
    this.finish();
    if (this.stream.closed || this.stream.destroyed) return;
    try {
      if (body !== null && this.stream instanceof NativeH2Stream) this.stream.respondWhole(h, body);
      else {
        this.stream.respond(h, { endStream: body === null });
        if (body) this.stream.end(body);
      }
    } catch {
      resetDownstream(this.stream);
    }
  }

  /** `reset`: the client reset the stream before any response head went out. */
  private finish(reset = false): void {
    if (this.finished) return;
    this.finished = true;
    this.resets.streamClosed(reset, reset ? clockNow() - this.t0 : 0);
    this.releaseRq();
    this.releaseRetry();
    this.dropAllParked();
    this.filter.streamDone(this.t0, this.trace, this.status);
    if (this.filter.accessLog) this.logAccess();
    disarmDeadline(this);
    const x = this.x;
    if (x !== null) {
      if (x.timed !== null) {
        this.filter.streamTimeouts!.unwatch(x.timed);
        x.timed = null;
      }
      const n = x.notify;
      x.notify = null;
      if (n) for (const f of n) f.onDone?.();
      if (x.delayTimer) clearTimeout(x.delayTimer);
      if (x.perTryTimer) clearTimeout(x.perTryTimer);
      if (x.backoffTimer) clearTimeout(x.backoffTimer);
      if (x.durationTimer) clearTimeout(x.durationTimer);
      x.delayTimer = x.perTryTimer = x.backoffTimer = x.durationTimer = null;
    }
    const st = this.stats;
    st.downstream_rq_active.value--;
    st.downstream_rq_completed.value++;
  }

  /** @internal the downstream stream's 'close' */
  onClose(): void {
    if (this.finished) return;
    // The client reset the stream (or the connection went) before we answered.
    this.stats.downstream_rq_rx_reset.value++;
    this.flag('DC');
    this.abortTry(true);
    this.finish(!this.responseStarted);
  }
}

/**
 * The request-specific inputs of the upstream header list besides its method, :path (after the
 * route's rewrites) and :authority, which the builders take as arguments; `requestId` is set by
 * the builder.
 */
export interface UpstreamEdits {
  /** The downstream address to append to x-forwarded-for; undefined: leave it as it is. */
  ip: string | undefined;
  /** The request is known to be complete and empty. */
  emptyBody: boolean;
  generateRequestId: boolean;
  /**
   * A generated id is needed by nothing but the upstream request (no access log, local reply
   * format, response header, retry, hedge or mirror): the addon writes it into the request as it
   * sends it, and no string is made (REQUEST_ID_FILL_PAIR).
   */
  fillId?: boolean;
  /** Out: the request's x-request-id (the client's, or the one generated), null when it has none. */
  requestId: string | null;
  /** x-forwarded-client-cert: an XfccAction, and for APPEND/SET this hop's element. */
  xfcc: number;
  xfccElement: string;
  /** The path before the route's rewrite, when it rewrote it: sent as x-envoy-original-path (Envoy's router). */
  originalPath?: string | undefined;
}

const XFCC_DROP = Object.freeze({ xfcc: XfccAction.DROP, xfccElement: '' });
/**
 * upstreamEdits()'s answer, refilled per request: both callers read it within the call that
 * asked (upstreamObject/upstreamFlatOf and the request id after them), and a fresh object was
 * 112 bytes of an h2c request's ~1.3 KB. The request's own strings (method, :path, :authority)
 * are arguments instead: stored here, each was a write barrier (an old object taking a young
 * string, ~50 instructions).
 */
const EDITS: UpstreamEdits = { ip: undefined, emptyBody: false, generateRequestId: false, fillId: false, requestId: null, xfcc: XfccAction.DROP, xfccElement: '', originalPath: undefined };
/** Envoy's router puts the path a route rewrote in this header of the upstream request. */
const ORIGINAL_PATH = 'x-envoy-original-path';

/**
 * The upstream request object (before the route's additions and tracing headers): pseudo-headers,
 * the request's fields less connection-specific ones and `drop`, then x-forwarded-for,
 * x-forwarded-proto, content-length: 0 and x-request-id as Envoy adds them.
 */
export function upstreamObject(h: HeaderObject, method: string, path: string, authority: string, ed: UpstreamEdits, drop: Set<string> | null): HeaderObject {
  const { ip } = ed;
  const out: HeaderObject = { ':method': method, ':path': path, ':authority': authority, ':scheme': 'http' };
  for (const k in h) {
    const v = h[k];
    if (k[0] === ':' || v === undefined || H2_FORBIDDEN.has(k) || (drop !== null && drop.has(k))) continue;
    if (k === 'te' && v !== 'trailers') continue;
    if (k === XFCC && ed.xfcc !== XfccAction.KEEP) continue;
    if (k === ORIGINAL_PATH && ed.originalPath !== undefined) continue;
    out[k] = v;
  }
  if (ed.originalPath !== undefined) out[ORIGINAL_PATH] = ed.originalPath;
  if (ip) {
    const prior = first(h['x-forwarded-for']);
    out['x-forwarded-for'] = prior ? `${prior},${ip}` : ip;
  }
  if (out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = 'http';
  if (ed.xfcc === XfccAction.APPEND || ed.xfcc === XfccAction.SET) {
    const sent = h[XFCC];
    out[XFCC] = xfccValue(ed.xfcc, ed.xfccElement, Array.isArray(sent) ? sent.join(', ') : sent);
  }
  // A request known to be empty goes upstream unchunked; as Envoy's HTTP/1 codec does, methods
  // that may carry a body say so with content-length: 0 (some HTTP/1 servers answer 411 without it).
  if (ed.emptyBody && out['content-length'] === undefined && !bodiless(method)) out['content-length'] = '0';
  const rid = first(h['x-request-id']);
  if (rid) ed.requestId = rid;
  else if (ed.generateRequestId) out['x-request-id'] = ed.requestId = uuidV4();
  return out;
}

/**
 * upstreamObject() on the flat path, for routes without request header mutations: the
 * downstream's list `s` (as the addon gives it) is kept as runs of kept pairs (repeats stay
 * separate pairs, which HTTP reads as the joined value), and the same fields are added. null
 * (take the object path) for an HTTP/1 upstream and more than one cookie field, which HTTP/1 must
 * get joined into one.
 */
const XFP_PAIR = 'x-forwarded-proto\0http\0';
const XFP_AND_ID_FILL = XFP_PAIR + REQUEST_ID_FILL_PAIR;

/** The last upstreamFlatOf put a generated request id into its list as a string (not a fill). */
let flatIdGenerated = false;

export function upstreamFlatOf(s: string, method: string, path: string, authority: string, ed: UpstreamEdits, h1: boolean): FlatRequest | null {
  const n = s.length;
  const { ip } = ed;
  // Most lists keep one run (the fields after the pseudo-headers): an array made for two numbers
  // is 64 bytes, where pushing into [] makes room for sixteen (176 bytes, a tenth of an h2c
  // request's allocation).
  const runs: number[] = [0, 0];
  let nRuns = 0;
  let extra = '';
  let pairs = 4;
  let prior: string | undefined;
  let rid: string | undefined;
  let xfp = false;
  let cl = false;
  let cookies = 0;
  let xfccSent: string | undefined;
  /** Start of the current run of kept pairs, -1 when none. */
  let run = -1;
  const m = flatIndex(s);
  const t = flatTab;
  let i = 0;
  for (let j = 0, r = flatBase; j < m; j++, r += 3) {
    const e = t[r]!;
    const b = t[r + 1]!;
    let keep = true;
    // Only the names this cares about, by token.
    switch (t[r + 2]) {
      case FieldToken.METHOD:
      case FieldToken.PATH:
      case FieldToken.AUTHORITY:
      case FieldToken.SCHEME:
      case FieldToken.STATUS:
      case FieldToken.PSEUDO:
      case FieldToken.HOST:
      case FieldToken.UPGRADE:
      case FieldToken.CONNECTION:
      case FieldToken.KEEP_ALIVE:
      case FieldToken.HTTP2_SETTINGS:
      case FieldToken.PROXY_CONNECTION:
      case FieldToken.TRANSFER_ENCODING:
        keep = false;
        break;
      case FieldToken.TE: // "trailers" only, and never to HTTP/1
        keep = false;
        break;
      case FieldToken.TE_TRAILERS:
        keep = !h1;
        break;
      case FieldToken.COOKIE:
        if (++cookies > 1 && h1) return null;
        break;
      case FieldToken.REQUEST_ID:
        rid = rid === undefined ? s.slice(e + 1, b) : `${rid}, ${s.slice(e + 1, b)}`;
        break;
      case FieldToken.CONTENT_LENGTH:
        cl = true;
        break;
      case FieldToken.FORWARDED_FOR:
        if (ip) {
          prior = prior === undefined ? s.slice(e + 1, b) : `${prior}, ${s.slice(e + 1, b)}`;
          keep = false;
        }
        break;
      case FieldToken.FORWARDED_PROTO:
        xfp = true;
        break;
      case FieldToken.ORIGINAL_PATH:
        if (ed.originalPath !== undefined) keep = false;
        break;
      case FieldToken.CLIENT_CERT:
        if (ed.xfcc !== XfccAction.KEEP) {
          xfccSent = xfccSent === undefined ? s.slice(e + 1, b) : `${xfccSent}, ${s.slice(e + 1, b)}`;
          keep = false;
        }
        break;
    }
    if (keep) {
      if (run < 0) run = i;
      pairs++;
    } else if (run >= 0) {
      if (nRuns++ === 0) {
        runs[0] = run;
        runs[1] = i;
      } else runs.push(run, i);
      run = -1;
    }
    i = b + 1;
  }
  if (run >= 0) {
    if (nRuns++ === 0) {
      runs[0] = run;
      runs[1] = n;
    } else runs.push(run, n);
  }
  if (nRuns === 0) runs.length = 0;
  if (ip) {
    extra += `x-forwarded-for\0${prior ? `${prior},${ip}` : ip}\0`;
    pairs++;
  }
  if (!xfp) {
    extra += XFP_PAIR;
    pairs++;
  }
  if (ed.xfcc === XfccAction.APPEND || ed.xfcc === XfccAction.SET) {
    extra += `${XFCC}\0${xfccValue(ed.xfcc, ed.xfccElement, xfccSent)}\0`;
    pairs++;
  }
  if (ed.emptyBody && !cl && !bodiless(method)) {
    extra += 'content-length\x000\x00';
    pairs++;
    cl = true;
  }
  if (ed.originalPath !== undefined) {
    extra += `${ORIGINAL_PATH}\0${ed.originalPath}\0`;
    pairs++;
  }
  let fills = false;
  flatIdGenerated = false;
  if (rid) ed.requestId = rid;
  else if (ed.generateRequestId) {
    if (ed.fillId) {
      // One constant string for the usual additions, not a rope the addon would flatten.
      extra = extra === XFP_PAIR ? XFP_AND_ID_FILL : extra + REQUEST_ID_FILL_PAIR;
      fills = true;
    } else {
      extra += `x-request-id\0${(ed.requestId = uuidV4())}\0`;
      flatIdGenerated = true;
    }
    pairs++;
  }
  return new FlatRequest(s, runs, extra, pairs, method, path, authority, cl, fills);
}


/** A repeated field's value as headerObject() joins it (not for cookie or set-cookie). */
function joinValue(prev: string | undefined, v: string): string {
  return prev === undefined ? v : `${prev}, ${v}`;
}

function classify(stats: HttpConnectionManagerFilter['stats'], status: number): void {
  // Direct fields: no stat name is built per response.
  const c = status < 200 ? stats.downstream_rq_1xx : status < 300 ? stats.downstream_rq_2xx : status < 400 ? stats.downstream_rq_3xx : status < 500 ? stats.downstream_rq_4xx : stats.downstream_rq_5xx;
  c.value++;
}

/**
 * The edits every forwarded response head gets (before the route's own): connection-specific
 * fields out, `server` per `server_header_transformation`, `x-request-id` when asked for.
 * writeH1ResponseSpans makes the same ones on the flat path.
 */
export function editResponseObject(out: HeaderObject, serverMode: string, serverName: string, requestId: string | null): void {
  for (const k of H2_FORBIDDEN_LIST) if (out[k] !== undefined) delete out[k];
  if (serverMode === 'OVERWRITE' || (serverMode === 'APPEND_IF_ABSENT' && out.server === undefined)) out.server = serverName;
  if (requestId && out['x-request-id'] === undefined) out['x-request-id'] = requestId;
}

/** Pairs of the last list h2ResponseRunsOf (or h2ResponseFlatOf) made. */
let flatOutPairs = 0;
/** The [start, end) runs of the upstream's list the last h2ResponseRunsOf kept, two per run, and their count. */
let respRuns: Int32Array = RUNS_TABLE;
let respRunCount = 0;

/** @internal the pair count of the last h2ResponseFlatOf list (the parity test checks it). */
export function h2ResponseFlatPairs(): number {
  return flatOutPairs;
}

/**
 * The downstream response list of an HTTP/2 upstream's head `s` (the addon's flat list), as
 * onResponse's object path sends it: connection-specific fields out, `server`, `x-request-id` and
 * `date` as writeH1ResponseSpans adds them. Returned in parts for the addon to join
 * (respondRuns): the kept runs of `s` in respRuns (respRunCount of them) and the added pairs,
 * returned; the pair count is left in flatOutPairs.
 */
function h2ResponseRunsOf(s: string, serverMode: string, serverName: string, requestId: string | null): string {
  const overwrite = serverMode === 'OVERWRITE';
  if (s === runsMemoList && overwrite === runsMemoOverwrite) {
    const nr = runsMemoNr;
    const runs = respRuns;
    for (let k = 0; k < 2 * nr; k++) runs[k] = runsMemo[k]!;
    const f = runsMemoFound;
    return responseTail(nr, runsMemoPairs, (f & FOUND_SERVER) !== 0, (f & FOUND_DATE) !== 0, (f & FOUND_RID) !== 0, overwrite, serverMode, serverName, requestId);
  }
  const n = s.length;
  let runs = respRuns;
  let nr = 0;
  let pairs = 0;
  let server = false;
  let date = false;
  let rid = false;
  let run = -1;
  const m = flatIndex(s);
  const t = flatTab;
  let i = 0;
  for (let j = 0, r = flatBase; j < m; j++, r += 3) {
    const b = t[r + 1]!;
    let keep = true;
    switch (t[r + 2]) {
      case FieldToken.DATE:
        date = true;
        break;
      case FieldToken.SERVER:
        if (overwrite) keep = false;
        else server = true;
        break;
      case FieldToken.REQUEST_ID:
        rid = true;
        break;
      case FieldToken.HOST:
      case FieldToken.UPGRADE:
      case FieldToken.CONNECTION:
      case FieldToken.KEEP_ALIVE:
      case FieldToken.HTTP2_SETTINGS:
      case FieldToken.PROXY_CONNECTION:
      case FieldToken.TRANSFER_ENCODING:
        keep = false;
        break;
    }
    if (keep) {
      if (run < 0) run = i;
      pairs++;
    } else if (run >= 0) {
      if (2 * nr + 2 > runs.length) runs = respRuns = growRuns(runs);
      runs[2 * nr] = run;
      runs[2 * nr + 1] = i;
      nr++;
      run = -1;
    }
    i = b + 1;
  }
  if (run >= 0) {
    if (2 * nr + 2 > runs.length) runs = respRuns = growRuns(runs);
    runs[2 * nr] = run;
    runs[2 * nr + 1] = n;
    nr++;
  }
  if (2 * nr <= runsMemo.length) {
    runsMemoList = s;
    runsMemoOverwrite = overwrite;
    runsMemoNr = nr;
    runsMemoPairs = pairs;
    runsMemoFound = (server ? FOUND_SERVER : 0) | (date ? FOUND_DATE : 0) | (rid ? FOUND_RID : 0);
    for (let k = 0; k < 2 * nr; k++) runsMemo[k] = runs[k]!;
  } else runsMemoList = null;
  return responseTail(nr, pairs, server, date, rid, overwrite, serverMode, serverName, requestId);
}

/**
 * h2ResponseRunsOf's scan of the last upstream list it was given. An upstream repeats its response
 * head, and the addon then hands over the very string it gave last (KEPT_LIST): the runs kept and
 * the fields found are not worked out again (~350 instructions a gRPC response). Keyed by the list
 * (a reference compare when it is that string) and the one setting the scan depends on.
 */
let runsMemoList: string | null = null;
let runsMemoOverwrite = false;
let runsMemoNr = 0;
let runsMemoPairs = 0;
let runsMemoFound = 0;
const runsMemo = new Int32Array(8);
const FOUND_SERVER = 1;
const FOUND_DATE = 2;
const FOUND_RID = 4;

/** h2ResponseRunsOf's added pairs, after the upstream's list scanned to `nr` runs of `pairs` pairs. */
function responseTail(nr: number, pairs: number, server: boolean, date: boolean, rid: boolean, overwrite: boolean, serverMode: string, serverName: string, requestId: string | null): string {
  const addServer = overwrite || (serverMode === 'APPEND_IF_ABSENT' && !server);
  const addId = requestId !== null && requestId !== '' && !rid;
  let extra: string;
  if (!addId && !date) {
    // The common tail, `server` and `date`: one flat string a second instead of a rope built
    // per response and flattened again by the addon's read.
    extra = addServer ? serverDateExtra(serverName) : dateExtra();
    pairs += addServer ? 2 : 1;
  } else if (!addId) {
    // The upstream dated its answer (gRPC servers do): the server pair alone, one string kept.
    extra = addServer ? serverExtra(serverName) : '';
    if (addServer) pairs++;
  } else {
    extra = '';
    if (addServer) {
      extra += `server\0${serverName}\0`;
      pairs++;
    }
    if (addId) {
      extra += `x-request-id\0${requestId}\0`;
      pairs++;
    }
    if (!date) {
      extra += `date\0${httpDate()}\0`;
      pairs++;
    }
  }
  respRunCount = nr;
  flatOutPairs = pairs;
  return extra;
}

let tailDate = '';
let tailServer = '';
let tailServerDate = '';
let tailDateOnly = '';

/** "server\0<name>\0date\0<now>\0" as one sequential string, rebuilt when the second or the name changes. */
function serverDateExtra(serverName: string): string {
  const d = httpDate();
  if (d !== tailDate || serverName !== tailServer) {
    tailDate = d;
    tailServer = serverName;
    tailServerDate = Buffer.from(`server\0${serverName}\0date\0${d}\0`, 'latin1').toString('latin1');
    tailDateOnly = Buffer.from(`date\0${d}\0`, 'latin1').toString('latin1');
  }
  return tailServerDate;
}

let pairServer = '';
let pairServerName = '';

/** "server\0<name>\0", made again only when the name changes. */
function serverExtra(serverName: string): string {
  if (serverName !== pairServerName || pairServer === '') {
    pairServerName = serverName;
    pairServer = Buffer.from(`server\0${serverName}\0`, 'latin1').toString('latin1');
  }
  return pairServer;
}

/** "date\0<now>\0" as one sequential string. */
function dateExtra(): string {
  serverDateExtra(tailServer);
  return tailDateOnly;
}

function growRuns(r: Int32Array): Int32Array {
  const g = new Int32Array(2 * r.length);
  g.set(r);
  return g;
}

/**
 * h2ResponseRunsOf's list joined: what the addon's respondRuns sends (the reference for it).
 * @internal exported for the parity test
 */
export function h2ResponseFlatOf(s: string, serverMode: string, serverName: string, requestId: string | null): string {
  const extra = h2ResponseRunsOf(s, serverMode, serverName, requestId);
  let out = '';
  for (let k = 0; k < 2 * respRunCount; k += 2) {
    const a = respRuns[k]!;
    const b = respRuns[k + 1]!;
    out += b === s.length ? `${s.slice(a, b)}\0` : s.slice(a, b);
  }
  return out + extra;
}

/** @internal h2ResponseRunsOf for the parity test: the upstream list's kept runs and the added pairs. */
export function h2ResponseParts(s: string, serverMode: string, serverName: string, requestId: string | null): { runs: Int32Array; nRuns: number; extra: string; pairs: number } {
  const extra = h2ResponseRunsOf(s, serverMode, serverName, requestId);
  return { runs: respRuns.slice(0, 2 * respRunCount), nRuns: respRunCount, extra, pairs: flatOutPairs };
}

/**
 * Trailers to send downstream from an upstream's flat list, as sendTrailers() filters the object:
 * pseudo-headers and connection-specific fields out. Its pair count is left in flatOutPairs.
 * @internal exported for the parity test
 */
export function trailersFlatOf(s: string): string {
  const w = writeTrailersFlat(FLAT, s);
  flatOutPairs = w.pairs;
  return w.buf.toString('latin1', 0, w.len);
}

/**
 * Whether sendTrailers() drops a field of this FieldToken: a pseudo-header or one HTTP/2 forbids
 * (H2_FORBIDDEN). upstreamFlatOf() drops the same, and h2ResponseRunsOf() those but :status, by
 * cases of their own: written as one call there, V8's code for them measured ~5 % more
 * instructions per gRPC request (f7ef789, 1bf7822; reverted) and recompiled in measured rounds.
 */
function h2Dropped(t: number): boolean {
  switch (t) {
    case FieldToken.METHOD:
    case FieldToken.PATH:
    case FieldToken.AUTHORITY:
    case FieldToken.SCHEME:
    case FieldToken.STATUS:
    case FieldToken.PSEUDO:
    case FieldToken.HOST:
    case FieldToken.UPGRADE:
    case FieldToken.CONNECTION:
    case FieldToken.KEEP_ALIVE:
    case FieldToken.HTTP2_SETTINGS:
    case FieldToken.PROXY_CONNECTION:
    case FieldToken.TRANSFER_ENCODING:
      return true;
    default:
      return false;
  }
}

/** The pair count of the trailers `s` when sendTrailers() keeps every field of them, else -1. */
function trailersWhole(s: string): number {
  const m = flatIndex(s);
  const t = flatTab;
  for (let j = 0, r = flatBase; j < m; j++, r += 3) {
    if (h2Dropped(t[r + 2]!)) return -1;
  }
  return m;
}

/**
 * What trailersFlatOf returns, written into `w` (reset first) as bytes: a gRPC status list is
 * short enough to copy by loop, cheaper than joining a string the addon must then flatten (a
 * long list, such as a request's, measured the other way round).
 */
function writeTrailersFlat(w: FlatWriter, s: string): FlatWriter {
  const n = s.length;
  w.reset();
  let pairs = 0;
  let run = -1;
  const m = flatIndex(s);
  const t = flatTab;
  let i = 0;
  for (let j = 0, r = flatBase; j < m; j++, r += 3) {
    const b = t[r + 1]!;
    if (!h2Dropped(t[r + 2]!)) {
      if (run < 0) run = i;
      pairs++;
    } else if (run >= 0) {
      w.raw(s, run, i);
      run = -1;
    }
    i = b + 1;
  }
  if (run >= 0) {
    w.raw(s, run, n);
    w.nul();
  }
  w.pairs += pairs;
  return w;
}

const HOP_KIND = (1 << HeaderKind.HOST) | (1 << HeaderKind.TRANSFER_ENCODING) | (1 << HeaderKind.CONNECTION) | (1 << HeaderKind.KEEP_ALIVE) | (1 << HeaderKind.PROXY_CONNECTION) | (1 << HeaderKind.UPGRADE) | (1 << HeaderKind.TE);

/** The kept fields of an HTTP/1 head as [nameStart, nameEnd, valueStart, valueEnd] quads into its bytes. */
export class HeadSpans {
  buf = new Int32Array(4 * 32);
  n = 0;

  /** `table`: as FlatWriter's, the addon slot the buffer is registered in (the shared H1_SPANS). */
  constructor(private readonly table: TableSlot | -1 = -1) {
    if (table !== -1) setTable(table, this.buf);
  }

  push(ns: number, ne: number, vs: number, ve: number): void {
    let b = this.buf;
    if (4 * this.n + 4 > b.length) {
      const g = new Int32Array(b.length * 2);
      g.set(b);
      b = this.buf = g;
      if (this.table !== -1) setTable(this.table, g);
    }
    const o = 4 * this.n++;
    b[o] = ns;
    b[o + 1] = ne;
    b[o + 2] = vs;
    b[o + 3] = ve;
  }
}

/** The one span list response heads share: each is filled and handed over synchronously. */
const H1_SPANS = new HeadSpans(TableSlot.SPANS);
/** writeH1ResponseSpans's added pairs as bytes. */
const H1_BLOCKS = new FlatBlocks();

/** The :status and server pairs writeH1ResponseExtras wrote last, as FlatWriter.keep() kept them. */
const H1_PREFIX: { status: number; server: string | null; writer: FlatWriter | null } = { status: -1, server: null, writer: null };

/**
 * writeH1ResponseSpans's pairs for respondH1Head, which looks at the head's fields itself: `w`
 * (reset here) gets `:status`, the server header per `serverMode`, `x-request-id` (`requestId`,
 * when the head lacks one) and `date` when the head has none, as the parser's flags (`present`,
 * ResponseHas bits) tell. Returns whether the head's own server fields are to be dropped
 * (OVERWRITE).
 * @internal exported for the parity test
 */
export function writeH1ResponseExtras(w: FlatWriter, status: number, present: number, serverMode: string, serverName: string, requestId: string | null): boolean {
  const overwrite = serverMode === 'OVERWRITE';
  const server = overwrite || (serverMode === 'APPEND_IF_ABSENT' && (present & ResponseHas.SERVER) === 0) ? serverName : null;
  // `w` is reset here: kept from the last response when it began the same (two copies fewer).
  const p = H1_PREFIX;
  if (p.status !== status || p.server !== server || p.writer !== w || !w.resetTo(p)) {
    w.reset();
    w.block(H1_BLOCKS.status(status), 1);
    if (server !== null) w.block(H1_BLOCKS.server(server), 1);
    p.status = status;
    p.server = server;
    p.writer = w;
    w.keep(p);
  }
  if (requestId && (present & ResponseHas.REQUEST_ID) === 0) w.pair('x-request-id', requestId);
  if ((present & ResponseHas.DATE) === 0) w.block(H1_BLOCKS.date(httpDate()), 1);
  return overwrite;
}

/**
 * The downstream response list of an HTTP/1 upstream head as onResponse's object path would send
 * it, in two parts for respondSpans(): `w` gets `:status`, the server header per
 * `server_header_transformation`, `x-request-id` (`requestId`, when the response lacks one) and
 * `date` when the upstream sent none; `spans` (reset first) gets the head's fields less hop-by-hop
 * ones, as positions in `head.buf`: the addon hands them to nghttp2 from there (which lower-cases
 * names), no byte copied here. Repeated fields stay separate pairs.
 * @internal exported for the parity test
 */
export function writeH1ResponseSpans(w: FlatWriter, spans: HeadSpans, status: number, head: MessageHead, serverMode: string, serverName: string, requestId: string | null): void {
  w.block(H1_BLOCKS.status(status), 1);
  spans.n = 0;
  const f = head.fieldSlots;
  const b = head.buf;
  const overwrite = serverMode === 'OVERWRITE';
  let server = false;
  let date = false;
  let rid = false;
  for (let i = head.fieldsAt; i < head.fieldsEnd; i += F.SIZE) {
    const kind = f[i + F.KIND]!;
    if (kind !== HeaderKind.OTHER && ((1 << kind) & HOP_KIND) !== 0) continue;
    const ns = f[i + F.NAME_START]!;
    const ne = f[i + F.NAME_END]!;
    // Only the lengths of the names looked at here are compared byte by byte.
    switch (ne - ns) {
      case 4:
        if (nameIs(b, ns, ne, 'date')) date = true;
        break;
      case 6:
        if (nameIs(b, ns, ne, 'server')) {
          if (overwrite) continue;
          server = true;
        }
        break;
      case 12:
        if (nameIs(b, ns, ne, 'x-request-id')) rid = true;
        break;
      case 14:
        if (nameIs(b, ns, ne, 'http2-settings')) continue;
        break;
    }
    spans.push(ns, ne, f[i + F.VALUE_START]!, f[i + F.VALUE_END]!);
  }
  if (overwrite || (serverMode === 'APPEND_IF_ABSENT' && !server)) w.block(H1_BLOCKS.server(serverName), 1);
  if (requestId && !rid) w.pair('x-request-id', requestId);
  if (!date) w.block(H1_BLOCKS.date(httpDate()), 1);
}
