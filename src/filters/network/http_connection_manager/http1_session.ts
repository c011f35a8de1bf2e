/**
 * The HTTP/1.1 side of the connection manager: a downstream connection parsed from its bytes
 * (Http1Session) and one request/response exchange at a time on it (Http1Stream).
 */
import crypto from 'node:crypto';
import type net from 'node:net';
import { log } from '../../../log.js';
import type { StatsOf } from '../../../observability/stats.js';
import { BODY_ERROR, BodyFramer, BodyMode } from '../../../protocols/http1/body.js';
import { bytesEqualLower, getHeader, hasHeader, responseHasNoBody, wantsKeepAlive } from '../../../protocols/http1/decoder.js';
import { flagsInTables, parseRequestHead, parseRequestHeadOwned, parseResponseHead, parseResponseHeadOwned } from '../../../protocols/http1/parser.js';
import { RequestHas } from '../../../protocols/http1/native_head.js';
import { encodeHead, encodeHeadSend, encodeHeadSendAt, keptBuffer, keptLength, encodeHeadStaged, encodeHeadStagedAt, stagedBuffer, stagedLength, encodeLocalResponse, lastHeadSent, reasonPhrase, resetStage, sendHead, type Drop } from '../../../protocols/http1/encoder.js';
import { canSendNow, directFd, flushRanges, queueRange, sendStaged, sendStagedRange, sendTo } from '../../../protocols/http1/send.js';
import { copyOut, http1BatchReader, inBatch, onBatchEnd, onBatchTail, runBatched } from '../../../protocols/http1/batch_reader.js';
import { BatchQueue } from '../../../protocols/http1/batch_queue.js';
import { originFormOf } from '../../../protocols/http1/absolute_form.js';
import { pathRedirect, preparePath } from './normalize_path.js';
import { XFCC, XfccAction, xfccAction, xfccElement, xfccValue } from './xfcc.js';
import { enterBatch, leaveBatch, now as clockNow } from '../../../protocols/http1/clock.js';
import { REQUEST_ID_LINE, REQUEST_ID_VALUE_AT, UUID_LENGTH, writeUuidV4 } from '../../../protocols/http1/request_id.js';
import { F, HeadStatus, HeaderKind, type MessageHead } from '../../../protocols/http1/types.js';
import { effectiveTimeoutMs, pathOnly, rewritePath, streamDurationMs, type ForwardAction, type HeaderMutation, type HttpRoute, type HttpRequestView, type RedirectAction } from '../../../router/http_route_table.js';
import { pickRouteCluster, type HttpLbContext } from '../../../router/hash_policy.js';
import type { HeaderLookup } from '../../../router/header_matcher.js';
import type { Cluster } from '../../../upstream/cluster.js';
import type { Host } from '../../../upstream/host.js';
import { OutlierResult } from '../../../upstream/outlier/monitor.js';
import { drainResponse } from '../../../upstream/http1_drain.js';
import type { Http1ClusterPools, Http1ConnUser, Http1HostPool, Http1UpstreamConn } from '../../../upstream/http1_pool.js';
import { upstreamProtocolOf } from '../../../upstream/http2_pool.js';
import { countUpstreamStatus, type HTTP_CLUSTER_STATS } from '../../../upstream/http_stats.js';
import type { BodyNeed, ExchangeObserver, FilterDoneHook, FilterReply, HttpFilterRequest, ResponseBodyFilter } from '../../http/types.js';
import { withFilterHeaders } from '../../http/chain.js';
import { applyHeaderObject, editHeaderLines, editLocalReplyLines, NO_EDITS } from './response_edits.js';
import { TransformTry } from './transform_try.js';
import type { RequestTrace } from '../../../observability/tracing/tracer.js';
import { newEntry, type AccessLogEntry } from '../../../observability/access_log/entry.js';
import type { MetadataValue } from '../../http/types.js';
import { applyLocalReplyHeaders, type RewrittenReply } from './local_reply.js';
import type { TimedStream } from './stream_timeouts.js';
import { grpcStatusOfHttp } from '../../../protocols/http2/grpc_status.js';
import { native } from '../../../native.js';
import type { ConnectionContext, Handover } from '../types.js';
import type { HcmConfig } from './config.js';
import { DirectSocket, type ClientSocket, type DirectSocketOwner } from '../../../io/direct_socket.js';
import { armDeadline, disarmDeadline, type DeadlineList, type DeadlineOwner } from './deadlines.js';
import type { HttpConnectionManagerFilter } from './filter.js';
import { H2_PREFACE, serveH2 } from './h2_session.js';
import { sendMirrors } from './mirror.js';
import { H1Try, H2Try, ParkedH1Conn, TryRelay, statusRetriable, type HedgeOwner, type HeaderObject, type ParkedTry, type TryEvents, type TryFailureKind, type UpstreamTry } from './upstream_try.js';
import { noteTried, pickTryHost, type TriedHosts } from './retry_hosts.js';
import type { HCM_STATS } from './stats.js';
import { stripHostPort } from './host_port.js';
import { h1DropUnderscored, h1HasUnderscore, Underscores } from './underscores.js';

type HcmStats = StatsOf<typeof HCM_STATS>;
type ClusterHttpStats = StatsOf<typeof HTTP_CLUSTER_STATS>;

/** RFC 9110 §9.2.2: safe to send twice. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const CONTINUE_100 = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
/**
 * A response body up to this size that arrives with its head is copied behind the head and sent
 * as one buffer: copying a few KiB costs less than cork + a writev of two buffers.
 */
const INLINE_BODY_MAX = 4096;

/** Envoy's local reply bodies, so clients and dashboards that grep them keep working. */
const BODY_NO_HEALTHY = 'no healthy upstream';
const BODY_TIMEOUT = 'upstream request timeout';
const BODY_RETRY_BUFFER = 'exceeded request buffer limit while retrying upstream';
const BODY_CONNECT_FAILURE = 'upstream connect error or disconnect/reset before headers. reset reason: connection failure';
const BODY_RESET = 'upstream connect error or disconnect/reset before headers. reset reason: connection termination';
const BODY_OVERFLOW = 'upstream connect error or disconnect/reset before headers. reset reason: overflow';
const BODY_PROTOCOL = 'upstream connect error or disconnect/reset before headers. reset reason: protocol error';

function statusClass(stats: { downstream_rq_1xx: { value: number }; downstream_rq_2xx: { value: number }; downstream_rq_3xx: { value: number }; downstream_rq_4xx: { value: number }; downstream_rq_5xx: { value: number } }, status: number): void {
  if (status < 200) stats.downstream_rq_1xx.value++;
  else if (status < 300) stats.downstream_rq_2xx.value++;
  else if (status < 400) stats.downstream_rq_3xx.value++;
  else if (status < 500) stats.downstream_rq_4xx.value++;
  else stats.downstream_rq_5xx.value++;
}


/**
 * Strings handed to the addon's head writer are read fastest when flat; a template or `+` makes
 * a new rope per request that V8 flattens on each read (~100 ns an encode, measured). So the
 * strings that repeat from request to request are made once and reused: the status lines, the
 * upstream request line while method and target repeat, the usual added request lines.
 */
const STATUS_LINES = new Map<number, string>();

function statusLine(status: number): string {
  let l = STATUS_LINES.get(status);
  if (l === undefined) {
    l = `HTTP/1.1 ${status} ${reasonPhrase(status)}`;
    // Statuses are three digits; the bound only guards against a map that grows without end.
    if (STATUS_LINES.size < 1000) STATUS_LINES.set(status, l);
  }
  return l;
}

let lastUpMethod = '';
let lastUpTarget = '';
let lastUpLine = ' ';

/**
 * The head's target prepared in place (normalize_path, merge_slashes, escaped slashes:
 * normalize_path.ts); false when it is refused (400). pathRedirect then says whether to redirect.
 */
function prepareTarget(head: MessageHead, cfg: HcmConfig): boolean {
  const n = preparePath(head.target, cfg);
  if (n === null) return false;
  if (n !== head.target) (head as { target: string }).target = n;
  return true;
}

/** `METHOD target HTTP/1.1`, the previous string when both parts repeat (the parser reuses them too). */
function requestLine(method: string, target: string): string {
  if (method === lastUpMethod && target === lastUpTarget) return lastUpLine;
  lastUpMethod = method;
  lastUpTarget = target;
  return (lastUpLine = `${method} ${target} HTTP/1.1`);
}

const XFP_LINE = 'x-forwarded-proto: http\r\n';
/** getAll's answer for a name the head does not carry. */
const NO_VALUES: readonly string[] = [];
/** Envoy's router puts the path a route rewrote in this header of the upstream request. */
const ORIGINAL_PATH = 'x-envoy-original-path';
/** The usual added request lines, by (x-forwarded-proto added ? 1 : 0) | (request id added ? 2 : 0). */
const ADDED_LINES = ['', XFP_LINE, REQUEST_ID_LINE, XFP_LINE + REQUEST_ID_LINE] as const;

/**
 * Sessions with pipelined requests waiting, handled in one Immediate for all of them rather than
 * one each: an Immediate per request cost its own callback round (async context, a microtask
 * checkpoint) on pipelined connections, and the round reads the clock once (clock.ts).
 */
let laterQueue: Http1Session[] = [];

/**
 * Sessions whose next pipelined request a response of the current read batch let go on: they
 * are served at the batch's tail (processQueued), so that request's upstream head leaves with
 * the batch's other writes instead of one Immediate round later.
 */
let tailQueue: Http1Session[] = [];

/**
 * Streams whose connection closed after a finished exchange (idle(), reusable()), for the first
 * request of a new connection: on connection-per-request traffic that is every request, and a
 * stream is the largest object of one (~600 bytes, more with its kept heads). Bounded: a burst
 * of new connections is served by as many streams at most. A pooled stream still names its
 * closed session (at most STREAM_POOL_MAX of them kept), so code finishing after the stream
 * went back to the pool finds a closed session rather than none.
 */
const streamPool: Http1Stream[] = [];
const STREAM_POOL_MAX = 256;

/** How long a closing connection waits for the client's FIN after ours (closeGracefully). */
const LINGER_MS = 5_000;

/**
 * A connection's first bytes could be (the start of) the HTTP/2 preface: "PRI" is no HTTP/1
 * method, so any other first read is a request, parsed in place like the ones after it.
 */
function mayBePreface(src: Buffer, off: number, end: number): boolean {
  if (src[off] !== 0x50) return false; // 'P'
  const n = Math.min(end - off, H2_PREFACE.length);
  return src.compare(H2_PREFACE, 0, n, off, off + n) === 0;
}

const CLOSE_TOKEN = Buffer.from('close', 'latin1');
const KEEP_ALIVE_TOKEN = Buffer.from('keep-alive', 'latin1');

/**
 * A Connection value that is just `close` or `keep-alive` (any case): it names no other header
 * to drop, and a connection-per-request client sends one with every request.
 */
function standardConnectionValue(b: Buffer, start: number, end: number): boolean {
  const t = end - start === 5 ? CLOSE_TOKEN : end - start === 10 ? KEEP_ALIVE_TOKEN : null;
  if (t === null) return false;
  // ASCII letters and '-' only: setting 0x20 folds case and leaves '-' as it is.
  for (let i = 0; i < t.length; i++) if ((b[start + i]! | 0x20) !== t[i]) return false;
  return true;
}

/** The request routed now (Http1Session.route), and the view routing reads it through. */
let routeViewHead: MessageHead | null = null;
const routeView: { host: string; path: string; method: string; header: HeaderLookup } = {
  host: '',
  path: '',
  method: '',
  header: (n) => (routeViewHead === null ? undefined : getHeader(routeViewHead, n)),
};

function processLater(s: Http1Session): void {
  if (inBatch()) tailQueue.push(s);
  else if (laterQueue.push(s) === 1) setImmediate(runLater);
}

function processQueued(): void {
  // A session served here queues nothing new (it is processing), but a loop costs nothing.
  while (tailQueue.length > 0) {
    const q = tailQueue;
    tailQueue = [];
    processAll(q);
  }
}
onBatchTail(processQueued);

function processAll(q: Http1Session[]): void {
  for (const s of q) {
    try {
      s.process();
    } catch (err) {
      // A bug must cost that connection, never the others queued here or the process.
      log.error({ err: (err as Error).stack }, 'http connection manager failed on a connection');
      s.socket.destroy();
    }
  }
}

function runLater(): void {
  // Sessions queued while this runs wait for the next round, as they did with one Immediate each.
  const q = laterQueue;
  laterQueue = [];
  const clock = enterBatch();
  try {
    // Their upstream heads leave together at the end, as a batch of reads' do.
    runBatched(() => processAll(q));
  } finally {
    leaveBatch(clock);
  }
}

/**
 * Sessions holding response bytes queued by writeHead during a read batch (Http1Session.held),
 * sent at the batch's end: the responses one batch of upstream reads completes leave back to
 * back, after the batch's JS work, as its upstream request heads do (src/upstream/http1_pool.ts).
 */
const heldSessions = new BatchQueue<Http1Session>();

function sendHeldOf(s: Http1Session): void {
  try {
    s.sendHeld(true);
  } catch {
    // A write that throws (a socket torn down under it) costs that connection only.
    s.socket.destroy();
  }
}

/** Sessions closing (closeGracefully) once their held response has left: sendHeld's hook ends them. */
const closingAfterHeld: Http1Session[] = [];

function endSocketOf(s: Http1Session): void {
  try {
    s.endSocket();
  } catch {
    s.socket.destroy();
  }
}

function sendHeld(): void {
  try {
    heldSessions.drain(sendHeldOf);
  } finally {
    // The staged responses leave (or are copied) before the stage is reused, and before the
    // connections that close after them are ended.
    flushRanges();
    resetStage();
    for (let s = closingAfterHeld.pop(); s !== undefined; s = closingAfterHeld.pop()) endSocketOf(s);
  }
}
onBatchEnd(sendHeld);

/** Every value of a header, in order (x-forwarded-for may arrive as several lines). */
function getAll(head: MessageHead, name: string): string[] {
  const out: string[] = [];
  const f = head.fieldSlots;
  for (let i = head.fieldsAt; i < head.fieldsEnd; i += F.SIZE) {
    if (bytesEqualLower(head.buf, f[i + F.NAME_START]!, f[i + F.NAME_END]!, name)) out.push(head.buf.toString('latin1', f[i + F.VALUE_START]!, f[i + F.VALUE_END]!));
  }
  return out;
}

/** Whether header i of `head` is named one of `names` (lower-case). */
function named(head: MessageHead, i: number, names: readonly string[]): boolean {
  const o = head.fieldsAt + i * F.SIZE;
  const s = head.fieldSlots[o + F.NAME_START]!;
  const e = head.fieldSlots[o + F.NAME_END]!;
  for (const n of names) if (bytesEqualLower(head.buf, s, e, n)) return true;
  return false;
}

/**
 * The drop tests of the two heads every exchange forwards, as plain functions over module state
 * rather than two closures (and their name arrays) per request: a head is encoded by one
 * synchronous call that never re-enters, and the state is set just before it.
 */
const reqDropNames: string[] = [];
let reqKeepUpgrade = false;
let reqDropExpect = false;
let reqDropHost = false;

function dropRequestField(h: MessageHead, i: number): boolean {
  switch (h.fieldSlots[h.fieldsAt + i * F.SIZE]!) {
    case HeaderKind.UPGRADE:
      return !reqKeepUpgrade; // the one hop-by-hop header an allowed upgrade carries on
    case HeaderKind.CONNECTION:
    case HeaderKind.KEEP_ALIVE:
    case HeaderKind.PROXY_CONNECTION:
    case HeaderKind.TE:
      return true; // hop-by-hop
    case HeaderKind.EXPECT:
      return reqDropExpect;
    case HeaderKind.HOST:
      return reqDropHost;
    default:
      return reqDropNames.length > 0 && named(h, i, reqDropNames);
  }
}

/** The request fields dropped by kind alone: hop-by-hop always, the rest as set for this head. */
const REQ_HOP = (1 << HeaderKind.CONNECTION) | (1 << HeaderKind.KEEP_ALIVE) | (1 << HeaderKind.PROXY_CONNECTION) | (1 << HeaderKind.TE);

/**
 * dropRequestField as a Drop mask when no name is to be dropped (the usual case): no call per
 * field, and the addon can work out the kept lines itself (encodeHeadSendAt).
 */
function requestDrop(): Drop {
  if (reqDropNames.length !== 0) return dropRequestField;
  return REQ_HOP | (reqKeepUpgrade ? 0 : 1 << HeaderKind.UPGRADE) | (reqDropExpect ? 1 << HeaderKind.EXPECT : 0) | (reqDropHost ? 1 << HeaderKind.HOST : 0);
}

const respDropNames: string[] = [];
let respDechunk = false;
/**
 * The upstream's Server line gives way to ours (server_header_transformation OVERWRITE, the
 * default): a flag rather than a name in respDropNames, which would then be emptied with
 * `length = 0` per response, and V8 frees an emptied array's backing store (a new one, ~150
 * bytes, at the next push).
 */
let respDropServer = false;

/** The response fields dropped by kind alone (hop-by-hop). */
const RESP_HOP = (1 << HeaderKind.CONNECTION) | (1 << HeaderKind.KEEP_ALIVE) | (1 << HeaderKind.PROXY_CONNECTION) | (1 << HeaderKind.UPGRADE);

/** The kinds a forwarded response drops, as a Drop mask: hop-by-hop, plus framing and server as set. */
function responseKinds(): number {
  return RESP_HOP | (respDechunk ? 1 << HeaderKind.TRANSFER_ENCODING : 0) | (respDropServer ? 1 << HeaderKind.SERVER : 0);
}

/** responseKinds(), and the names in respDropNames (a transfer-encoding field goes by respDechunk alone). */
function dropResponseField(h: MessageHead, i: number): boolean {
  const k = h.fieldSlots[h.fieldsAt + i * F.SIZE]!;
  if (k === HeaderKind.TRANSFER_ENCODING) return respDechunk;
  return (k !== HeaderKind.OTHER && ((responseKinds() >> k) & 1) !== 0) || named(h, i, respDropNames);
}

/** dropResponseField as a mask when no name is to be dropped (the usual case): no call per field. */
function responseDrop(): Drop {
  return respDropNames.length !== 0 ? dropResponseField : responseKinds();
}

/** Every header of a request head, names lower-cased, for filters that forward them (ext_authz). */
function headerList(head: MessageHead): Array<[string, string]> {
  const f = head.fieldSlots;
  const b = head.buf;
  const out: Array<[string, string]> = [];
  for (let i = head.fieldsAt; i < head.fieldsEnd; i += F.SIZE) out.push([b.toString('latin1', f[i + F.NAME_START]!, f[i + F.NAME_END]!).toLowerCase(), b.toString('latin1', f[i + F.VALUE_START]!, f[i + F.VALUE_END]!)]);
  return out;
}

const noField = (): boolean => false;

/** Whether a mutation changes anything: most routes mutate nothing (no closure built for them). */
function mutates(m: HeaderMutation): boolean {
  return m.add.length > 0 || m.remove.length > 0;
}

/**
 * Applies a mutation's adds to the header lines being built: returns the extra lines and the
 * names whose original lines must go (overwrites and removes).
 */
function applyMutation(m: HeaderMutation, has: (name: string) => boolean, drop: string[]): string {
  if (m.add.length === 0 && m.remove.length === 0) return ''; // most routes mutate nothing
  for (const r of m.remove) drop.push(r);
  let extra = '';
  for (const a of m.add) {
    if (a.value === '' && !a.keepEmpty) continue;
    switch (a.action) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        break;
      case 'ADD_IF_ABSENT':
        if (has(a.name)) continue;
        break;
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        drop.push(a.name);
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (!has(a.name)) continue;
        drop.push(a.name);
        break;
    }
    extra += `${a.name}: ${a.value}\r\n`;
  }
  return extra;
}

/** applyMutation over a parsed head (a function of its own: its closure costs only routes that mutate). */
function applyMutationTo(m: HeaderMutation, head: MessageHead, drop: string[]): string {
  return applyMutation(m, (n) => hasHeader(head, n), drop);
}

/**
 * One downstream HTTP/1.1 connection. Requests are parsed from the bytes as they arrive; one
 * request is in flight at a time and pipelined requests wait, unparsed, until the response
 * before them is complete, so responses go out in order.
 */
export class Http1Session implements DirectSocketOwner {
  private buf: Buffer | null = null;
  private off = 0;
  stream: Http1Stream | null = null;
  /** The last exchange's stream, parked for the next request when nothing refers to it any more (Http1Stream.reusable). */
  private spare: Http1Stream | null = null;
  readonly framer = new BodyFramer();
  private closed = false;
  /** A tunnel's upstream (after an upgrade, in `direct` mode): client bytes go there unparsed. */
  private tunnelSink: net.Socket | null = null;
  private sawRequest = false;
  /** Requests started on this connection (counted only under max_requests_per_connection). */
  private requests = 0;
  private processing = false;
  private paused = false;
  /** Responses wait for the client to read them: no request starts until 'drain'. */
  private backlogged = false;
  /**
   * The idle timeout: while idle, the session waits in the list of its timeout's length
   * (deadlines.ts), one timer for every connection with that length instead of a Timeout each.
   */
  dlPrev: DeadlineOwner | null = null;
  dlNext: DeadlineOwner | null = null;
  dlDue = 0;
  dlList: DeadlineList | null = null;
  private headersTimer: NodeJS.Timeout | null = null;
  /** The downstream peer's IP (x-forwarded-for), '' for unix sockets. */
  readonly remoteIp: string;
  /** Where write() sends directly (src/protocols/http1/send.ts); -1: through the stream. */
  private readonly fd: number;
  /**
   * Response bytes writeHead queued in a read batch, in order, for sendHeld at its end (while
   * `holding`): the first as `heldStage[heldAt, heldAt + heldLen)` where the addon wrote it into
   * the stage (encodeHeadStagedAt: no Buffer at all), else in `heldOne`; any more in `held` (a
   * batch usually completes one response per connection, which then costs no array). Every
   * other write, end(), cork() and anything that looks at the socket's queue sends them first;
   * a destroyed socket drops them.
   */
  private holding = false;
  private heldStage: Buffer | null = null;
  private heldAt = 0;
  private heldLen = 0;
  private heldOne: Buffer | null = null;
  private held: Buffer[] | null = null;
  get downstream(): ConnectionContext['downstream'] {
    return this.conn.downstream;
  }

  constructor(
    readonly filter: HttpConnectionManagerFilter,
    private readonly conn: ConnectionContext,
    readonly socket: ClientSocket,
    /** The engine hands the bytes to onBytes (IoEngine.streamWithReader): the socket emits no 'data'. */
    private readonly direct = false,
  ) {
    this.remoteIp = conn.downstream.remote.family === 'unix' ? '' : conn.downstream.remote.address;
    this.fd = directFd(socket);
    conn.abort = () => socket.destroy();
    // A client may half-close after its last request and still read the response.
    socket.allowHalfOpen = true;
    if (socket instanceof DirectSocket) socket.owner = this;
    else {
      if (!direct) socket.on('data', (d: Buffer) => this.onBytes(d));
      socket.on('end', () => this.onEnd());
      socket.on('error', () => {}); // 'close' follows
      socket.on('close', () => this.onClose());
    }
    // TLS state cannot move between processes: such a connection is drained on hot restart instead.
    conn.handover = (socket as { encrypted?: boolean }).encrypted ? null : () => this.handover();
    conn.drain = () => this.drain();
    this.armIdle();
    if (conn.initialData) this.onData(conn.initialData);
  }

  /**
   * Hot restart: between requests (nothing in flight, every response byte handed to the
   * kernel), the keep-alive connection moves to the new process with any bytes of the next
   * request already read. The client keeps its connection and sees nothing.
   */
  private handover(): Handover | null {
    // Bytes the batch reader took this turn but has not handed over yet belong in `unread`.
    if (this.direct) http1BatchReader()?.flush();
    this.sendHeld();
    if (this.closed || this.stream || this.processing || this.socket.writableLength > 0) return null;
    // TLS state cannot move between processes: such connections finish here.
    if ((this.socket as { encrypted?: boolean }).encrypted) return null;
    const fd = this.socket instanceof DirectSocket ? this.socket.fd : (this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) return null;
    const copy = this.socket instanceof DirectSocket ? this.socket.dupFd() : native().upgrade.dup(fd);
    const unread = this.buf && this.off < this.buf.length ? Buffer.from(this.buf.subarray(this.off)) : Buffer.alloc(0);
    this.buf = null;
    this.closed = true;
    this.clearIdle();
    this.clearHeadersTimer();
    // Our copy of the fd closes without a FIN: the new process holds the socket. 'close' runs
    // onClose, which settles the stats and the listener's bookkeeping.
    this.socket.destroy();
    return { fd: copy, unread };
  }

  get config(): HcmConfig {
    return this.filter.config;
  }

  /** Bytes from the client: a 'data' event, or the engine's reader callback. */
  onBytes(d: Buffer): void {
    const sink = this.tunnelSink;
    if (sink) {
      if (!sink.write(d)) this.waitTunnelDrain(sink);
      return;
    }
    try {
      this.onData(d);
    } catch (err) {
      // A bug must cost this connection, never the process.
      log.error({ err: (err as Error).stack }, 'http connection manager failed on a connection');
      this.socket.destroy();
    }
  }

  private waitTunnelDrain(sink: net.Socket): void {
    this.socket.pause();
    sink.once('drain', () => this.socket.resume());
  }

  /**
   * Bytes from the client as `src[off, end)`, valid only during this call (the batch reader's
   * arena, reused next turn). The usual keep-alive read, a whole request head with nothing in
   * flight, is parsed where it lies (the head's bytes are copied into a shared slab by the
   * parser); anything after the head, and every other case, continues as an owned copy.
   */
  onRead(src: Buffer, off: number, end: number): void {
    if (this.tunnelSink !== null || this.closed || this.stream !== null || this.processing || (!this.sawRequest && mayBePreface(src, off, end)) || (this.buf !== null && this.off < this.buf.length) || this.clientBacklog()) {
      // In-flight request (body, pipelined bytes), a partial head, a first read that may be the
      // HTTP/2 preface (looksLikeH2 decides), a tunnel: the general path, on a copy.
      this.onBytes(copyOut(src, off, end));
      return;
    }
    this.filter.stats.downstream_cx_rx_bytes_total.value += end - off;
    this.processing = true;
    try {
      const sp = this.spare ?? this.pooledStream();
      const r = parseRequestHeadOwned(src, off, end, this.config.limits, sp !== null ? sp.takeSpareHead() : null);
      if (typeof r === 'number') {
        // Incomplete or bad: processLoop decides (timers, 400/431) over the same bytes.
        this.buf = copyOut(src, off, end);
        this.off = 0;
      } else {
        const at = off + r.headBytes;
        this.buf = at < end ? copyOut(src, at, end) : null;
        this.off = 0;
        this.clearHeadersTimer();
        this.countHttp1();
        this.startStream(r);
      }
      this.processLoop();
    } catch (err) {
      // A bug must cost this connection, never the process.
      log.error({ err: (err as Error).stack }, 'http connection manager failed on a connection');
      this.socket.destroy();
    } finally {
      this.processing = false;
    }
  }

  /** After detach(): the client's bytes go to `up` as they are, with backpressure; its end ends `up`. */
  pipeTo(up: net.Socket): void {
    if (!this.direct) {
      (this.socket as net.Socket).pipe(up);
      return;
    }
    this.tunnelSink = up;
    this.socket.once('end', () => up.end());
  }

  /** The listener's per-connection buffer limit: the most held per direction. */
  get bufferLimit(): number {
    return this.conn.bufferLimit;
  }

  private onData(chunk: Buffer): void {
    this.filter.stats.downstream_cx_rx_bytes_total.value += chunk.length;
    if (this.closed) return;
    if (this.buf === null || this.off >= this.buf.length) {
      this.buf = chunk;
      this.off = 0;
    } else {
      // Heads and body slices already handed out keep the old buffer alive; this is a new one.
      this.buf = Buffer.concat([this.buf.subarray(this.off), chunk]);
      this.off = 0;
    }
    this.process();
  }

  /** Parses and dispatches what is buffered; re-entered when a stream completes. */
  process(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      this.processLoop();
    } finally {
      this.processing = false;
    }
  }

  private processLoop(): void {
    while (!this.closed && this.buf !== null && this.off < this.buf.length) {
      const buf = this.buf;
      const s = this.stream;
      if (s === null) {
        if (!this.sawRequest && this.looksLikeH2(buf)) return;
        if (this.closed || this.clientBacklog()) return;
        const r = parseRequestHead(buf, this.off, buf.length, this.config.limits);
        if (typeof r === 'number') {
          if (r === HeadStatus.NEED_MORE) {
            this.pauseIdle();
            this.armHeadersTimer();
            return;
          }
          this.protocolError(r === HeadStatus.TOO_LARGE ? 431 : 400);
          return;
        }
        this.clearHeadersTimer();
        this.off += r.headBytes;
        this.countHttp1();
        this.startStream(r);
        continue;
      }
      if (s.requestDone) {
        // A pipelined request waits for the response before it; stop reading if too much piles up.
        if (buf.length - this.off > this.conn.bufferLimit) this.pause();
        return;
      }
      const e = this.framer.feed(buf, this.off, buf.length);
      if (e === BODY_ERROR) {
        s.onRequestBodyError();
        return;
      }
      if (e > this.off) {
        const slice = buf.subarray(this.off, e);
        this.off = e;
        s.onRequestBody(slice);
      }
      if (this.framer.done && this.stream === s && !s.requestDone) s.onRequestEnd();
    }
    if (this.buf !== null && this.off >= this.buf.length) {
      this.buf = null;
      this.off = 0;
    }
  }

  /** Counted once the connection proves to be HTTP/1 (its first head, or a bad one). */
  private countHttp1(): void {
    if (this.sawRequest) return;
    this.sawRequest = true;
    this.filter.stats.downstream_cx_http1_total.value++;
    this.filter.stats.downstream_cx_http1_active.value++;
  }

  /** True when the bytes are (the start of) the HTTP/2 preface; hands the connection to HTTP/2 if so. */
  private looksLikeH2(buf: Buffer): boolean {
    const n = Math.min(buf.length - this.off, H2_PREFACE.length);
    if (buf.compare(H2_PREFACE, 0, n, this.off, this.off + n) !== 0) return false;
    if (this.config.codec === 'HTTP1') return false; // the HTTP/1 parser answers 400
    if (n < 4) return true; // wait: "PRI " decides, no HTTP/1 method is called PRI
    // AUTO: the rest of the connection belongs to the HTTP/2 codec, including the bytes read so far.
    this.closed = true;
    this.clearIdle();
    this.clearHeadersTimer();
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    const rest = buf.subarray(this.off);
    this.buf = null;
    // node:http2 reads the socket itself: the batch reader lets go of it first (a DirectSocket's
    // fd moves on in serveH2).
    if (this.direct && !(this.socket instanceof DirectSocket)) http1BatchReader()?.release(this.socket);
    serveH2(this.filter, this.conn, this.socket, rest);
    return true;
  }

  private startStream(head: MessageHead): void {
    if (this.config.underscores !== Underscores.ALLOW && !this.underscoresOk(head)) return;
    const st = this.filter.stats;
    st.downstream_rq_total.value++;
    st.downstream_rq_http1_total.value++;
    st.downstream_rq_active.value++;
    this.pauseIdle();
    const mode = head.chunked ? BodyMode.CHUNKED : head.contentLength > 0 ? BodyMode.LENGTH : BodyMode.NONE;
    this.framer.onPayload = null;
    this.framer.reset(mode, head.contentLength > 0 ? head.contentLength : 0);
    const spare = this.spare ?? this.pooledStream();
    let s: Http1Stream;
    if (spare !== null) {
      this.spare = null;
      spare.reuse(head);
      s = spare;
    } else s = new Http1Stream(this, head);
    this.stream = s;
    const max = this.config.maxRequestsPerConnection;
    if (max > 0 && ++this.requests >= max) {
      // max_requests_per_connection: this response says `connection: close`, and the connection ends after it.
      s.forceClose = true;
      st.downstream_cx_max_requests_reached.value++;
    }
    s.start();
    if (this.stream === s && this.framer.done && !s.requestDone) s.onRequestEnd();
  }

  /** A stream is over (request read and response written). */
  onStreamDone(s: Http1Stream, keepAlive: boolean): void {
    if (this.stream !== s) return;
    this.stream = null;
    const st = this.filter.stats;
    st.downstream_rq_active.value--;
    st.downstream_rq_completed.value++;
    if (!keepAlive) {
      // A client that asked to close and sent nothing more is done sending: no wait for its FIN.
      this.closeGracefully(s.clientClosing() && (this.buf === null || this.off >= this.buf.length));
      // No next request here: the next connection's first one takes it.
      if (s.reusable() && streamPool.length < STREAM_POOL_MAX) {
        s.idle();
        streamPool.push(s);
      }
      return;
    }
    if (s.reusable()) {
      s.idle();
      this.spare = s;
    }
    this.resume();
    this.armIdle();
    // Pipelined requests may already be buffered (only then: an Immediate per request costs).
    if (!this.processing && this.buf !== null && this.off < this.buf.length) processLater(this);
  }

  /** A stream a closed connection left (streamPool), now this connection's spare; null if none. */
  private pooledStream(): Http1Stream | null {
    const s = streamPool.pop();
    if (s === undefined) return null;
    s.adopt(this);
    return (this.spare = s);
  }

  /** Writes to the client; false means its buffer is full (the caller waits for 'drain'). */
  write(b: Buffer): boolean {
    this.filter.stats.downstream_cx_tx_bytes_total.value += b.length;
    if (this.holding) this.sendHeld();
    return sendTo(this.socket, this.fd, b);
  }

  /**
   * write(encodeHead(...)). A `whole` response made inside a read batch, with nothing queued in
   * the stream, waits for the batch's end (sendHeld): only then does nothing of its exchange
   * follow it. Otherwise the bytes leave at once, without a Buffer when the kernel takes them
   * all (sendHead).
   */
  writeHead(firstLine: string, head: MessageHead, drop: Drop, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number, whole: boolean): boolean {
    if (whole && inBatch() && canSendNow(this.socket, this.fd)) {
      if (!this.holding) {
        const at = encodeHeadStagedAt(firstLine, head, drop, extra, tail, tailStart, tailEnd);
        if (at >= 0) {
          this.heldStage = stagedBuffer();
          this.heldAt = at;
          this.heldLen = stagedLength();
          this.filter.stats.downstream_cx_tx_bytes_total.value += this.heldLen;
          this.holding = true;
          heldSessions.push(this);
          return true;
        }
      }
      const b = encodeHeadStaged(firstLine, head, drop, extra, tail, tailStart, tailEnd);
      this.filter.stats.downstream_cx_tx_bytes_total.value += b.length;
      if (!this.holding) {
        this.heldOne = b;
        this.holding = true;
        heldSessions.push(this);
      } else if (this.held === null) this.held = [b];
      else this.held.push(b);
      return true;
    }
    if (this.holding) this.sendHeld();
    const n = sendHead(this.socket, this.fd, firstLine, head, drop, extra, tail, tailStart, tailEnd);
    this.filter.stats.downstream_cx_tx_bytes_total.value += n < 0 ? -n : n;
    return n > 0;
  }

  /**
   * Sends what writeHead queued, if anything (at the batch's end, or before any other write).
   * `queued` (the batch's end): a staged range is queued for the hook's one flushRanges call.
   */
  sendHeld(queued = false): void {
    if (!this.holding) return;
    const st = this.heldStage;
    const one = this.heldOne;
    const more = this.held;
    this.holding = false;
    this.heldStage = null;
    this.heldOne = null;
    this.held = null;
    if (this.socket.destroyed) return;
    // Whole responses: no upstream read waits on them, so a full socket buffer needs no answer
    // here (what the kernel leaves queues in the stream; the next exchange's writes see it).
    if (more === null) {
      if (st === null) sendStaged(this.socket, this.fd, one!);
      else if (queued) queueRange(this.socket, this.fd, st, this.heldAt, this.heldLen, false);
      else sendStagedRange(this.socket, this.fd, st, this.heldAt, this.heldLen);
      return;
    }
    const first = st !== null ? st.subarray(this.heldAt, this.heldAt + this.heldLen) : one!;
    sendTo(this.socket, this.fd, Buffer.concat([first, ...more]));
  }

  /** cork() behind whatever writeHead queued. */
  cork(): void {
    if (this.holding) this.sendHeld();
    this.socket.cork();
  }

  /**
   * Whether responses the kernel would not take are queued for the client (a write returned
   * false). Pipelined requests were answered as fast as they were read, so a client that never
   * reads had every response held in memory: one connection grew Strait by 180 MB in 10 s, each
   * small queued write costing far more than its bytes. As Envoy stops reading a connection above
   * its high watermark, the next request then waits: reading stops until the client drains the
   * queue, and the kernel's buffers hold the rest.
   */
  private clientBacklog(): boolean {
    if (this.backlogged) return true;
    if (!this.socket.writableNeedDrain) return false;
    this.backlogged = true;
    this.pause();
    const st = this.filter.stats;
    st.downstream_flow_control_paused_reading_total.value++;
    this.socket.once('drain', () => {
      this.backlogged = false;
      st.downstream_flow_control_resumed_reading_total.value++;
      this.resume();
      this.process();
    });
    return true;
  }

  pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    if (!this.paused || this.closed || this.backlogged) return;
    this.paused = false;
    this.socket.resume();
  }

  /**
   * headers_with_underscores_action, before anything sees the request (as Envoy's codec): false
   * when the request was refused (400 and close); DROP_HEADER takes the fields out of the head.
   */
  private underscoresOk(head: MessageHead): boolean {
    const us = this.filter.underscoreStats!.http1;
    if (this.config.underscores === Underscores.DROP_HEADER) {
      us.dropped.value += h1DropUnderscored(head);
      return true;
    }
    if (!h1HasUnderscore(head)) return true;
    us.rejected.value++;
    this.protocolError(400);
    return false;
  }

  /** 400 / 431 from the codec: answer and close, as Envoy does for a bad HTTP/1 stream. */
  private protocolError(status: number): void {
    this.countHttp1();
    const st = this.filter.stats;
    st.downstream_cx_protocol_error.value++;
    if (status === 431) st.downstream_rq_too_large.value++;
    st.downstream_rq_total.value++;
    statusClass(st, status);
    this.write(encodeLocalResponse(status, this.serverHeader(), status === 431 ? 'Request Header Fields Too Large' : 'Bad Request', true));
    this.closeGracefully();
  }

  serverHeader(): string {
    return this.config.serverHeaderTransformation === 'PASS_THROUGH' ? '' : this.serverLine;
  }

  /** `server: <server_name>` CRLF (made once for the filter chain). */
  get serverLine(): string {
    return this.filter.serverLine;
  }

  /**
   * The route of a request on a listener without HTTP filters. Routing reads the view while it
   * runs and keeps nothing of it (http_route_table.ts route()), and never routes another request
   * meanwhile, so the process's one view, refilled per request, spares an object, a header
   * closure and its context per connection.
   */
  route(host: string, head: MessageHead): HttpRoute | null {
    const v = routeView;
    v.host = host;
    v.path = head.target;
    v.method = head.method;
    routeViewHead = head;
    try {
      return this.config.routes.route(v);
    } finally {
      // Not kept past the lookup: a head pins its parser slab.
      routeViewHead = null;
    }
  }

  /**
   * Hands the socket over to a tunnel: stops parsing and returns the bytes read past the
   * request head (already the tunnel's). Closing the socket still ends the connection.
   */
  detach(): Buffer | null {
    this.sendHeld();
    this.closed = true;
    this.clearIdle();
    this.clearHeadersTimer();
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('end');
    const rest = this.buf ? this.buf.subarray(this.off) : null;
    this.buf = null;
    return rest;
  }

  /**
   * Drain (SIGTERM, /drain_listeners, LDS removal; hot restart for a connection that cannot
   * move), as Envoy's drain_close: the response in flight says `connection: close` and the
   * connection ends after it; an idle one ends now. Keep-alive clients reconnect elsewhere
   * instead of being cut off when the drain time runs out.
   */
  private drain(): void {
    if (this.closed) return;
    if (this.stream) this.stream.forceClose = true;
    else this.closeGracefully();
  }

  /**
   * Ends our side after pending writes; stops parsing anything else. `clientDone`: the client
   * sends nothing more (onStreamDone), so the socket closes once written, without waiting for
   * the client's FIN (DirectSocket.destroySoon; net.Socket's does the same).
   */
  closeGracefully(clientDone = false): void {
    if (this.closed) return;
    this.closed = true;
    this.clearIdle();
    this.clearHeadersTimer();
    this.clientDone = clientDone;
    if (this.holding) {
      // A response held in a read batch (connection per request: every one) leaves in the batch
      // end's one send call (sendHeld's hook), which then ends the socket.
      closingAfterHeld.push(this);
      return;
    }
    this.endSocket();
  }

  /** closeGracefully()'s argument, for endSocket() when it runs at the batch's end. */
  private clientDone = false;

  /** The rest of closeGracefully() once nothing is held: end the socket, wait for the client's FIN. */
  endSocket(): void {
    if (this.socket.destroyed) return;
    this.sendHeld();
    if (this.clientDone) this.socket.destroySoon();
    else this.socket.end();
    // A client that never closes its side (or never reads what is queued) must not hold the
    // connection forever (onClose clears it). The idle deadline's links serve: it was cleared
    // above and is never armed again.
    if (!this.socket.destroyed) {
      this.lingering = true;
      armDeadline(this, LINGER_MS);
    }
  }

  /** Closing: the deadline armed is the wait for the client's FIN, not the idle timeout. */
  private lingering = false;

  onSocketRead(buf: Buffer, off: number, end: number): void {
    this.onRead(buf, off, end);
  }

  onSocketEnd(): void {
    this.onEnd();
  }

  onSocketClose(): void {
    this.onClose();
  }

  private onEnd(): void {
    // The client half-closed: finish the request in flight (if it was complete), then close.
    if (this.stream && !this.stream.requestDone) {
      this.stream.onDownstreamReset();
      this.socket.destroy();
      return;
    }
    if (!this.stream) this.closeGracefully();
    else this.stream.forceClose = true;
  }

  private onClose(): void {
    this.closed = true;
    this.clearIdle();
    this.clearHeadersTimer();
    // The spare stream of a keep-alive connection serves the next connection's first request.
    const sp = this.spare;
    this.spare = null;
    if (sp !== null && streamPool.length < STREAM_POOL_MAX) {
      streamPool.push(sp);
    }
    const s = this.stream;
    if (s) {
      this.stream = null;
      s.onDownstreamReset();
      this.filter.stats.downstream_rq_active.value--;
    }
    const st = this.filter.stats;
    st.downstream_cx_active.value--;
    if (this.sawRequest) st.downstream_cx_http1_active.value--;
    st.downstream_cx_destroy.value++;
    this.conn.done();
  }

  private armIdle(): void {
    const ms = this.config.idleTimeoutMs;
    if (ms <= 0 || this.closed) return;
    armDeadline(this, ms);
  }

  /** Idle for the whole idle_timeout, or the client kept its side open past LINGER_MS. */
  onDeadline(): void {
    if (this.lingering) {
      this.socket.destroy();
      return;
    }
    if (this.closed) return;
    this.filter.stats.downstream_cx_idle_timeout.value++;
    this.closeGracefully();
  }

  /** A request started: no idle timeout until the next armIdle. */
  private pauseIdle(): void {
    if (this.dlList !== null && !this.lingering) disarmDeadline(this);
  }

  private clearIdle(): void {
    if (this.dlList !== null) disarmDeadline(this);
  }

  /**
   * Starts `s`'s route timeout: the stream waits in its length's list (deadlines.ts), as the
   * connection does while idle, so a connection per request makes no Timeout for it.
   */
  armRouteTimer(s: Http1Stream, ms: number): void {
    armDeadline(s, ms);
  }

  /** `s` no longer needs its route timeout. */
  clearRouteTimer(s: Http1Stream): void {
    if (s.dlList !== null) disarmDeadline(s);
  }

  private armHeadersTimer(): void {
    const ms = this.config.requestHeadersTimeoutMs;
    if (ms <= 0 || this.headersTimer) return;
    this.headersTimer = setTimeout(() => {
      this.headersTimer = null;
      // Slowloris: the head started but never finished.
      const st = this.filter.stats;
      st.downstream_rq_header_timeout.value++;
      st.downstream_rq_total.value++;
      statusClass(st, 408);
      this.write(encodeLocalResponse(408, this.serverHeader(), 'request headers timeout', true));
      this.closeGracefully();
    }, ms);
    this.headersTimer.unref();
  }

  private clearHeadersTimer(): void {
    if (this.headersTimer) clearTimeout(this.headersTimer);
    this.headersTimer = null;
  }
}


/** How a failed try counts for outlier detection (the proxy's own failures, Envoy's kinds). */
export function outlierOfFailure(kind: string): OutlierResult | null {
  if (kind === 'connect_failure') return OutlierResult.CONNECT_FAILED;
  if (kind === 'per_try_timeout') return OutlierResult.TIMEOUT;
  if (kind === 'reset' || kind === 'refused_stream' || kind === 'protocol_error') return OutlierResult.GATEWAY_FAILURE;
  return null; // overflow says nothing about the host
}

type TryFailure = Exclude<TryFailureKind, 'overflow'> | 'per_try_timeout' | 'hedge';

/** What an idle Http1Stream points at instead of its last request (a head pins its parser slab). */
const NO_HEAD: MessageHead = Object.freeze({
  buf: Buffer.alloc(0),
  start: 0,
  headBytes: 0,
  versionMinor: 1,
  method: '',
  target: '',
  status: 0,
  fieldSlots: new Int32Array(0),
  fieldsAt: 0,
  fieldsEnd: 0,
  contentLength: -1,
  chunked: false,
  connectionClose: false,
  connectionKeepAlive: false,
  upgrade: false,
  expectContinue: false,
  host: '',
});

function firstOf(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A field's value in header lines ("name: value\r\n"...), for a local reply's observer. */
function fieldOfLines(lines: string, name: string): string | undefined {
  const m = new RegExp(`(?:^|\n)${name}:[ \t]*([^\r\n]*)`, 'i').exec(lines);
  return m ? m[1] : undefined;
}

/**
 * One request/response exchange: routing, then tries against upstream hosts (with retries and
 * timeouts) until a response is committed downstream. The request head is re-encoded once;
 * bodies pass through as the bytes that arrived.
 *
 * A stream that finished the usual way, leaving nothing behind that still refers to it
 * (reusable()), serves its connection's next request (idle(), then reuse()): the object and
 * its response framer were ~600 of the ~2,300 bytes a keep-alive exchange allocated. reuse()
 * (with the idle() it calls) sets every field below to its initial value (respHead aside): a
 * field added here must be added there.
 */
class Http1Stream implements Http1ConnUser, TryEvents, HedgeOwner, TriedHosts, DeadlineOwner {
  requestDone = false;
  /**
   * The route timeout's links (deadlines.ts); armed from the route's start to the stream's end.
   * reuse() leaves them: only a reusable() stream is reused, and that one is not armed.
   */
  dlPrev: DeadlineOwner | null = null;
  dlNext: DeadlineOwner | null = null;
  dlDue = 0;
  dlList: DeadlineList | null = null;
  private responseStarted = false;
  private responseDone = false;
  /** Close the downstream connection after this exchange. */
  forceClose = false;
  private finished = false;
  /** clock.ts now() at the request head and at the current try's start (the _rq_time histograms). */
  private t0 = clockNow();
  private tryT0 = 0;
  /** The status sent downstream; 0 until one is. */
  private status = 0;
  /** Spans of this request; null without tracing. */
  private trace: RequestTrace | null = null;
  /** For the access log (kept only when there is one): wall-clock start, Envoy's response flags, body bytes. */
  private startMs: number;
  private flags = '';
  private rxBytes = 0;
  private txBytes = 0;

  private route: HttpRoute | null = null;
  private action: ForwardAction | null = null;
  /** The route's hash and subset for every try, and a generated hash cookie (hash_policy.ts). */
  lb: HttpLbContext | null = null;
  private cluster: Cluster | null = null;
  private pools: Http1ClusterPools | null = null;
  private cstats: ClusterHttpStats | null = null;
  /**
   * The encoded upstream head: upSlab[upAt, upAt + upLen), mostly a range of the encoder's kept
   * slab (encodeHeadSendAt); `upstreamHead` is its Buffer, made only when something needs one.
   */
  private upSlab: Buffer | null = null;
  private upAt = 0;
  private upLen = 0;
  private upstreamHead: Buffer | null = null;
  /**
   * The upstream head is due but not encoded yet: the usual HTTP/1 exchange encodes it once its
   * connection is at hand, and sends it in the same addon call (attach); whatever needs it
   * earlier (the request id, a mirror) encodes it then (upstreamHeadNow).
   */
  private headPending = false;
  private rid: string | null = null;
  /** The target the route rewrote the request's to (the upstream's), null without a rewrite. */
  private upPath: string | null = null;
  /** Where the x-request-id we generated sits in upstreamHead: its string is made only if asked for. */
  private ridAt = -1;

  /** Body bytes kept for the current try (not yet written) and for retries (all, until overflow). */
  private body: Buffer[] = [];
  private bodyBytes = 0;
  private bodyOverflow = false;

  private retries = 0;
  /** Hosts this request's tries went to, for the previous_hosts retry predicate (retry_hosts.ts). */
  triedFirst: Host | null = null;
  triedMore: Host[] | null = null;
  private host: Host | null = null;
  private conn: Http1UpstreamConn | null = null;
  private connReused = false;
  private gotUpstreamBytes = false;
  private transparentRetryUsed = false;
  private cancelAcquire: (() => void) | null = null;
  private perTryTimer: NodeJS.Timeout | null = null;
  private backoffTimer: NodeJS.Timeout | null = null;
  /** max_stream_duration's timer, when one applies. */
  private durationTimer: NodeJS.Timeout | null = null;
  private tryActive = false;
  private waitingUpstreamDrain = false;
  private waitingDownstreamDrain = false;

  private respBuf: Buffer | null = null;
  private resp: MessageHead | null = null;
  private readonly respFramer = new BodyFramer();
  private respExtraBytes = false;
  /** The downstream socket is corked until the current upstream read is handled. */
  private downCorked = false;

  /** An allowed Upgrade (WebSocket): on 101 the two connections become a byte tunnel. */
  private upgrade = false;
  /** The request came in absolute-form: `head.host` is the target's authority, not the Host field. */
  private hostFromTarget = false;
  /** HTTP filters that acted on this request, told when it is over. */
  private notify: FilterDoneHook[] | null = null;
  /** Response header edits the HTTP filters decided (HttpFilterRequest.responseHeaders); null: none, the usual case. */
  private respEdit: HeaderMutation | null = null;
  /** The filters' dynamic metadata (HttpFilterRequest.dynamicMetadata), for the access log; null: none. */
  private meta: Map<string, Map<string, MetadataValue>> | null = null;
  /**
   * The filters' response body transform (HttpFilterRequest.responseBody, the compressor); null:
   * none, the usual case. Set, the request goes through an UpstreamTry whatever the upstream
   * speaks (H1Try for HTTP/1.1), so the response takes the generic object-and-chunks path.
   */
  private respBody: ResponseBodyFilter | null = null;
  /**
   * A filter watching the exchange (HttpFilterRequest.observer, grpc_stats); null: none, the usual
   * case. Set, the request goes through an UpstreamTry as with respBody, where the observer is told.
   */
  private obs: ExchangeObserver | null = null;
  private delayed = false;
  private delayTimer: NodeJS.Timeout | null = null;
  /** stream_idle_timeout / request_timeout watch (stream_timeouts.ts); null when neither is set. */
  private timed: TimedStream | null = null;

  /** The request was copied to the route's mirror clusters. */
  private mirrored = false;

  /** The cluster speaks HTTP/2: tries are H2Try streams and the body travels as payload. */
  private h2Mode = false;
  private h2Headers: HeaderObject | null = null;
  private h2: UpstreamTry | null = null;
  /** An HTTP/2 response without Content-Length goes to an HTTP/1.1 client chunked. */
  private rechunk = false;
  /** The buffer filter holds this request until its body is complete: at most `holdMax` bytes, then `holdThen`. */
  private holdMax = 0;
  private holdThen: (() => void) | null = null;
  /** Payload bytes of a held chunked body (the limit counts payload, not chunk framing). */
  private holdPayload = 0;
  /** Past holdMax, holdThen runs with what came (a filter's allowPartial) instead of a 413. */
  private holdPartial = false;
  /** A chunked body's payload, kept for a filter that asked for the body (the raw slices keep the framing). */
  private filterPayload: Buffer[] | null = null;
  /** On hedging routes: the HTTP/2 try's relay, and tries left running past their per-try timeout. */
  private relay: TryRelay | null = null;
  private hedged: ParkedTry[] | null = null;
  /** A path left something that may call back into this object later: it is never reused. */
  private pinned = false;
  /**
   * The response head this stream's last owned parse returned, refilled by the next one
   * (parseResponseHeadOwned's `into`) when nothing refers to it: an owned parse only runs while
   * `resp` is null, and an exchange that ends leaves nothing behind (reusable()). Not reset by
   * reuse(): it is the point of keeping the object.
   */
  private respHead: MessageHead | null = null;

  constructor(
    private session: Http1Session,
    public head: MessageHead,
  ) {
    this.startMs = session.filter.accessLog ? Date.now() : 0;
  }

  /** Out of streamPool, as `session`'s spare: reuse() starts its next exchange. */
  adopt(session: Http1Session): void {
    this.session = session;
  }

  /** The whole request is read and it asked for the connection to close after it. */
  clientClosing(): boolean {
    return this.requestDone && !wantsKeepAlive(this.head);
  }

  /**
   * Whether nothing outside this finished stream refers to it any more: no upstream connection
   * or acquire in flight, no timer, no HTTP/2 try, hedge or tunnel, no filter hooks, and none of
   * the paths that leave a listener or callback behind (`pinned`: drain waits, filters, retries,
   * buffering, per-try timeouts).
   */
  reusable(): boolean {
    return (
      this.finished &&
      !this.pinned &&
      this.conn === null &&
      this.cancelAcquire === null &&
      this.perTryTimer === null &&
      this.dlList === null &&
      this.backoffTimer === null &&
      this.delayTimer === null &&
      this.h2 === null &&
      !this.h2Mode &&
      this.relay === null &&
      this.hedged === null &&
      !this.upgrade &&
      this.notify === null
    );
  }

  /**
   * The last request's head, for the connection's next owned parse to refill (~250 bytes a
   * request, half of what a keep-alive exchange allocated): only a reusable() stream is parked,
   * and nothing of a finished exchange that left no hook, timer or try behind reads its head.
   */
  private spareHead: MessageHead | null = null;

  takeSpareHead(): MessageHead | null {
    const h = this.spareHead;
    this.spareHead = null;
    return h;
  }

  /** Between requests: lets go of what the last one held (its heads pin their parser slabs). */
  idle(): void {
    const h = this.head;
    if (h !== NO_HEAD) {
      (h as { buf: Buffer }).buf = NO_HEAD.buf;
      this.spareHead = h;
    }
    this.head = NO_HEAD;
    // The head kept for refilling stays, its bytes do not.
    if (this.respHead !== null) (this.respHead as { buf: Buffer }).buf = NO_HEAD.buf;
    this.resp = null;
    this.respBuf = null;
    this.upstreamHead = null;
    this.upSlab = null;
    this.trace = null;
    this.route = null;
    this.action = null;
    this.lb = null;
    this.cluster = null;
    this.pools = null;
    this.cstats = null;
    this.rid = null;
    this.host = null;
    this.triedFirst = null;
    this.triedMore = null;
    this.h2Headers = null;
    this.holdThen = null;
    this.bodyBytes = 0;
    // A mirror may hold the array: a new one rather than emptying it.
    if (this.body.length !== 0 || this.mirrored) this.body = [];
  }

  /**
   * Starts the next exchange on a parked stream: every field as the constructor leaves it (idle()
   * clears the references, again here, which costs nothing next to missing one; the rest below).
   */
  reuse(head: MessageHead): void {
    this.idle();
    this.head = head;
    this.requestDone = false;
    this.responseStarted = false;
    this.responseDone = false;
    this.forceClose = false;
    this.finished = false;
    this.t0 = clockNow();
    this.tryT0 = 0;
    this.status = 0;
    this.startMs = this.session.filter.accessLog ? Date.now() : 0;
    this.flags = '';
    this.rxBytes = 0;
    this.txBytes = 0;
    this.headPending = false;
    this.ridAt = -1;
    this.upPath = null;
    this.bodyOverflow = false;
    this.retries = 0;
    this.conn = null;
    this.connReused = false;
    this.gotUpstreamBytes = false;
    this.transparentRetryUsed = false;
    this.cancelAcquire = null;
    this.perTryTimer = null;
    this.backoffTimer = null;
    this.tryActive = false;
    this.waitingUpstreamDrain = false;
    this.waitingDownstreamDrain = false;
    this.respFramer.reset(BodyMode.NONE);
    this.respFramer.onPayload = null;
    this.respExtraBytes = false;
    this.downCorked = false;
    this.upgrade = false;
    this.hostFromTarget = false;
    this.notify = null;
    this.respEdit = null;
    this.meta = null;
    this.respBody = null;
    this.obs = null;
    this.delayed = false;
    this.delayTimer = null;
    this.mirrored = false;
    this.h2Mode = false;
    this.h2 = null;
    this.rechunk = false;
    this.holdMax = 0;
    this.holdPayload = 0;
    this.holdPartial = false;
    this.filterPayload = null;
    this.relay = null;
    this.hedged = null;
    this.pinned = false;
  }

  /** Adds one of Envoy's short response flags (UF, UT, NR...) for %RESPONSE_FLAGS%. */
  private flag(f: string): void {
    if (!this.session.filter.accessLog && this.cfg.localReply === null) return;
    this.flags = this.flags ? `${this.flags},${f}` : f;
  }

  /** Writes the access log line of this exchange (only called when there is a log). */
  private logAccess(): void {
    this.session.filter.accessLog!.log(this.entry());
  }

  /** What the access log and local_reply_config's filters see of this exchange. */
  private entry(): AccessLogEntry {
    const head = this.head;
    const conn = this.session.downstream;
    const e = newEntry(this.startMs);
    e.durationMs = Date.now() - this.startMs;
    e.bytesReceived = this.rxBytes;
    e.bytesSent = this.txBytes;
    e.downstreamRemote = conn.remote;
    e.downstreamLocal = conn.local;
    e.upstreamCluster = this.cluster?.name ?? null;
    e.upstreamHost = this.host?.label ?? null;
    e.responseFlags = this.flags;
    e.responseCode = this.status;
    e.protocol = head.versionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1';
    e.tls = conn.tls ?? null;
    const rid = this.requestId;
    const up = this.upPath;
    e.requestHeader = (n) => {
      if (n === ':method') return head.method;
      if (n === ':path') return up ?? head.target;
      if (up !== null && n === ORIGINAL_PATH) return head.target;
      if (n === ':authority') return head.host;
      const v = getHeader(head, n);
      return v === undefined && n === 'x-request-id' && rid ? rid : v;
    };
    const resp = this.resp;
    e.responseHeader = resp ? (n) => getHeader(resp, n) : null;
    e.dynamicMetadata = this.meta;
    return e;
  }

  /** The request's x-request-id (received or generated), null without one. */
  private get requestId(): string | null {
    if (this.headPending) this.upstreamHeadNow();
    if (this.rid === null && this.ridAt >= 0) this.rid = this.upSlab!.toString('latin1', this.upAt + this.ridAt, this.upAt + this.ridAt + UUID_LENGTH);
    return this.rid;
  }

  private get cfg(): HcmConfig {
    return this.session.config;
  }

  private get stats(): HcmStats {
    return this.session.filter.stats;
  }

  /*
   * start, act, startTry, encodeUpstreamHead, onResponseHead and sendResponseHead run once per
   * exchange and create no closure on the usual path: a closure anywhere in a function (an arrow
   * reading `this` included) makes V8 allocate that function's context on every call, reached or
   * not. Closures of the rarer paths live in the small methods those paths call.
   */
  start(): void {
    const head = this.head;
    const to = this.session.filter.streamTimeouts;
    if (to !== null) this.timed = to.watch(this);
    // Before the trace starts, so that it records the path and authority the request is routed by.
    let targetOk = head.target[0] === '/' || (head.target === '*' && head.method === 'OPTIONS') || this.toOriginForm(head);
    // normalize_path: filters, routing, the trace and the upstream all see the canonical path.
    let redirect = false;
    if (targetOk && this.cfg.pathWork && head.target[0] === '/') {
      targetOk = prepareTarget(head, this.cfg);
      // gRPC clients cannot follow a redirect: theirs is refused, as Envoy does.
      if (targetOk && pathRedirect) {
        if ((getHeader(head, 'content-type') ?? '').startsWith('application/grpc')) targetOk = false;
        else redirect = true;
      }
    }
    if (this.session.filter.tracer !== null) this.startTrace();
    if (head.versionMinor === 0 && !this.cfg.acceptHttp10) {
      // Envoy refuses HTTP/1.0 unless accept_http_10 is set.
      this.forceClose = true;
      this.localReply(426, '', '');
      return;
    }
    if (!targetOk) {
      // Authority-form (CONNECT) is not supported; other targets are malformed.
      this.forceClose = true;
      this.localReply(head.method === 'CONNECT' ? 403 : 400, '', '');
      return;
    }
    if (redirect) {
      // UNESCAPE_AND_REDIRECT: the client asks again with the unescaped path (Envoy's 307).
      this.localReply(307, `location: ${head.target}\r\n`, '');
      return;
    }
    if (head.upgrade) {
      if (!this.cfg.upgrades.has((getHeader(head, 'upgrade') ?? '').toLowerCase())) {
        // Not enabled by upgrade_configs: Envoy answers a refused upgrade with 403.
        this.localReply(403, '', '');
        return;
      }
      this.upgrade = true;
    }
    let host = head.host;
    if (this.cfg.stripAnyHostPort) host = stripHostPort(host, -1);
    else if (this.cfg.stripMatchingHostPort) host = stripHostPort(host, this.session.downstream.local.port);
    if (host !== head.host) {
      // The upstream gets the stripped Host too, as Envoy rewrites the header itself.
      (head as { host: string }).host = host;
      this.hostFromTarget = true;
    }
    // Without HTTP filters (just the router) there is nothing to build the filter request for,
    // and routing keeps nothing of the view: the connection's own serves every request.
    if (this.session.filter.httpFilters === null) {
      const route = this.session.route(host, head);
      if (route !== null && route.action.kind === 'forward' && (this.cfg.maxStreamDurationMs > 0 || route.action.limitsStream)) this.armMaxDuration(route.action);
      this.act(route);
    } else this.startFiltered(host);
  }

  /**
   * An absolute-form target (allow_absolute_url) rewritten in place to origin-form, its authority
   * taking the place of Host for routing and for the upstream (RFC 9112 §3.2.2); false when the
   * target is not one.
   */
  private toOriginForm(head: MessageHead): boolean {
    const o = this.cfg.allowAbsoluteUrl && head.method !== 'CONNECT' ? originFormOf(head.target) : null;
    if (o === null) return false;
    const h = head as { target: string; host: string };
    h.target = o.path;
    h.host = o.authority;
    this.hostFromTarget = true;
    return true;
  }

  private startTrace(): void {
    const head = this.head;
    this.trace = this.session.filter.tracer!.start(head.method, head.target, head.host, (n) => getHeader(head, n), this.session.downstream);
  }

  /** start() on a listener with HTTP filters: they get a view of their own (a filter may keep it). */
  private startFiltered(host: string): void {
    this.pinned = true; // filters may call back (a queued permit, a fault delay)
    const head = this.head;
    const view: HttpRequestView = { host, path: head.target, method: head.method, header: (n) => getHeader(head, n) };
    const route = this.cfg.routes.route(view);
    if (route !== null && route.action.kind === 'forward' && (this.cfg.maxStreamDurationMs > 0 || route.action.limitsStream)) this.armMaxDuration(route.action);
    const req: HttpFilterRequest = {
      method: head.method,
      path: head.target,
      header: view.header,
      grpc: (getHeader(head, 'content-type') ?? '').startsWith('application/grpc'),
      downstream: this.session.downstream,
      routePriority: route?.action.kind === 'forward' ? route.action.priority : 0,
      perRoute: route?.perFilter ?? null,
      headers: () => headerList(head),
      protocol: head.versionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1',
    };
    const v = this.session.filter.runFilters(req);
    if (req.observer) this.obs = req.observer;
    if (v) {
      this.notify = v.notify;
      // Header edits a filter decided (ext_authz) go on the upstream request with the route's own.
      // Response header edits (cors, ext_authz) go on whatever response follows, local replies too.
      const routed = () => {
        this.respEdit = req.responseHeaders ?? null;
        this.respBody = req.responseBody ?? null;
        this.meta = req.dynamicMetadata ?? null;
        if (req.path !== head.target) (head as { target: string }).target = req.path;
        // A filter after a held one may have set it late; the body held meanwhile is told in prepareH2.
        this.obs = req.observer ?? null;
        this.act(route && withFilterHeaders(route, req));
      };
      const replied = (r: FilterReply) => {
        this.respEdit = req.responseHeaders ?? null;
        this.meta = req.dynamicMetadata ?? null;
        if (this.obs !== null) {
          const c = this.session.filter.routeCluster(route, view.header);
          if (c) this.obs.routed(c);
        }
        this.filterReply(r);
      };
      const go = () => (v.reply ? replied(v.reply) : routed());
      if (v.wait) {
        // A filter holds the request (a queued rate-limit permit, an authorization check): the body is held meanwhile.
        this.delayed = true;
        const ask = (): void => {
          this.delayed = true;
          v.wait!((reply) => {
            if (this.finished) return;
            this.delayed = false;
            if (reply) replied(reply);
            else routed();
          });
        };
        const nb = v.needBody;
        if (nb && !this.requestDone) {
          this.holdForFilter(nb, () => {
            req.body = this.heldPayload(nb.maxBytes);
            ask();
          });
          return;
        }
        if (nb) req.body = this.heldPayload(nb.maxBytes);
        ask();
        return;
      }
      if (v.delayMs > 0) {
        // Fault delay: the body keeps arriving and is held until the request goes on.
        this.delayed = true;
        this.delayTimer = setTimeout(() => {
          this.delayTimer = null;
          this.delayed = false;
          go();
        }, v.delayMs);
        return;
      }
      go();
      return;
    }
    if (req.responseHeaders) this.respEdit = req.responseHeaders;
    if (req.responseBody) this.respBody = req.responseBody;
    if (req.dynamicMetadata) this.meta = req.dynamicMetadata;
    // A filter that let the request through may still edit it (the compressor's remove_accept_encoding_header).
    if (req.path !== head.target) (head as { target: string }).target = req.path;
    this.act(route && req.upstreamHeaders ? withFilterHeaders(route, req) : route);
  }

  private filterReply(r: FilterReply): void {
    if (r.flag) this.flag(r.flag);
    // A filter's own content-type (an authorization service's denial) replaces the default one.
    let h = r.headers?.some(([k]) => k === 'content-type') ? '' : 'content-type: text/plain\r\n';
    for (const [k, val] of r.headers ?? []) h += `${k}: ${val}\r\n`;
    if ((getHeader(this.head, 'content-type') ?? '').startsWith('application/grpc')) {
      // A gRPC client reads grpc-status, never the HTTP status.
      const code = r.grpcStatus ?? grpcStatusOfHttp(r.status, true);
      this.localReply(200, `content-type: application/grpc\r\ngrpc-status: ${code}\r\ngrpc-message: ${encodeURIComponent(r.body)}\r\n`, '');
      return;
    }
    this.localReply(r.status, h, r.body);
  }

  private act(route: HttpRoute | null): void {
    const head = this.head;
    if (!route) {
      this.stats.no_route.value++;
      this.flag('NR');
      this.localReply(404, '', '');
      return;
    }
    this.route = route;
    const a = route.action;
    if (a.kind === 'direct') {
      this.stats.rq_direct_response.value++;
      this.localReply(a.status, a.body.length ? 'content-type: text/plain\r\n' : '', a.body, route.responseHeaders);
      return;
    }
    if (a.kind === 'redirect') {
      this.stats.rq_redirect.value++;
      this.localReply(a.status, `location: ${this.location(a, route)}\r\n`, '', route.responseHeaders);
      return;
    }
    // The buffer filter's limit, unless the route's BufferPerRoute disables (0) or replaces it.
    const fh = this.session.filter.holdRequestBytes;
    const hold = fh > 0 && route.bufferMaxBytes != null ? route.bufferMaxBytes : fh;
    if (hold > 0 && !this.requestDone && this.holdMax === 0 && !this.upgrade) {
      this.holdBody(route, hold);
      return;
    }
    this.action = a;
    const name = a.lb || a.clusterHeader ? this.pickLbCluster(a) : a.clusters!.pick();
    const cluster = name ? this.session.filter.rt.clusters.get(name) : undefined;
    if (!cluster) {
      this.stats.no_cluster.value++;
      this.flag('NC');
      this.routerReply(a.clusterNotFoundStatus, '', '');
      return;
    }
    this.cluster = cluster;
    if (this.obs !== null) this.obs.routed(cluster);
    this.pools = this.session.filter.poolsFor(cluster, a.priority);
    this.cstats = this.session.filter.statsFor(cluster);
    this.stats.rq_total.value++;
    // An HTTP/2 upstream, or a response body a filter transforms or watches, goes through an UpstreamTry.
    const viaTry = upstreamProtocolOf(cluster) === 'http2' || ((this.respBody !== null || this.obs !== null) && !this.upgrade);
    // A traced request's head carries the trace's headers, made now as before.
    if (viaTry || this.trace !== null) this.encodeUpstreamHead(a, route, -1);
    else this.headPending = true;
    if (viaTry) this.prepareH2();
    if (head.expectContinue && !this.cfg.proxy100Continue && this.session.framer.mode !== BodyMode.NONE && this.holdMax === 0) {
      // Answer the client's Expect ourselves (Envoy's default) and never forward it.
      this.session.write(CONTINUE_100);
    }
    // The gRPC headers matter only on routes with grpc_timeout settings: no header scans otherwise.
    const timeoutMs = a.grpcTimeout !== null && !a.grpcTimeout.headerOnly ? effectiveTimeoutMs(a, (getHeader(head, 'content-type') ?? '').startsWith('application/grpc'), getHeader(head, 'grpc-timeout')) : a.timeoutMs;
    if (timeoutMs > 0) this.session.armRouteTimer(this, timeoutMs);
    this.startTry();
    // A request that completed while a fault delay held it is mirrored now.
    this.maybeMirror();
  }

  /** envoy.filters.http.buffer: the whole body first (413 past the limit), then the route. */
  private holdBody(route: HttpRoute, hold: number): void {
    this.pinned = true;
    const head = this.head;
    this.holdMax = hold;
    if (head.contentLength > hold) {
      this.payloadTooLarge();
      return;
    }
    this.holdThen = () => this.act(route);
    this.delayed = true;
    if (head.chunked) this.session.framer.onPayload = (_b, st, e) => (this.holdPayload += e - st);
    if (head.expectContinue && !this.cfg.proxy100Continue && this.session.framer.mode !== BodyMode.NONE) this.session.write(CONTINUE_100);
  }

  /**
   * A filter decides on the body (ext_authz with_request_body): the request is held until its
   * body is complete, or has maxBytes of payload when allowPartial (413 past it otherwise), as
   * for the buffer filter; then `then`.
   */
  private holdForFilter(nb: BodyNeed, then: () => void): void {
    this.pinned = true;
    const head = this.head;
    this.holdMax = nb.maxBytes;
    this.holdPartial = nb.allowPartial;
    if (!nb.allowPartial && head.contentLength > nb.maxBytes) {
      this.payloadTooLarge();
      return;
    }
    this.holdThen = then;
    this.delayed = true;
    if (head.chunked) {
      const kept: Buffer[] = (this.filterPayload = []);
      // Copied: the framer hands out views of a read buffer that is reused.
      this.session.framer.onPayload = (b, st, e) => {
        this.holdPayload += e - st;
        kept.push(Buffer.from(b.subarray(st, e)));
      };
    }
    if (head.expectContinue && !this.cfg.proxy100Continue && this.session.framer.mode !== BodyMode.NONE) this.session.write(CONTINUE_100);
  }

  /** The request's payload held so far (chunk framing removed), at most `max` bytes of it. */
  private heldPayload(max: number): Buffer {
    const parts = this.filterPayload ?? this.body;
    const b = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    return b.length > max ? b.subarray(0, max) : b;
  }

  /** The cluster of a route with a hash policy or a cluster_header. */
  private pickLbCluster(a: ForwardAction): string {
    const head = this.head;
    return pickRouteCluster(a, this, (n) => getHeader(head, n), head.target, this.session.remoteIp, this.session.downstream.remote.port);
  }

  private location(a: RedirectAction, route: HttpRoute): string {
    const orig = this.head.host;
    let hostName = orig;
    let port = '';
    const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(orig);
    if (m) {
      hostName = m[1]!;
      port = m[2] ?? '';
    }
    const scheme = a.scheme ?? 'http';
    if (a.host) {
      const hm = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(a.host);
      hostName = hm ? hm[1]! : a.host;
      if (hm?.[2]) port = hm[2];
    }
    if (a.port) port = String(a.port);
    else if (a.scheme && a.scheme !== 'http' && (port === '80' || port === '443')) port = '';
    let path = a.path ?? rewritePath(this.head.target, route.matchedPrefix, a.prefixRewrite, a.regexRewrite);
    if (a.path && !a.path.includes('?')) {
      const q = this.head.target.indexOf('?');
      if (q !== -1) path += this.head.target.slice(q);
    }
    if (a.stripQuery) path = pathOnly(path);
    return `${scheme}://${hostName}${port ? `:${port}` : ''}${path}`;
  }

  /** The upstream head, encoded now if it was left for attach. */
  private upstreamHeadNow(): Buffer {
    if (this.headPending) this.encodeUpstreamHead(this.action!, this.route!, -1);
    const at = this.upAt;
    return (this.upstreamHead ??= this.upSlab!.subarray(at, at + this.upLen));
  }

  /**
   * Encodes the upstream head into upSlab/upAt/upLen; `fd` >= 0: also sends it there in the same
   * addon call (see encodeHeadSend).
   */
  private encodeUpstreamHead(a: ForwardAction, route: HttpRoute, fd: number): void {
    this.headPending = false;
    const head = this.head;
    const cfg = this.cfg;
    const target = rewritePath(head.target, route.matchedPrefix, a.prefixRewrite, a.regexRewrite);
    const dropNames = reqDropNames;
    // A store to an array's length is a runtime call (~400 instructions) even when it changes nothing.
    if (dropNames.length !== 0) dropNames.length = 0;
    let extra = '';
    // A route with a rewrite sends the path it had as x-envoy-original-path (Envoy's router), and
    // the access log's :path becomes the rewritten one.
    if (a.prefixRewrite !== null || a.regexRewrite !== null) {
      this.upPath = target;
      dropNames.push(ORIGINAL_PATH);
      extra += `${ORIGINAL_PATH}: ${head.target}\r\n`;
    }
    if (a.hostRewrite) extra += `host: ${a.hostRewrite}\r\n`;
    else if (this.hostFromTarget) extra += `host: ${head.host}\r\n`;
    else if (!head.host) extra += 'host: \r\n'; // HTTP/1.0 without Host: HTTP/1.1 upstreams require one
    // The parser's word on which of the names below the head carries (-1: not its last head,
    // then each is looked for): three scans of the fields fewer a request.
    const has = flagsInTables(head);
    if (cfg.useRemoteAddress && !cfg.skipXffAppend && this.session.remoteIp) {
      const prior = has >= 0 && (has & RequestHas.FORWARDED_FOR) === 0 ? NO_VALUES : getAll(head, 'x-forwarded-for');
      // Only a head that has one needs the name dropped (and a drop function instead of a mask).
      if (prior.length !== 0) dropNames.push('x-forwarded-for');
      extra += `x-forwarded-for: ${prior.length ? `${prior.join(',')},` : ''}${this.session.remoteIp}\r\n`;
    }
    const xa = xfccAction(cfg.xfcc, this.session.downstream.tls);
    if (xa !== XfccAction.KEEP) {
      // A name compare per field (lengths first): the string is built only when a client sent one.
      const sent = (has >= 0 ? (has & RequestHas.CLIENT_CERT) !== 0 : hasHeader(head, XFCC)) ? getAll(head, XFCC).join(', ') : undefined;
      if (sent !== undefined) dropNames.push(XFCC);
      if (xa !== XfccAction.DROP) extra += `${XFCC}: ${xfccValue(xa, xfccElement(cfg.xfcc, this.session.downstream.tls!), sent)}\r\n`;
    }
    const addXfp = has >= 0 ? (has & RequestHas.FORWARDED_PROTO) === 0 : !hasHeader(head, 'x-forwarded-proto');
    const rid = has >= 0 && (has & RequestHas.REQUEST_ID) === 0 ? undefined : getHeader(head, 'x-request-id');
    let ridOff = -1;
    this.rid = null;
    this.ridAt = -1;
    if (rid) this.rid = rid;
    if (!rid && cfg.generateRequestId && this.trace) {
      // The tracer takes the id as a string now.
      this.rid = crypto.randomUUID();
      if (addXfp) extra += XFP_LINE;
      extra += `x-request-id: ${this.rid}\r\n`;
    } else {
      // Without a tracer the id is a placeholder line whose value is overwritten with random
      // bytes once the head exists.
      const addRid = !rid && cfg.generateRequestId;
      if (addRid) ridOff = extra.length + (addXfp ? XFP_LINE.length : 0) + REQUEST_ID_VALUE_AT;
      // A constant string (flat) rather than a new rope when nothing came before it.
      const lines = ADDED_LINES[(addXfp ? 1 : 0) | (addRid ? 2 : 0)]!;
      extra = extra === '' ? lines : extra + lines;
    }
    if (this.trace) extra += this.trace.upstreamHeaderText(this.cluster!.name, this.requestId, dropNames);
    if (a.attemptCount) dropNames.push('x-envoy-attempt-count'); // each try writes its own
    if (mutates(route.requestHeaders)) extra += applyMutationTo(route.requestHeaders, head, dropNames);
    // Headers the client named in Connection are hop-by-hop too (RFC 9110 §7.6.1). The parser
    // tagged Connection lines already: no name comparisons, and no strings without one.
    const hf = head.fieldSlots;
    for (let i = head.fieldsAt; i < head.fieldsEnd; i += F.SIZE) {
      if (hf[i + F.KIND] !== HeaderKind.CONNECTION || standardConnectionValue(head.buf, hf[i + F.VALUE_START]!, hf[i + F.VALUE_END]!)) continue;
      for (const t of head.buf.toString('latin1', hf[i + F.VALUE_START]!, hf[i + F.VALUE_END]!).toLowerCase().split(',')) {
        const n = t.trim();
        if (n && n !== 'close' && n !== 'keep-alive' && n !== 'upgrade') dropNames.push(n);
      }
    }
    if (this.upgrade) extra += 'connection: upgrade\r\n';
    reqKeepUpgrade = this.upgrade;
    reqDropExpect = !cfg.proxy100Continue;
    reqDropHost = a.hostRewrite !== null || this.hostFromTarget;
    // `extra` is the last thing before the final CRLF, one byte per char (latin1): the id's
    // placeholder sits this far from the end, and is overwritten before the head is sent.
    const fromEnd = ridOff >= 0 ? 2 + extra.length - ridOff : 0;
    const line = requestLine(head.method, target);
    const drop = requestDrop();
    const at = encodeHeadSendAt(fd, line, head, drop, extra, fromEnd);
    if (at >= 0) {
      this.upSlab = keptBuffer();
      this.upAt = at;
      this.upLen = keptLength();
      this.upstreamHead = null;
    } else {
      const out = encodeHeadSend(fd, line, head, drop, extra, fromEnd, writeUuidV4);
      this.upSlab = this.upstreamHead = out;
      this.upAt = 0;
      this.upLen = out.length;
    }
    if (ridOff >= 0) this.ridAt = this.upLen - fromEnd;
  }

  /**
   * HTTP/1 in, HTTP/2 out: the header object comes from the head already encoded for upstream
   * (so rewrites and mutations apply once), and a chunked body is unwrapped to its payload.
   */
  private prepareH2(): void {
    this.pinned = true;
    this.h2Mode = true;
    this.h2Headers = this.upstreamHeaderObject();
    if (this.head.chunked) {
      // Bytes held during a fault delay are still chunk-framed: unwrap them like the rest.
      if (this.body.length) {
        const held = this.body;
        const f = new BodyFramer();
        f.reset(BodyMode.CHUNKED);
        this.body = [];
        this.bodyBytes = 0;
        f.onPayload = (b, st, e) => this.keepBody(b.subarray(st, e), true);
        for (const b of held) f.feed(b, 0, b.length);
      }
      this.session.framer.onPayload = (b, st, e) => this.onPayloadH2(b.subarray(st, e));
    }
    // The payload held before the route was taken (a filter's hold), each chunk told once.
    if (this.obs !== null) for (const b of this.body) this.obs.requestData(b);
  }

  /** The re-encoded upstream head as HTTP/2-style header object (for H2 tries and mirrors). */
  private upstreamHeaderObject(): HeaderObject {
    const enc = this.upstreamHeadNow();
    const h = parseRequestHead(enc, 0, enc.length, { maxHeadBytes: enc.length + 1, maxHeaders: 100_000 });
    if (typeof h === 'number') throw new Error('re-parsing our own head failed');
    const out: HeaderObject = { ':method': h.method, ':path': h.target, ':authority': h.host, ':scheme': 'http' };
    const f = h.fieldSlots;
    for (let i = h.fieldsAt; i < h.fieldsEnd; i += F.SIZE) {
      const k = f[i + F.KIND]!;
      if (k === HeaderKind.HOST || k === HeaderKind.TRANSFER_ENCODING || k === HeaderKind.CONNECTION || k === HeaderKind.KEEP_ALIVE) continue;
      const name = enc.toString('latin1', f[i + F.NAME_START]!, f[i + F.NAME_END]!).toLowerCase();
      const v = enc.toString('latin1', f[i + F.VALUE_START]!, f[i + F.VALUE_END]!);
      const prev = out[name];
      out[name] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    return out;
  }

  /**
   * Once the request is complete, copies it to the route's mirror clusters. A body that outgrew
   * the buffer limit is not kept, so such a request is not mirrored (Envoy abandons it too).
   */
  private maybeMirror(): void {
    const m = this.action?.mirrors;
    if (!m || this.mirrored || !this.requestDone || this.bodyOverflow || this.upgrade) return;
    this.mirrored = true;
    let body = this.body;
    if (!this.h2Mode && this.head.chunked && body.length) {
      // HTTP/1.1 tries keep the bytes as they arrived: take the chunk framing off for the copy.
      const payload: Buffer[] = [];
      const f = new BodyFramer();
      f.reset(BodyMode.CHUNKED);
      f.onPayload = (b, st, e) => payload.push(Buffer.from(b.subarray(st, e)));
      for (const b of body) f.feed(b, 0, b.length);
      body = payload;
    }
    const h = this.upstreamHeaderObject();
    delete h['content-length'];
    if (body.length) h['content-length'] = String(body.reduce((n, b) => n + b.length, 0));
    sendMirrors(this.session.filter, m, h, body);
  }

  private onPayloadH2(b: Buffer): void {
    if (this.responseDone || this.finished) return;
    if (this.obs !== null) this.obs.requestData(b);
    const t = this.h2;
    if (!t || !this.bodyOverflow) this.keepBody(b, !t);
    if (t && !t.write(b) && !this.waitingUpstreamDrain) {
      this.waitingUpstreamDrain = true;
      this.session.pause();
      t.onDrain(() => {
        this.waitingUpstreamDrain = false;
        this.session.resume();
      });
    } else if (!t && this.bodyBytes > this.session.bufferLimit) {
      if (this.backoffTimer) this.retryBufferExceeded();
      else this.session.pause();
    }
  }

  /**
   * The body outgrew the buffer limit while a retry waits out its back-off: with no try in flight
   * and no complete copy to replay, Envoy's router gives up with 507.
   */
  private retryBufferExceeded(): void {
    this.routerReply(507, 'content-type: text/plain\r\n', BODY_RETRY_BUFFER);
  }

  /** A try through the UpstreamTry interface: an HTTP/2 upstream's, or (with a body transform) an HTTP/1.1 one's. */
  private startH2Try(host: Host): void {
    const endNow = this.requestDone && this.body.length === 0;
    const relay = this.action!.hedgeOnPerTryTimeout ? new TryRelay(this, host, this.tryT0) : null;
    // The try reads its headers once its session is ready, maybe after a hedge started: each try
    // gets its own object when the count varies.
    const headers = this.action!.attemptCount ? { ...this.h2Headers!, 'x-envoy-attempt-count': String(this.retries + 1) } : this.h2Headers!;
    const xf = this.respBody !== null ? new TransformTry(relay ?? this, this.respBody) : null;
    const ev: TryEvents = xf ?? relay ?? this;
    const inner =
      upstreamProtocolOf(this.cluster!) === 'http2'
        ? new H2Try(this.session.filter.h2PoolsFor(this.cluster!, this.pools!.priority), host, headers, endNow, ev)
        : new H1Try(this.pools!, host, headers, endNow, this.head.method, ev);
    if (!this.tryActive || this.finished) return; // failed synchronously (overflow)
    let t: UpstreamTry = inner;
    if (xf !== null) {
      xf.inner = inner;
      t = xf;
    }
    this.h2 = t;
    if (relay) {
      relay.try = t;
      this.relay = relay;
    }
    for (const b of this.body) t.write(b);
    if (this.bodyOverflow) {
      this.body = [];
      this.bodyBytes = 0;
    }
    if (this.requestDone && !endNow) t.end();
    this.session.resume();
  }

  // ---- TryEvents: an HTTP/2 upstream answering an HTTP/1 client (or an HTTP/1.1 one, through an H1Try, for a body transform) ----

  onResponse(status: number, headers: HeaderObject, endStream: boolean): void {
    if (this.finished || !this.h2) return;
    const cs = this.cstats!;
    const grpc = endStream && headers['grpc-status'] !== undefined ? Number(headers['grpc-status']) : -1;
    countUpstreamStatus(cs, status, this.host);
    if (this.retryAllowed('status', status, grpc)) {
      this.abortTry();
      this.scheduleRetry();
      return;
    }
    if (this.perTryTimer) clearTimeout(this.perTryTimer);
    this.perTryTimer = null;
    this.responseStarted = true;
    this.dropAllParked();
    if (this.retries > 0) cs.upstream_rq_retry_success.value++;
    statusClass(this.stats, (this.status = status));
    const o = this.obs;
    if (o !== null) {
      o.responseHead(status, firstOf(headers['content-type']), endStream ? firstOf(headers['grpc-status']) : undefined, endStream);
      if (endStream) o.responseEnd(undefined, clockNow() - this.tryT0);
    }
    const cfg = this.cfg;
    let rh = this.route!.responseHeaders;
    if (this.respEdit !== null) {
      // The filters' edits come after the route's: both applied to a copy of the object here.
      headers = { ...headers };
      applyHeaderObject(headers, rh);
      applyHeaderObject(headers, this.respEdit);
      rh = NO_EDITS;
    }
    const drop = new Set(rh.remove);
    const attempts = this.action!.attemptCountInResponse;
    if (attempts) drop.add('x-envoy-attempt-count');
    const sht = cfg.serverHeaderTransformation;
    const overwriteServer = sht === 'OVERWRITE' || (sht === 'APPEND_IF_ABSENT' && headers.server === undefined);
    if (overwriteServer) drop.add('server');
    for (const a of rh.add) if (a.action === 'OVERWRITE_IF_EXISTS_OR_ADD' || (a.action === 'OVERWRITE_IF_EXISTS' && headers[a.name] !== undefined)) drop.add(a.name);
    let lines = '';
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined || k[0] === ':' || drop.has(k) || k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding') continue;
      for (const x of Array.isArray(v) ? v : [v]) lines += `${k}: ${x}\r\n`;
    }
    if (overwriteServer) lines += `server: ${cfg.serverName}\r\n`;
    if (cfg.alwaysSetRequestIdInResponse && this.requestId && headers['x-request-id'] === undefined) lines += `x-request-id: ${this.requestId}\r\n`;
    for (const a of rh.add) {
      if (a.value === '' && !a.keepEmpty) continue;
      if ((a.action === 'ADD_IF_ABSENT' && headers[a.name] !== undefined) || (a.action === 'OVERWRITE_IF_EXISTS' && headers[a.name] === undefined)) continue;
      lines += `${a.name}: ${a.value}\r\n`;
    }
    if (attempts) lines += `x-envoy-attempt-count: ${this.retries + 1}\r\n`;
    if (this.lb?.setCookie) lines += `set-cookie: ${this.lb.setCookie}\r\n`;
    if (!responseHasNoBody(status, this.head.method) && headers['content-length'] === undefined) {
      if (endStream) lines += 'content-length: 0\r\n';
      else if (this.head.versionMinor === 1) {
        this.rechunk = true;
        lines += 'transfer-encoding: chunked\r\n';
      } else this.forceClose = true; // HTTP/1.0: the close marks the end
    }
    if (!wantsKeepAlive(this.head)) this.forceClose = true;
    if (this.forceClose) lines += 'connection: close\r\n';
    else if (this.head.versionMinor === 0) lines += 'connection: keep-alive\r\n';
    this.writeDown(Buffer.from(`HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n${lines}\r\n`, 'latin1'));
    if (endStream) this.h2Complete();
  }

  onData(chunk: Buffer): void {
    if (this.finished || !this.h2 || chunk.length === 0) return;
    if (this.obs !== null) this.obs.responseData(chunk);
    if (this.timed !== null) this.timed.touch();
    this.txBytes += chunk.length;
    let ok: boolean;
    if (this.rechunk) {
      this.session.write(Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'));
      this.session.write(chunk);
      ok = this.session.write(Buffer.from('\r\n', 'latin1'));
    } else ok = this.session.write(chunk);
    if (!ok && !this.waitingDownstreamDrain) {
      const t = this.h2;
      this.waitingDownstreamDrain = true;
      t.pause();
      this.session.socket.once('drain', () => {
        this.waitingDownstreamDrain = false;
        t.resume();
      });
    }
  }

  onEnd(trailers: HeaderObject | null): void {
    if (this.finished || !this.h2) return;
    if (this.obs !== null) this.obs.responseEnd(trailers !== null ? firstOf(trailers['grpc-status']) : undefined, clockNow() - this.tryT0);
    if (this.rechunk) {
      let t = '0\r\n';
      for (const [k, v] of Object.entries(trailers ?? {})) {
        if (v === undefined || k[0] === ':') continue;
        for (const x of Array.isArray(v) ? v : [v]) t += `${k}: ${x}\r\n`;
      }
      this.session.write(Buffer.from(`${t}\r\n`, 'latin1'));
    }
    this.h2Complete();
  }

  private h2Complete(): void {
    this.h2 = null;
    this.endTry();
    this.cstats!.upstream_rq_completed.value++;
    this.session.filter.upstreamDone(this.cluster!, this.tryT0, this.trace, this.status, this.host);
    if (!this.requestDone) this.forceClose = true;
    this.responseDone = true;
    this.maybeFinish();
  }

  onFailure(kind: TryFailureKind): void {
    if (this.finished) return;
    this.h2 = null;
    if (kind === 'overflow') {
      this.endTry();
      this.flag('UO');
      this.routerReply(503, 'x-envoy-overloaded: true\r\ncontent-type: text/plain\r\n', BODY_OVERFLOW);
      return;
    }
    if (kind === 'reset' || kind === 'refused_stream') this.cstats!.upstream_rq_rx_reset.value++;
    this.tryFailed(kind);
  }

  onAbort(): void {
    if (this.finished) return;
    this.h2 = null;
    this.cstats!.upstream_rq_rx_reset.value++;
    this.stats.rq_reset_after_downstream_response_started.value++;
    this.endTry();
    this.session.socket.destroy();
  }

  // ---- tries ----

  private startTry(): void {
    const cluster = this.cluster!;
    const cs = this.cstats!;
    const rm = this.pools!.rm;
    if (!rm.canRequest()) {
      // max_requests of the route's priority: answered at once, Envoy counts it as a pending overflow.
      cs.upstream_rq_pending_overflow.value++;
      this.flag('UO');
      this.routerReply(503, 'x-envoy-overloaded: true\r\ncontent-type: text/plain\r\n', BODY_OVERFLOW);
      return;
    }
    const hp = this.action!.retry?.hosts ?? null;
    const host = pickTryHost(cluster, this.lb, hp, this, this.session.downstream.local);
    if (!host) {
      cluster.stats.upstream_cx_none_healthy.value++;
      this.routerReply(503, 'content-type: text/plain\r\n', BODY_NO_HEALTHY);
      return;
    }
    this.host = host;
    if (hp?.previousHosts) noteTried(this, host);
    this.tryT0 = clockNow();
    this.tryActive = true;
    rm.addRequest(1);
    cs.upstream_rq_total.value++;
    cs.upstream_rq_active.value++;
    host.counters.rq_total++;
    host.counters.rq_active++;
    this.gotUpstreamBytes = false;
    this.resp = null;
    this.respBuf = null;
    this.respExtraBytes = false;
    const perTry = this.action!.retry?.perTryTimeoutMs ?? 0;
    if (perTry > 0) this.armPerTryTimer(perTry);
    if (this.h2Mode) {
      this.startH2Try(host);
      return;
    }
    const hostPool = this.pools!.forHost(host);
    const idle = hostPool.takeIdle();
    if (idle) {
      this.attach(idle, true);
      return;
    }
    this.acquire(hostPool, host, cluster.spec.connectTimeoutMs);
  }

  private armPerTryTimer(ms: number): void {
    this.pinned = true;
    this.perTryTimer = setTimeout(() => this.onPerTryTimeout(), ms);
  }

  /** No idle connection: wait for one (a new connection, or one released meanwhile). */
  private acquire(hostPool: Http1HostPool, host: Host, connectTimeoutMs: number): void {
    this.pinned = true;
    this.cancelAcquire = hostPool.acquire(connectTimeoutMs, (conn, reason, reused) => {
      this.cancelAcquire = null;
      if (this.finished || !this.tryActive) {
        if (conn) this.pools!.forHost(host).release(conn, true);
        return;
      }
      if (!conn) {
        if (reason === 'overflow') {
          this.endTry();
          this.flag('UO');
          this.routerReply(503, 'x-envoy-overloaded: true\r\ncontent-type: text/plain\r\n', BODY_OVERFLOW);
        } else this.tryFailed('connect_failure');
        return;
      }
      this.attach(conn, reused);
    });
  }

  private attach(conn: Http1UpstreamConn, reused: boolean): void {
    this.conn = conn;
    this.connReused = reused;
    conn.user = this;
    const sock = conn.socket;
    if (!this.action!.attemptCount && this.body.length === 0) {
      // The usual bodiless request: one write, no cork/uncork round. On its first try the head
      // is encoded and sent by one addon call.
      if (this.headPending && !inBatch()) {
        this.encodeUpstreamHead(this.action!, this.route!, conn.sendFd());
        conn.wroteRange(this.upSlab!, this.upAt, this.upLen, lastHeadSent());
      } else {
        if (this.headPending) this.encodeUpstreamHead(this.action!, this.route!, -1);
        conn.deferWriteRange(this.upSlab!, this.upAt, this.upLen);
      }
      this.session.resume();
      return;
    }
    const head = this.upstreamHeadNow();
    sock.cork();
    if (this.action!.attemptCount) {
      // include_request_attempt_count: the count differs per try, so it goes after the shared head.
      sock.write(head.subarray(0, head.length - 2));
      sock.write(`x-envoy-attempt-count: ${this.retries + 1}\r\n\r\n`, 'latin1');
    } else sock.write(head);
    let ok = true;
    for (const b of this.body) ok = sock.write(b);
    sock.uncork();
    // Once the body no longer fits for a retry, chunks written are chunks we can forget.
    if (this.bodyOverflow) {
      this.body = [];
      this.bodyBytes = 0;
    }
    if (!ok) this.waitUpstreamDrain();
    else this.session.resume();
  }

  private waitUpstreamDrain(): void {
    const conn = this.conn;
    if (!conn || this.waitingUpstreamDrain) return;
    this.waitingUpstreamDrain = true;
    this.pinned = true;
    this.session.pause();
    conn.socket.once('drain', () => {
      this.waitingUpstreamDrain = false;
      if (this.conn === conn) this.session.resume();
    });
  }

  onRequestBody(slice: Buffer): void {
    this.rxBytes += slice.length;
    if (this.timed !== null) this.timed.touch();
    if (this.delayed) {
      this.keepBody(slice, true);
      if (this.holdThen) {
        // Held by the buffer filter: its limit replaces the connection's (no pause, 413 past it).
        if ((this.head.chunked ? this.holdPayload : this.bodyBytes) > this.holdMax) {
          if (!this.holdPartial) this.payloadTooLarge();
          else {
            // Enough for the filter: it decides now; the rest is held until the request goes on.
            const then = this.holdThen;
            this.holdThen = null;
            if (this.head.chunked) this.session.framer.onPayload = null;
            then();
          }
        }
      } else if (this.bodyBytes > this.session.bufferLimit) this.session.pause();
      return;
    }
    if (this.responseDone || this.finished || !this.action) return; // a local reply: the body is read and dropped
    if (this.h2Mode) {
      // A chunked body reaches HTTP/2 through the framer's payload callback instead.
      if (!this.head.chunked) this.onPayloadH2(slice);
      return;
    }
    if (this.conn && !this.resp) {
      if (!this.conn.write(slice)) this.waitUpstreamDrain();
      if (!this.bodyOverflow) this.keepBody(slice);
      return;
    }
    if (this.resp) return; // the upstream answered early; it does not want the rest
    // Still connecting or backing off: hold the bytes, and stop reading past the buffer limit.
    this.keepBody(slice, true);
    if (this.bodyBytes > this.session.bufferLimit) {
      if (this.backoffTimer) {
        this.retryBufferExceeded();
        return;
      }
      this.session.pause();
    }
  }

  private keepBody(slice: Buffer, mustKeep = false): void {
    if (this.bodyOverflow && !mustKeep) return;
    this.body.push(slice);
    this.bodyBytes += slice.length;
    if (!this.bodyOverflow && this.bodyBytes > this.session.bufferLimit) {
      // Too big to replay: retries are off for this request, as in Envoy.
      this.bodyOverflow = true;
      if (this.action?.retry) this.cstats!.retry_or_shadow_abandoned.value++;
      if (!mustKeep) {
        this.body = [];
        this.bodyBytes = 0;
      }
    }
  }

  onRequestEnd(): void {
    this.requestDone = true;
    if (this.timed !== null) {
      this.timed.requestDone = true;
      this.timed.touch();
    }
    const then = this.holdThen;
    if (then) {
      this.holdThen = null;
      this.delayed = false;
      if (this.head.chunked) {
        this.session.framer.onPayload = null;
        // The payload count may trail the last slice by one callback: judge the whole body now.
        if (this.holdPayload > this.holdMax && !this.holdPartial) {
          this.holdThen = then;
          this.payloadTooLarge();
          return;
        }
      }
      then();
    }
    this.maybeMirror();
    this.h2?.end();
    this.maybeFinish();
  }

  onRequestBodyError(): void {
    this.stats.downstream_cx_protocol_error.value++;
    if (this.responseStarted) {
      this.session.socket.destroy();
      return;
    }
    this.forceClose = true;
    this.requestDone = true;
    this.abortTry();
    this.localReply(400, '', 'Bad Request');
  }

  private payloadTooLarge(): void {
    if (this.head.chunked) this.session.framer.onPayload = null;
    this.holdThen = null;
    this.delayed = false;
    this.body = [];
    this.bodyBytes = 0;
    this.stats.downstream_rq_too_large.value++;
    // The rest of the body will not be read: the connection cannot carry another request.
    this.forceClose = true;
    this.localReply(413, 'content-type: text/plain\r\n', 'Payload Too Large');
  }

  private onPerTryTimeout(): void {
    this.perTryTimer = null;
    if (this.responseStarted || !this.tryActive) return;
    this.cstats!.upstream_rq_per_try_timeout.value++;
    if (this.action!.hedgeOnPerTryTimeout && this.park()) return;
    this.tryFailed('per_try_timeout');
  }

  // ---- hedging: tries left running after their per-try timeout ----

  /**
   * Leaves the current try running and schedules another, as Envoy's hedge_on_per_try_timeout
   * does. Only once the whole request went out (the late try has all of it to answer) and within
   * the retry budget; false: time the try out as usual.
   */
  private park(): boolean {
    if (!this.requestDone || this.bodyOverflow || this.waitingUpstreamDrain) return false;
    if (this.h2Mode) {
      if (!this.relay || this.h2 !== this.relay.try) return false;
    } else if (!this.conn || this.upgrade) return false;
    if (!this.retryAllowed('hedge', 0)) return false;
    this.host?.outlier.putResult(OutlierResult.TIMEOUT);
    let p: ParkedTry;
    if (this.h2Mode) {
      p = this.relay!;
      p.parked = true;
      this.h2 = null;
      this.relay = null;
    } else {
      p = new ParkedH1Conn(this, this.conn, this.host!, this.tryT0, this.respBuf);
      this.conn = null;
      this.respBuf = null;
    }
    (this.hedged ??= []).push(p);
    // The parked try keeps its rq_active until it is dropped or wins.
    this.tryActive = false;
    this.scheduleRetry();
    return true;
  }

  parkedResponse(p: ParkedTry, status: number, grpcStatus: number): boolean {
    if (this.finished || this.responseStarted) {
      this.dropParked(p);
      return false;
    }
    const policy = this.action!.retry;
    const others = this.tryActive || this.backoffTimer !== null || this.hedged!.length > 1;
    if (policy && others && statusRetriable(policy, status, grpcStatus)) {
      // Not usable, and another try may still answer: Envoy drops it rather than retrying.
      countUpstreamStatus(this.cstats!, status, p.host);
      this.dropParked(p);
      return false;
    }
    // The first usable answer wins: the current try (if any) is cancelled, no retry will start.
    this.abortTry();
    if (this.backoffTimer) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = null;
      this.pools!.rm.addRetry(-1);
    }
    this.hedged!.splice(this.hedged!.indexOf(p), 1);
    this.host = p.host;
    this.tryT0 = p.t0;
    this.tryActive = true;
    this.resp = null;
    this.respBuf = null;
    this.respExtraBytes = false;
    if (p instanceof TryRelay) {
      p.parked = false;
      this.h2 = p.try;
      this.relay = p;
    } else {
      const c = p.take();
      this.conn = c;
      this.connReused = false;
      this.gotUpstreamBytes = true;
      c.user = this;
    }
    return true;
  }

  parkedFailure(p: ParkedTry, kind: TryFailureKind): void {
    const o = outlierOfFailure(kind);
    if (o !== null) p.host.outlier.putResult(o);
    this.dropParked(p);
    if (this.finished || this.tryActive || this.backoffTimer || this.hedged?.length) return;
    // It was the last try out: fail (or retry) as that try's failure.
    this.noTryLeft(kind === 'overflow' ? 'reset' : kind);
  }

  private dropParked(p: ParkedTry): void {
    const i = this.hedged?.indexOf(p) ?? -1;
    if (i < 0) return;
    this.hedged!.splice(i, 1);
    p.drop();
    this.cstats!.upstream_rq_active.value--;
    this.pools!.rm.addRequest(-1);
    p.host.counters.rq_active--;
  }

  private dropAllParked(): void {
    const h = this.hedged;
    if (!h) return;
    while (h.length) this.dropParked(h[h.length - 1]!);
  }

  /** The route timeout passed (armRouteTimer). */
  onDeadline(): void {
    this.onRouteTimeout();
  }

  onRouteTimeout(): void {
    if (this.finished) return;
    this.cstats!.upstream_rq_timeout.value++;
    this.flag('UT');
    this.abortTry();
    if (this.backoffTimer) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = null;
      this.pools!.rm.addRetry(-1);
    }
    if (this.responseStarted) {
      this.stats.rq_reset_after_downstream_response_started.value++;
      this.session.socket.destroy();
      return;
    }
    this.routerReply(504, 'content-type: text/plain\r\n', BODY_TIMEOUT);
  }

  /** Ends the current try's bookkeeping; the connection (if any) is destroyed unless released first. */
  private endTry(): void {
    if (!this.tryActive) return;
    this.tryActive = false;
    this.pools!.rm.addRequest(-1);
    if (this.perTryTimer) clearTimeout(this.perTryTimer);
    this.perTryTimer = null;
    this.cstats!.upstream_rq_active.value--;
    if (this.host) this.host.counters.rq_active--;
  }

  /**
   * `downstreamGone`: the client left, not the upstream's fault (UpstreamTry.abort). `local`:
   * this side gives up on the request, rather than ending it after the upstream failed it.
   */
  private abortTry(downstreamGone = false, local = true): void {
    if (this.h2) {
      const t = this.h2;
      this.h2 = null;
      t.abort(downstreamGone);
    }
    if (this.cancelAcquire) {
      this.cancelAcquire();
      this.cancelAcquire = null;
    }
    const c = this.conn;
    this.conn = null;
    // A request on its way upstream that this side gives up on: a local reset, as Envoy counts
    // it (upstream_rq_tx_reset), whether its connection closes or is drained and pooled.
    if (c && local) this.cstats!.upstream_rq_tx_reset.value++;
    if (c && !(downstreamGone && this.drainConn(c))) {
      c.user = null;
      c.destroy();
    }
    this.endTry();
  }

  /**
   * Keeps `c` when the whole request went up on it: the rest of the response is read and dropped
   * and the connection pooled (upstream/http1_drain.ts); a head still deferred never left, so the
   * connection goes back at once. False: close it as before.
   */
  private drainConn(c: Http1UpstreamConn): boolean {
    if (!this.requestDone || this.waitingUpstreamDrain || this.upgrade || this.respExtraBytes || this.holdThen !== null) return false;
    if (c.dropDeferred()) {
      c.user = null;
      c.socket.resume();
      c.pool.release(c, true);
      return true;
    }
    const r = this.resp;
    return drainResponse(c, this.head.method, r === null ? this.respBuf : null, r === null ? null : this.respFramer, r === null || wantsKeepAlive(r));
  }

  private tryFailed(kind: TryFailure): void {
    const o = outlierOfFailure(kind);
    if (o !== null) this.host?.outlier.putResult(o);
    const wasReused = this.connReused && !this.gotUpstreamBytes;
    this.abortTry(false, false);
    if (this.finished) return;
    // A reused keep-alive connection the upstream closed just as we sent (its idle timer won the
    // race): try once more on a fresh one, whatever the policy — but only for idempotent methods,
    // since nothing proves the application did not see the request.
    if (kind === 'reset' && wasReused && !this.transparentRetryUsed && !this.bodyOverflow && IDEMPOTENT.has(this.head.method)) {
      this.transparentRetryUsed = true;
      this.startTry();
      return;
    }
    this.noTryLeft(kind);
  }

  /** The try in flight failed: retry, wait for a hedged try still out, or answer the failure. */
  private noTryLeft(kind: TryFailure): void {
    if (this.retryAllowed(kind, 0)) {
      this.scheduleRetry();
      return;
    }
    if (this.hedged?.length) return; // a hedged try is still out; its answer may yet come
    if (this.retries > 0) this.flag('URX');
    if (kind === 'connect_failure') {
      this.flag('UF');
      this.routerReply(503, 'content-type: text/plain\r\n', BODY_CONNECT_FAILURE);
    } else if (kind === 'per_try_timeout') {
      this.flag('UT');
      this.routerReply(504, 'content-type: text/plain\r\n', BODY_TIMEOUT);
    } else if (kind === 'protocol_error') {
      this.flag('UPE');
      this.routerReply(503, 'content-type: text/plain\r\n', BODY_PROTOCOL);
    } else {
      this.flag('UR');
      this.routerReply(503, 'content-type: text/plain\r\n', BODY_RESET);
    }
  }

  /** Whether the retry policy covers this outcome and budget remains. `status` 0 = no response. */
  private retryAllowed(kind: TryFailure | 'status', status: number, grpcStatus = -1): boolean {
    const p = this.action?.retry;
    if (!p || this.responseStarted || this.bodyOverflow) return false;
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
    else match = p.on5xx || p.onGatewayError || p.onReset || (kind === 'refused_stream' && p.onRefusedStream); // reset, per-try timeout, protocol error: no response at all
    if (!match) return false;
    if (this.retries >= p.numRetries) {
      this.cstats!.upstream_rq_retry_limit_exceeded.value++;
      return false;
    }
    const pools = this.pools!;
    if (!pools.rm.canRetry()) {
      this.cstats!.upstream_rq_retry_overflow.value++;
      return false;
    }
    return true;
  }

  private scheduleRetry(): void {
    this.pinned = true;
    const p = this.action!.retry!;
    this.retries++;
    this.cstats!.upstream_rq_retry.value++;
    const pools = this.pools!;
    pools.rm.addRetry(1);
    // Fully jittered exponential back-off, Envoy's default shape.
    const ceiling = Math.min(p.backoffBaseMs * 2 ** (this.retries - 1), p.backoffMaxMs);
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = null;
      pools.rm.addRetry(-1);
      if (!this.finished) this.startTry();
    }, Math.random() * ceiling);
  }

  // ---- upstream response ----

  onUpstreamData(chunk: Buffer): void {
    this.gotUpstreamBytes = true;
    if (this.timed !== null) this.timed.touch();
    if (this.finished) {
      this.conn?.destroy();
      return;
    }
    // Whatever one upstream read produces downstream leaves in one write: a small response as
    // one buffer (onResponseHead), anything written in pieces under cork (corkDown), one writev.
    const down = this.session.socket;
    if (this.resp !== null && this.respFramer.onPayload !== null) this.corkDown(); // de-chunking writes per chunk
    try {
      this.onUpstreamBytes(chunk);
    } catch (err) {
      log.error({ err: (err as Error).stack }, 'http connection manager failed on an upstream response');
      this.conn?.destroy();
      down.destroy();
    } finally {
      if (this.downCorked) {
        this.downCorked = false;
        down.uncork();
      }
    }
  }

  /**
   * An upstream read as `src[off, end)`, valid only during this call (a reused read buffer). The
   * usual case, a whole response head with a small body or none, is parsed and forwarded from
   * where it lies (the head's bytes are copied into a shared slab by the parser, the body into
   * the head's write); a body that must outlive the call and every other case take a copy.
   */
  onUpstreamRead(src: Buffer, off: number, end: number): void {
    if (this.timed !== null) this.timed.touch();
    if (this.resp !== null || this.respBuf !== null || this.finished) {
      this.onUpstreamData(copyOut(src, off, end));
      return;
    }
    this.gotUpstreamBytes = true;
    const down = this.session.socket;
    try {
      const r = parseResponseHeadOwned(src, off, end, this.cfg.limits, this.pinned ? null : this.respHead);
      if (typeof r !== 'number') this.respHead = r;
      if (typeof r === 'number' || (r.status >= 100 && r.status < 200)) {
        // Incomplete, bad or interim: the general path decides, over the same bytes.
        this.onUpstreamBytes(copyOut(src, off, end));
        return;
      }
      const at = off + r.headBytes;
      const rest = end - at;
      const cl = r.contentLength;
      // What onResponseHead does with src[at, end) without keeping it: nothing, skip it (no
      // body), or copy a whole small body behind the head.
      const inPlace = rest === 0 || responseHasNoBody(r.status, this.head.method) || (!r.chunked && cl >= 0 && cl <= rest && cl <= INLINE_BODY_MAX);
      if (inPlace) this.onResponseHead(r, src, at, end);
      else this.onResponseHead(r, copyOut(src, at, end), 0);
    } catch (err) {
      log.error({ err: (err as Error).stack }, 'http connection manager failed on an upstream response');
      this.conn?.destroy();
      down.destroy();
    } finally {
      if (this.downCorked) {
        this.downCorked = false;
        down.uncork();
      }
    }
  }

  private corkDown(): void {
    if (this.downCorked) return;
    this.downCorked = true;
    this.session.cork();
  }

  private onUpstreamBytes(chunk: Buffer): void {
    if (this.resp) {
      this.forwardResponseBody(chunk, 0);
      return;
    }
    const buf = this.respBuf ? Buffer.concat([this.respBuf, chunk]) : chunk;
    let off = 0;
    for (;;) {
      const r = parseResponseHead(buf, off, buf.length, this.cfg.limits);
      if (typeof r === 'number') {
        if (r === HeadStatus.NEED_MORE) {
          this.respBuf = off < buf.length ? buf.subarray(off) : null;
          return;
        }
        this.cstats!.upstream_cx_protocol_error.value++;
        this.tryFailed('protocol_error');
        return;
      }
      off += r.headBytes;
      if (r.status >= 100 && r.status < 200) {
        // Interim responses: our own 100 Continue already went out. 101 only answers an allowed upgrade.
        if (r.status === 101) {
          if (this.upgrade && this.conn) {
            this.respBuf = null;
            this.tunnel(r, buf.subarray(off));
            return;
          }
          this.cstats!.upstream_cx_protocol_error.value++;
          this.tryFailed('protocol_error');
          return;
        }
        continue;
      }
      this.respBuf = null;
      this.onResponseHead(r, buf, off);
      return;
    }
  }

  /** `buf[off, end)` follows the head (by default the rest of `buf`). */
  private onResponseHead(r: MessageHead, buf: Buffer, off: number, end = buf.length): void {
    const cs = this.cstats!;
    // Only a retry policy looks at the status (and grpc-status): no header scan without one.
    const grpc = this.action!.retry ? getHeader(r, 'grpc-status') : undefined;
    if (this.action!.retry && this.retryAllowed('status', r.status, grpc === undefined ? -1 : Number(grpc))) {
      countUpstreamStatus(cs, r.status, this.host);
      // Not worth reading the rejected body to keep the connection: a retry is the rare path.
      this.abortTry();
      this.scheduleRetry();
      return;
    }
    if (this.perTryTimer) clearTimeout(this.perTryTimer);
    this.perTryTimer = null;
    this.resp = r;
    this.responseStarted = true;
    this.dropAllParked();
    countUpstreamStatus(cs, r.status, this.host);
    if (this.retries > 0) cs.upstream_rq_retry_success.value++;
    statusClass(this.stats, (this.status = r.status));
    const noBody = responseHasNoBody(r.status, this.head.method);
    const mode = noBody ? BodyMode.NONE : r.chunked ? BodyMode.CHUNKED : r.contentLength >= 0 ? BodyMode.LENGTH : BodyMode.UNTIL_CLOSE;
    this.respFramer.reset(mode, r.contentLength > 0 ? r.contentLength : 0);
    // An HTTP/1.0 client cannot take chunked framing: strip it and mark the end by closing.
    const dechunk = mode === BodyMode.CHUNKED && this.head.versionMinor === 0;
    if (dechunk) this.dechunkDown();
    if (mode === BodyMode.UNTIL_CLOSE || dechunk || !wantsKeepAlive(this.head)) this.forceClose = true;
    const cl = r.contentLength;
    if (mode === BodyMode.LENGTH && cl <= end - off && cl <= INLINE_BODY_MAX) {
      // The whole (small) body came with the head: copy it behind the head, one buffer, one write.
      const e = off + cl;
      this.sendResponseHead(r, false, true, buf, off, e);
      this.respFramer.feed(buf, off, e);
      this.txBytes += cl;
      if (e < end) this.respExtraBytes = true;
      this.responseComplete();
      return;
    }
    if (mode !== BodyMode.NONE && off < end) this.corkDown();
    this.sendResponseHead(r, dechunk, mode === BodyMode.NONE);
    if (mode === BodyMode.NONE) {
      if (off < end) this.respExtraBytes = true;
      this.responseComplete();
      return;
    }
    // Only ever reached with the whole of `buf` following the head (onUpstreamRead copies).
    if (off < end) this.forwardResponseBody(buf, off);
  }

  /** The response's chunked body goes to an HTTP/1.0 client as its payload alone. */
  private dechunkDown(): void {
    this.pinned = true;
    this.respFramer.onPayload = (b, s, e) => this.writeDown(b.subarray(s, e));
  }

  /**
   * The upstream switched protocols: relay its 101, then splice both connections as bytes with
   * stream backpressure until either side closes. The upstream connection leaves the pool.
   */
  private tunnel(r: MessageHead, rest: Buffer): void {
    const conn = this.conn!;
    const cs = this.cstats!;
    this.conn = null;
    if (this.perTryTimer) clearTimeout(this.perTryTimer);
    this.perTryTimer = null;
    this.session.clearRouteTimer(this);
    // The tunnel's bytes are relayed without this stream seeing them: no idle timeout from here.
    this.unwatchTimed();
    this.responseStarted = true;
    countUpstreamStatus(cs, 101, this.host);
    statusClass(this.stats, (this.status = 101));
    const up = conn.socket;
    const down = this.session.socket;
    const drop = (h: MessageHead, i: number) => {
      const k = h.fieldSlots[h.fieldsAt + i * F.SIZE]!;
      return k === HeaderKind.CONNECTION || k === HeaderKind.KEEP_ALIVE || k === HeaderKind.PROXY_CONNECTION;
    };
    this.corkDown();
    down.write(encodeHead('HTTP/1.1 101 Switching Protocols', r, drop, 'connection: upgrade\r\n'));
    if (rest.length) down.write(rest);
    // The pool hands this socket's bytes to the client from now on; its 'close' listener still keeps the counts.
    conn.tunnelTo(down);
    const pending = this.session.detach();
    if (pending && pending.length) up.write(pending);
    this.session.pipeTo(up);
    up.resume();
    down.resume();
    let logged = false;
    const close = () => {
      up.destroy();
      down.destroy();
      // An upgraded exchange is logged when the tunnel ends, as Envoy logs a stream at its end.
      if (!logged && this.session.filter.accessLog) {
        logged = true;
        this.logAccess();
      }
    };
    up.once('close', close);
    down.once('close', close);
    up.on('error', () => {});
    this.endTry();
    this.responseDone = true;
    this.requestDone = true;
    this.forceClose = true;
    // The exchange is over as far as HTTP goes; the session stays until the socket closes.
    this.finished = true;
    this.notifyFilters();
  }

  /** The filters' response edits over an upstream head's extra lines (a method of its own: the closure costs only requests that have edits). */
  private editLines(extra: string, r: MessageHead, dropNames: string[]): string {
    return editHeaderLines(extra, this.respEdit!, (n) => hasHeader(r, n), dropNames);
  }

  /**
   * Writes the response head downstream; `body[bodyStart, bodyEnd)`, when given, is copied after
   * it. `whole`: these bytes are the entire response (they may wait for the batch's end).
   */
  private sendResponseHead(r: MessageHead, dechunk: boolean, whole: boolean, body: Buffer | null = null, bodyStart = 0, bodyEnd = 0): void {
    const cfg = this.cfg;
    const route = this.route!;
    const dropNames = respDropNames;
    if (dropNames.length !== 0) dropNames.length = 0;
    let extra = '';
    const sht = cfg.serverHeaderTransformation;
    respDropServer = sht === 'OVERWRITE' || (sht === 'APPEND_IF_ABSENT' && !hasHeader(r, 'server'));
    if (respDropServer) extra += this.session.serverLine;
    if (cfg.alwaysSetRequestIdInResponse && this.requestId && !hasHeader(r, 'x-request-id')) extra += `x-request-id: ${this.requestId}\r\n`;
    if (mutates(route.responseHeaders)) extra += applyMutationTo(route.responseHeaders, r, dropNames);
    if (this.respEdit !== null) extra = this.editLines(extra, r, dropNames);
    if (this.action!.attemptCountInResponse) {
      dropNames.push('x-envoy-attempt-count');
      extra += `x-envoy-attempt-count: ${this.retries + 1}\r\n`;
    }
    if (this.lb?.setCookie) extra += `set-cookie: ${this.lb.setCookie}\r\n`;
    const keep = !this.forceClose && wantsKeepAlive(this.head);
    // The usual closing response adds only these two lines: one string made for the chain.
    if (!keep) extra = extra === this.session.filter.serverLine ? this.session.filter.serverCloseLine : `${extra}connection: close\r\n`;
    else if (this.head.versionMinor === 0) extra += 'connection: keep-alive\r\n';
    respDechunk = dechunk;
    if (!this.session.writeHead(statusLine(r.status), r, responseDrop(), extra, body, bodyStart, bodyEnd, whole)) this.waitDownstreamDrain();
  }

  private forwardResponseBody(buf: Buffer, off: number): void {
    const f = this.respFramer;
    const e = f.feed(buf, off, buf.length);
    if (e === BODY_ERROR) {
      // Bad framing mid-body: the client already has a head, so only a reset can tell it.
      this.cstats!.upstream_cx_protocol_error.value++;
      this.stats.rq_reset_after_downstream_response_started.value++;
      this.abortTry(false, false);
      this.session.socket.destroy();
      return;
    }
    if (e > off && !f.onPayload) this.writeDown(off === 0 && e === buf.length ? buf : buf.subarray(off, e));
    this.txBytes += e - off;
    if (f.done) {
      if (e < buf.length) this.respExtraBytes = true;
      this.responseComplete();
    }
  }

  private writeDown(b: Buffer): void {
    if (!this.session.write(b)) this.waitDownstreamDrain();
  }

  /** The client reads slower than the upstream sends: stop reading the upstream until it drains. */
  private waitDownstreamDrain(): void {
    const conn = this.conn;
    if (!conn || this.waitingDownstreamDrain) return;
    this.waitingDownstreamDrain = true;
    this.pinned = true;
    conn.socket.pause();
    this.session.socket.once('drain', () => {
      this.waitingDownstreamDrain = false;
      if (!conn.closed) conn.socket.resume();
    });
  }

  private responseComplete(): void {
    const r = this.resp!;
    const conn = this.conn;
    this.conn = null;
    const keepAlive = wantsKeepAlive(r);
    const reusable = this.requestDone && !this.respExtraBytes && keepAlive && !this.waitingUpstreamDrain;
    if (conn) {
      if (this.waitingDownstreamDrain) conn.socket.resume();
      this.waitingDownstreamDrain = false;
      // The conn's own pool (release() would hand it there anyway): no lookup by host.
      conn.pool.release(conn, reusable, !keepAlive);
    }
    this.endTry();
    this.cstats!.upstream_rq_completed.value++;
    this.session.filter.upstreamDone(this.cluster!, this.tryT0, this.trace, this.status, this.host);
    if (!this.requestDone) this.forceClose = true; // the rest of the request body has nowhere to go
    this.responseDone = true;
    this.maybeFinish();
  }

  onUpstreamClose(_hadError: boolean): void {
    this.conn = null;
    if (this.finished) return;
    if (!this.resp) {
      this.cstats!.upstream_rq_rx_reset.value++;
      this.tryFailed('reset');
      return;
    }
    if (this.respFramer.mode === BodyMode.UNTIL_CLOSE) {
      this.respFramer.reset(BodyMode.NONE);
      this.responseComplete();
      return;
    }
    // Truncated response: the client has a head already, so the connection must go.
    this.cstats!.upstream_rq_rx_reset.value++;
    this.stats.rq_reset_after_downstream_response_started.value++;
    this.endTry();
    this.session.socket.destroy();
  }

  // ---- endings ----

  /** A response the proxy writes itself. Any try in flight is abandoned. */
  /** A reply of the router's own (no cluster, overflow, no healthy host, an upstream failure or timeout): the route's response headers apply, as Envoy's router adds them. */
  private routerReply(status: number, headers: string, body: Buffer | string): void {
    this.localReply(status, headers, body, this.route?.responseHeaders);
  }

  private localReply(status: number, headers: string, body: Buffer | string, mutation?: HeaderMutation): void {
    if (this.responseStarted) {
      this.session.socket.destroy();
      return;
    }
    this.abortTry();
    this.clearTimers();
    this.responseStarted = true;
    const lr = this.cfg.localReply;
    // gRPC replies on HTTP/1 (rare) carry their status in headers already: left as made.
    if (lr !== null && !headers.includes('grpc-status:')) {
      const r = lr.rewrite(status, body, false, () => this.entry());
      if (r !== null) {
        status = r.status;
        body = r.body;
        headers = rewriteHeaderLines(headers, r);
      }
    }
    let h = this.session.serverHeader() + headers;
    if (this.cfg.alwaysSetRequestIdInResponse && this.requestId) h += `x-request-id: ${this.requestId}\r\n`;
    // The router's own replies after tries (timeouts, resets, exhausted retries) say it too, as Envoy's do.
    if (this.action?.attemptCountInResponse && this.host !== null) h += `x-envoy-attempt-count: ${this.retries + 1}\r\n`;
    // The route's edits replace the reply's own lines (an overwritten content-type or location is not sent twice).
    if (mutation && (mutation.add.length || mutation.remove.length)) h = editLocalReplyLines(h, mutation, body.length > 0);
    // The filters' response edits (cors, ext_authz) reach local replies too, as Envoy encodes those through its filters.
    if (this.respEdit !== null) h = editHeaderLines(h, this.respEdit, noField, []);
    // A request whose body the client may still be holding back (Expect) cannot be drained.
    if (!this.requestDone && this.head.expectContinue) this.forceClose = true;
    const close = this.forceClose || !wantsKeepAlive(this.head);
    if (close) this.forceClose = true;
    statusClass(this.stats, (this.status = status));
    // A local reply's body is never gRPC messages: only its head is told.
    if (this.obs !== null) this.obs.responseHead(status, fieldOfLines(h, 'content-type'), fieldOfLines(h, 'grpc-status'), body.length === 0);
    this.session.write(encodeLocalResponse(status, h, body, close));
    this.txBytes += typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    this.responseDone = true;
    if (close && !this.requestDone) this.requestDone = true; // nothing more will be read
    this.maybeFinish();
  }

  private notifyFilters(): void {
    const n = this.notify;
    this.notify = null;
    if (n) for (const f of n) f.onDone?.();
  }

  private maybeFinish(): void {
    if (this.finished || !this.requestDone || !this.responseDone) return;
    this.finished = true;
    this.session.filter.streamDone(this.t0, this.trace, this.status);
    if (this.session.filter.accessLog) this.logAccess();
    this.clearTimers();
    this.notifyFilters();
    this.session.onStreamDone(this, !this.forceClose);
  }

  private clearTimers(): void {
    this.unwatchTimed();
    if (this.durationTimer !== null) {
      clearTimeout(this.durationTimer);
      this.durationTimer = null;
    }
    this.dropAllParked();
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimer = null;
    this.delayed = false;
    this.session.clearRouteTimer(this);
    if (this.perTryTimer) clearTimeout(this.perTryTimer);
    this.perTryTimer = null;
    if (this.backoffTimer) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = null;
      this.pools!.rm.addRetry(-1);
    }
  }

  private unwatchTimed(): void {
    if (this.timed !== null) {
      this.session.filter.streamTimeouts!.unwatch(this.timed);
      this.timed = null;
    }
  }

  /**
   * @internal stream_timeouts.ts: nothing moved for stream_idle_timeout, or the request did not
   * arrive whole within request_timeout. As Envoy: 408 before the response began (the connection
   * closes when the request is not all read), else the connection is reset.
   */
  onStreamTimeout(kind: 'idle' | 'request'): void {
    this.timed = null; // the watcher let go already
    if (this.finished || this.responseDone) return;
    const st = this.stats;
    if (kind === 'idle') st.downstream_rq_idle_timeout.value++;
    else st.downstream_rq_timeout.value++;
    if (!this.requestDone) this.forceClose = true;
    // After the response began, localReply resets the connection itself.
    this.localReply(408, 'content-type: text/plain\r\n', kind === 'idle' ? 'stream timeout' : 'request timeout');
  }

  /** max_stream_duration (the route's, else the connection manager's), counted from the request's start, as Envoy's. */
  private armMaxDuration(a: ForwardAction): void {
    const g = a.grpcTimeout;
    const ms = streamDurationMs(a, this.cfg.maxStreamDurationMs, g !== null && g.headerOnly ? getHeader(this.head, 'grpc-timeout') : undefined);
    if (ms > 0) this.durationTimer = setTimeout(() => this.onMaxDuration(), Math.max(0, ms - (clockNow() - this.t0)));
  }

  /** The exchange outlived max_stream_duration: 408 before the response began (as a stream timeout), else the connection is reset. */
  private onMaxDuration(): void {
    this.durationTimer = null;
    if (this.finished || this.responseDone) return;
    this.stats.downstream_rq_max_duration_reached.value++;
    if (!this.requestDone) this.forceClose = true;
    this.localReply(408, 'content-type: text/plain\r\n', 'downstream duration timeout');
  }

  /** The client went away mid-exchange. */
  onDownstreamReset(): void {
    if (this.finished) return;
    this.finished = true;
    this.session.filter.streamDone(this.t0, this.trace, 0);
    if (!this.responseDone) this.stats.downstream_rq_rx_reset.value++;
    if (this.session.filter.accessLog) {
      this.flag('DC');
      this.logAccess();
    }
    this.abortTry(true);
    this.clearTimers();
    this.notifyFilters();
  }
}

/** A local reply's header lines ("name: value\r\n"...) with local_reply_config's edits. */
function rewriteHeaderLines(headers: string, r: RewrittenReply): string {
  const lines = headers ? headers.split('\r\n').slice(0, -1) : [];
  const nameOf = (l: string) => l.slice(0, l.indexOf(':')).toLowerCase();
  const set = (n: string, v: string) => {
    for (let i = lines.length - 1; i >= 0; i--) if (nameOf(lines[i]!) === n) lines.splice(i, 1);
    lines.push(`${n}: ${v}`);
  };
  if (r.contentType !== null) set('content-type', r.contentType);
  applyLocalReplyHeaders(r, (n) => lines.some((l) => nameOf(l) === n), set, (n, v) => lines.push(`${n}: ${v}`));
  return lines.length ? `${lines.join('\r\n')}\r\n` : '';
}
