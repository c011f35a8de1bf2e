import type net from 'node:net';
import { log } from '../../../log.js';
import { createAccessLogger, type AccessLogger } from '../../../observability/access_log/config.js';
import { newEntry, type RpcLogInfo } from '../../../observability/access_log/entry.js';
import { RpcTracer, type RpcCallTrace } from '../../../observability/tracing/rpc.js';
import type { Histogram, StatsOf } from '../../../observability/stats.js';
import { DUBBO_READONLY_EVENT } from '../../../protocols/dubbo/codec.js';
import { detectProtocol, getCodec } from '../../../protocols/index.js';
import { hasNativeDecoder, nativeCodec } from '../../../protocols/native_codec.js';
import { FrameKind, H, decodeErrorName, type LocalReplyKind, type ResponseClass, type RpcCodec } from '../../../protocols/types.js';
import { OutlierResult } from '../../../upstream/outlier/monitor.js';
import { KeyedLimiter, PriorityLimiter } from '../../../ratelimit/index.js';
import { LbContext } from '../../../upstream/lb/context.js';
import type { RpcRequestView, RpcRoute, RpcRouter } from '../../../router/rpc_route_table.js';
import type { MetadataMatch } from '../../../upstream/subset/metadata_match.js';
import type { RpcExtension } from './extension.js';
import { hashRpcCall } from '../../../router/rpc_route_table.js';
import type { Cluster } from '../../../upstream/cluster.js';
import type { Host } from '../../../upstream/host.js';
import type { ConnectionContext, Handover, NetworkFilter, RuntimeContext } from '../types.js';
import { native } from '../../../native.js';
import type { RpcProxyConfig, RpcRateLimit } from './config.js';
import { Framer } from './framer.js';
import { RPC_PROXY_STATS } from './stats.js';
import { RpcConnPool, type PendingCall, type RpcUpstreamConn } from './upstream.js';
import { batchPending, corkedWrite, directWrites, holdDrain, inReadBatch, rpcDirectIo, turnClock, unsentBytes } from './write_batch.js';
import { batchRead, http1BatchReader } from '../../../protocols/http1/batch_reader.js';

type Stats = StatsOf<typeof RPC_PROXY_STATS>;

/** How a response counts for outlier detection (Envoy's result kinds). */
const OUTLIER_OF: Record<ResponseClass, OutlierResult> = {
  success: OutlierResult.REQUEST_SUCCESS,
  failed: OutlierResult.REQUEST_FAILED,
  overloaded: OutlierResult.GATEWAY_FAILURE,
  timeout: OutlierResult.TIMEOUT,
};

/**
 * Bytes a socket may hold unsent before the client feeding it stops being read (Envoy's
 * per_connection_buffer_limit_bytes default). Keeps memory bounded under slow peers.
 */
const BUFFER_LIMIT = 1024 * 1024;

/**
 * Calls one client connection may have in flight before it stops being read: the answers to
 * them are what a client that does not read would make the proxy hold.
 */
const MAX_CALLS_PER_CONNECTION = 256;

/**
 * How late a call's timeout may be answered: a session arms one timer for its earliest deadline
 * and moves it earlier only for a deadline more than this ahead of it (no timer per call).
 */
const DEADLINE_SLACK_MS = 10;

/** Header slots for a local reply, re-decoded from the call's frame (calls keep no copy). */
const replyHdr = new Int32Array(H.SIZE);

/** Envoy's response flags for the proxy's own answers. */
const LOCAL_REPLY_FLAGS: Record<LocalReplyKind, string> = { no_route: 'NR', no_upstream: 'UH', overflow: 'UO', timeout: 'UT', bad_request: 'DPE' };

/** The protocol status of a frame the proxy built (access log only). */
function statusOf(codec: RpcCodec, frame: Buffer): number {
  const h = new Int32Array(H.SIZE);
  codec.decodeHeader(frame, 0, frame.length, frame.length, h);
  return h[H.STATUS]!;
}

/** The configured RPC proxy: route table, stats and the upstream pools its connections share. */
export class RpcProxyFilter implements NetworkFilter {
  readonly stats: Stats;
  /** `<rpc|dubbo>.<prefix>.request_time_ms` (dubbo_proxy's name): a call's start to its answer. */
  readonly requestTime: Histogram;
  private readonly pools = new Map<string, RpcConnPool>();

  constructor(
    readonly config: RpcProxyConfig,
    readonly rt: RuntimeContext,
  ) {
    const scope = rt.stats.scope(config.statScope).scope(config.statPrefix, `envoy_${config.statScope}_prefix`);
    this.stats = scope.table(RPC_PROXY_STATS);
    const rl = config.rateLimit;
    this.rateLimit = rl
      ? {
          config: rl,
          // Per source application when configured: each gets its own limiter of these settings.
          keyed: rl.sourceAppKey ? new KeyedLimiter(rl.limiter, new Map(), 1024, scope.scope('app')) : null,
          single: rl.sourceAppKey ? null : new PriorityLimiter(rl.limiter, scope),
        }
      : null;
    this.requestTime = rt.stats.scope(config.statScope).scope(config.statPrefix, `envoy_${config.statScope}_prefix`).histogram('request_time_ms');
    this.accessLog = createAccessLogger(config.accessLogs, rt.stats);
    this.tracer = config.tracing ? new RpcTracer(config.tracing, rt.clusters, rt.stats, config.statPrefix, config.maxFrameBytes) : null;
    this.ext = config.extension ? config.extension(scope) : null;
  }

  /** The protocol filter's additions (thrift_proxy); null for rpc_proxy and dubbo_proxy. */
  readonly ext: RpcExtension | null;

  /** null without `tracing`: calls then build no trace state at all. */
  readonly tracer: RpcTracer | null;

  readonly accessLog: AccessLogger | null;
  readonly rateLimit: { config: RpcRateLimit; keyed: KeyedLimiter | null; single: PriorityLimiter | null } | null;

  /** One access log line for a call that ended (only called when there is a log). */
  logCall(conn: ConnectionContext, start: number, rpc: RpcLogInfo, cluster: Cluster | null, host: Host | null, flags: string, code: number | null, details: string | null, rx: number, tx: number): void {
    const e = newEntry(start);
    e.durationMs = Date.now() - start;
    e.bytesReceived = rx;
    e.bytesSent = tx;
    e.downstreamRemote = conn.downstream.remote;
    e.downstreamLocal = conn.downstream.local;
    e.upstreamCluster = cluster?.name ?? null;
    e.upstreamHost = host?.label ?? null;
    e.responseFlags = flags;
    e.responseCode = code;
    e.responseCodeDetails = details;
    e.protocol = rpc.protocol;
    e.tls = conn.downstream.tls ?? null;
    e.rpc = rpc;
    this.accessLog!.log(e);  }

  get routes(): RpcRouter {
    return this.config.routes;
  }

  private readonly codecs = new Map<string, RpcCodec>();

  /**
   * The codec sessions use: with the native I/O engine, header decoding runs in the addon
   * (batched per read) for protocols it knows; the node engine keeps the TypeScript decoders,
   * so the reference data path stays pure TypeScript.
   */
  codec(ts: RpcCodec): RpcCodec {
    let c = this.codecs.get(ts.name);
    if (!c) {
      c = this.rt.engine.name === 'native' && hasNativeDecoder(ts.name) ? nativeCodec(ts) : ts;
      this.codecs.set(ts.name, c);
    }
    return c;
  }

  pool(codec: RpcCodec): RpcConnPool {
    let p = this.pools.get(codec.name);
    if (!p) {
      p = new RpcConnPool(
        codec,
        this.config.maxFrameBytes,
        this.config.upstreamHeartbeatMs,
        (kind) => {
          if (kind === FrameKind.HEARTBEAT) this.stats.upstream_heartbeat.value++;
          else this.stats.response_unmatched.value++;
        },
        this.directIo,
      );
      this.pools.set(codec.name, p);
    }
    return p;
  }

  onNewConnection(conn: ConnectionContext): void {
    if (!conn.adopted) this.stats.cx_total.value++; // a handed-over one was counted already
    this.stats.cx_active.value++;
    const engine = this.rt.engine;
    // The native engine reads client sockets with the addon's batch reader where it can (one
    // JS call per loop turn for every socket's reads); TLS and the node engine read a stream.
    let session: RpcSession | null = null;
    const direct = this.directIo ? (engine.streamWithReader?.(conn.downstream, (d) => session!.onBatchBytes(d), (b, o, e) => session!.onBatchRead(b, o, e)) ?? null) : null;
    session = new RpcSession(this, conn, direct ?? engine.stream(conn.downstream), direct !== null);
  }

  /**
   * Sockets read by the addon's batch reader and written with direct sends (native engine; the
   * node engine stays the all-streams reference, as does STRAIT_RPC_IO=stream).
   */
  get directIo(): boolean {
    return rpcDirectIo && this.rt.engine.name === 'native';
  }

  /** Open client connections: drain tells them to leave; retirement waits for them. */
  private readonly sessions = new Set<RpcSession>();
  /** The listener is draining: sessions tell their clients to go elsewhere where they can. */
  draining = false;
  private retired = false;

  /** Drain started: Dubbo clients get a READONLY event (Bolt and Thrift have no such signal). */
  announceDrain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const s of this.sessions) s.announceDrain();
  }

  /** No new connections come here: the upstream pools drain once the last session ends. */
  retire(): void {
    this.retired = true;
    if (this.sessions.size === 0) this.retirePools();
  }

  sessionStarted(s: RpcSession): void {
    this.sessions.add(s);
  }

  /** A session ended (closed, or handed over to a new process). */
  sessionEnded(s: RpcSession): void {
    this.sessions.delete(s);
    if (this.retired && this.sessions.size === 0) this.retirePools();
  }

  private retirePools(): void {
    for (const p of this.pools.values()) p.retire();
    this.pools.clear();
  }
}

/**
 * `b` equals `buf[off, off + len)`. Names are short: a byte loop beats Buffer.compare's call
 * into C++ (a third of the cache's time in the profile) up to a few dozen bytes.
 */
function sameBytes(b: Buffer, buf: Buffer, off: number, len: number): boolean {
  if (len > 48) return buf.compare(b, 0, len, off, off + len) === 0;
  for (let i = 0; i < len; i++) if (b[i] !== buf[off + i]) return false;
  return true;
}

/**
 * Client reads copied out of the batch reader's arena land one after another in a slab, never
 * rewritten, instead of a Buffer each (an ArrayBuffer and its wrapper per read were a good part
 * of the read path's cost). A call in flight keeps its slab alive: under slow providers that is
 * at most 32 KiB per call (reads over 8 KiB get a Buffer of their own), within what a stream
 * read of up to 64 KiB kept per call.
 */
const SLAB_BYTES = 32 * 1024;
let kept = Buffer.allocUnsafeSlow(SLAB_BYTES);
let keptAt = 0;

/** Copies buf[off, end) to `kept` (a fresh Buffer for a big read); returns where it starts. */
function keepRead(buf: Buffer, off: number, end: number): number {
  const len = end - off;
  if (len > SLAB_BYTES / 4) {
    kept = Buffer.allocUnsafeSlow(len);
    keptAt = len; // full: the next read starts a new slab
    buf.copy(kept, 0, off, end);
    return 0;
  }
  if (keptAt + len > kept.length) {
    kept = Buffer.allocUnsafeSlow(SLAB_BYTES);
    keptAt = 0;
  }
  const at = keptAt;
  buf.copy(kept, at, off, end);
  keptAt = at + len;
  return at;
}

/** Strings decoded from frames, cached per connection: one client sends the same few names. */
class FieldCache {
  private bytes: Buffer | null = null;
  private str = '';
  get(buf: Buffer, off: number, len: number): string {
    if (off < 0) return '';
    const b = this.bytes;
    if (b !== null && b.length === len && sameBytes(b, buf, off, len)) return this.str;
    this.bytes = Buffer.from(buf.subarray(off, off + len));
    this.str = this.bytes.toString('utf8');
    return this.str;
  }
}

/** One client connection: frames in, routed calls out, responses mapped back. */
class RpcSession {
  private codec: RpcCodec | null;
  private framer: Framer | null = null;
  // Calls in flight, swap-removed by each call's `slot`. Not a Set, for the reason the upstream
  // call table is not a Map (upstream.ts): a Set churned per call kept dead calls alive.
  private readonly active: (Call | null)[] = [];
  private activeCount = 0;
  private closed = false;
  // The request being routed: the view below reads it lazily.
  private curBuf: Buffer = Buffer.alloc(0);
  private curOff = 0;
  private curHdr: Int32Array = new Int32Array(H.SIZE);
  private readonly ifaceCache = new FieldCache();
  private readonly versionCache = new FieldCache();
  private readonly methodCache = new FieldCache();
  private readonly groupCache = new FieldCache();
  private readonly view: RpcRequestView = {
    iface: () => this.ifaceCache.get(this.curBuf, this.curHdr[H.SERVICE_OFF]!, this.curHdr[H.SERVICE_LEN]!),
    version: () => this.versionCache.get(this.curBuf, this.curHdr[H.VERSION_OFF]!, this.curHdr[H.VERSION_LEN]!),
    method: () => {
      if (this.curHdr[H.METHOD_OFF]! < 0) this.codec!.decodeLazy(this.curBuf, this.curOff, this.curHdr, 'method');
      return this.methodCache.get(this.curBuf, this.curHdr[H.METHOD_OFF]!, this.curHdr[H.METHOD_LEN]!);
    },
    group: () => {
      if (this.curHdr[H.GROUP_OFF]! < 0) this.codec!.decodeLazy(this.curBuf, this.curOff, this.curHdr, 'group');
      return this.groupCache.get(this.curBuf, this.curHdr[H.GROUP_OFF]!, this.curHdr[H.GROUP_LEN]!);
    },
    // Bolt header-map entries and Dubbo attachments; a walk per lookup, only for routes that match headers.
    header: (name: string) => this.codec!.lookup(this.curBuf, this.curOff, this.curHdr, name),
    // Dubbo arguments (params_match routes): a body walk per call, only for routes that ask.
    param: (index: number) => this.codec!.param?.(this.curBuf, this.curOff, this.curHdr, index),
  };

  constructor(
    private readonly filter: RpcProxyFilter,
    private readonly conn: ConnectionContext,
    private readonly socket: net.Socket,
    /** Bytes come through onBatchRead (IoEngine.streamWithReader): the socket emits no 'data'. */
    private readonly direct = false,
  ) {
    filter.sessionStarted(this);
    if (filter.config.maxRequestsPerConnection) this.requestsLeft = filter.config.maxRequestsPerConnection;
    // Read by the batch reader (not its per-read fallback): writes leave when the batch ends.
    this.batched = direct && batchRead(socket);
    if (filter.directIo) directWrites(socket);
    this.codec = filter.config.codec === null ? null : filter.codec(getCodec(filter.config.codec)!);
    if (this.codec) this.framer = this.newFramer(this.codec);
    conn.abort = () => socket.destroy();
    conn.handover = () => this.handover();
    if (!direct) socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
    if (conn.initialData) this.onData(conn.initialData);
    // Accepted while the listener was already draining (TLS or PROXY header still being read).
    if (filter.draining) this.announceDrain();
  }

  private drainAnnounced = false;
  private readonly batched: boolean;

  /** A read from the engine's reader as a Buffer of its own (the engine's fallbacks). */
  onBatchBytes(d: Buffer): void {
    if (this.batched) inReadBatch(null);
    this.onData(d);
  }

  /**
   * A read from the engine's reader, valid during this call only. Calls keep their frame's
   * bytes (retries, local replies), so the read is copied once, into the shared slab.
   */
  onBatchRead(buf: Buffer, off: number, end: number): void {
    if (this.batched) inReadBatch(null);
    if (this.framer === null) return this.onData(Buffer.from(buf.subarray(off, end))); // AUTO, still sniffing
    const at = keepRead(buf, off, end);
    this.framer.pushAt(kept, at, at + end - off, true);
  }

  /**
   * The proxy is draining: a Dubbo client is told the channel is read-only, as a provider that
   * shuts down tells it, so it sends its next calls to other addresses instead of waiting for
   * the drain time to cut it off. Bolt and Thrift have no such event: their clients stay.
   */
  announceDrain(): void {
    if (this.drainAnnounced || this.closed || !this.codec) return; // AUTO: announced once detected
    this.drainAnnounced = true;
    if (this.codec.name === 'dubbo') {
      this.filter.stats.drain_readonly_sent.value++;
      corkedWrite(this.socket, DUBBO_READONLY_EVENT);
    }
  }

  private newFramer(codec: RpcCodec): Framer {
    return new Framer(codec, this.filter.config.maxFrameBytes, (buf, off, hdr) => this.onFrame(buf, off, hdr), (code) => {
      this.filter.stats.request_decoding_error.value++;
      log.warn({ error: decodeErrorName(code), protocol: codec.name, remote: this.conn.downstream.remote.address }, 'malformed frame; closing the connection');
      this.socket.destroy();
    });
  }

  private onData(d: Buffer): void {
    if (!this.framer) {
      // AUTO: hold the first bytes until they name one protocol (a few bytes at most).
      const head = this.sniffed ? Buffer.concat([this.sniffed, d]) : d;
      const detected = detectProtocol(head);
      const codec = detected ? this.filter.codec(detected) : detected;
      if (codec === null && head.length < 64) {
        this.sniffed = head;
        return;
      }
      this.sniffed = null;
      if (!codec) {
        this.filter.stats.request_decoding_error.value++;
        log.warn({ remote: this.conn.downstream.remote.address }, 'no RPC protocol recognised; closing the connection');
        this.socket.destroy();
        return;
      }
      this.codec = codec;
      this.framer = this.newFramer(codec);
      if (this.filter.draining) this.announceDrain();
      d = head;
    }
    this.framer.push(d);
  }

  private sniffed: Buffer | null = null;

  private onFrame(buf: Buffer, off: number, hdr: Int32Array): void {
    const codec = this.codec!;
    const st = this.filter.stats;
    const kind = hdr[H.KIND]!;
    if (kind === FrameKind.HEARTBEAT) {
      st.request_heartbeat.value++;
      corkedWrite(this.socket, codec.heartbeatResponse(buf, off, hdr));
      return;
    }
    if (kind !== FrameKind.REQUEST && kind !== FrameKind.ONEWAY) return; // stray responses/events from a client
    // Past max_requests_per_connection: calls already read behind the last one are not served.
    if (this.endWhenIdle) return;
    if (this.requestsLeft > 0 && --this.requestsLeft === 0) this.lastRequest();
    st.request.value++;
    if (kind === FrameKind.ONEWAY) st.request_oneway.value++;
    const ext = this.filter.ext;
    if (ext) ext.onRequest(kind);
    this.curBuf = buf;
    this.curOff = off;
    this.curHdr = hdr;
    if (this.conn.authorizeRpc && !this.conn.authorizeRpc(this.view)) return void this.socket.destroy(); // network RBAC refused this call
    const route = this.filter.routes.route(this.view);
    if (!route) return this.noRoute(codec, buf, off, hdr, kind);
    // Traced and sampled: the call sends a copy of the frame that carries the proxy's span.
    const trace = this.filter.tracer ? this.filter.tracer.start(codec, buf, off, hdr, this.view, this.conn.downstream) : null;
    let call: Call;
    if (ext) call = this.extendedCall(ext, route, buf, off, hdr, kind === FrameKind.ONEWAY);
    else call = trace?.frame ? new Call(this, route, trace.frame, 0, trace.frameHdr!, kind === FrameKind.ONEWAY) : new Call(this, route, buf, off, hdr, kind === FrameKind.ONEWAY);
    if (trace) call.trace = trace;
    const rl = this.filter.rateLimit;
    if (!rl) return call.start();
    this.startLimited(call, rl, codec, buf, off, hdr);
  }

  /** No route for the call: a local reply (not for a one-way call), counted. Off onFrame's path to keep it small. */
  private noRoute(codec: RpcCodec, buf: Buffer, off: number, hdr: Int32Array, kind: number): void {
    this.filter.stats.local_response_no_route.value++;
    const ext = this.filter.ext;
    if (ext) ext.onNoRoute();
    if (kind !== FrameKind.REQUEST) return;
    if (ext) ext.onLocalReply('no_route', null);
    const reply = codec.localReply(buf, off, hdr, 'no_route', `no route for ${this.view.iface()}:${this.view.version()}#${this.view.method()}`);
    if (this.filter.accessLog) this.filter.logCall(this.conn, Date.now(), this.callFacts(), null, null, 'NR', statusOf(codec, reply), 'no_route', hdr[H.FRAME_LEN]!, reply.length);
    this.reply(reply);
  }

  /** A call under the filter's rate limit: started now with a permit, or when one frees up. */
  private startLimited(call: Call, rl: NonNullable<RpcProxyFilter['rateLimit']>, codec: RpcCodec, buf: Buffer, off: number, hdr: Int32Array): void {
    // Priority and source application are read now, while the frame's header is current.
    const levels = rl.config.limiter.levels;
    const raw = rl.config.priorityKey ? codec.lookup(buf, off, hdr, rl.config.priorityKey) : undefined;
    const p = raw === undefined ? NaN : Number(raw);
    const priority = Number.isInteger(p) && p >= 0 ? Math.min(p, levels - 1) : levels - 1;
    const limiter = rl.keyed ? rl.keyed.for(codec.lookup(buf, off, hdr, rl.config.sourceAppKey) ?? '') : rl.single!;
    if (limiter.tryAcquire(priority)) return call.start(limiter);
    limiter.acquireCb(priority, rl.config.limiter.maxWaitMs, (ok) => (ok ? call.start(limiter) : call.rateLimited()));
  }

  /**
   * A call of a protocol filter with an extension: its subset criteria may come from the
   * request, and its frame may be rewritten (then sent as a copy with its own header slots).
   */
  private extendedCall(ext: RpcExtension, route: RpcRoute, buf: Buffer, off: number, hdr: Int32Array, oneway: boolean): Call {
    const md = ext.callMetadata(route, buf, off, hdr);
    const frame = ext.rewrite(route, buf, off, hdr);
    let call: Call;
    if (frame) {
      const h = new Int32Array(H.SIZE);
      this.codec!.decodeHeader(frame, 0, frame.length, frame.length, h);
      call = new Call(this, route, frame, 0, h, oneway, md);
    } else call = new Call(this, route, buf, off, hdr, oneway, md);
    return call;
  }

  /** The routing facts of the frame being routed, for the access log. */
  callFacts(): RpcLogInfo {
    const h = this.curHdr;
    return {
      protocol: this.codec!.name,
      iface: this.view.iface(),
      method: this.view.method(),
      version: this.view.version(),
      // Bolt ids are u32 in ID_LO; Dubbo's int64 is split across ID_HI and ID_LO.
      requestId: ((BigInt(h[H.ID_HI]!) << 32n) | BigInt(h[H.ID_LO]! >>> 0)).toString(),
    };
  }

  get connection(): ConnectionContext {
    return this.conn;
  }

  reply(frame: Buffer, off = 0, len = frame.length): void {
    if (this.closed) return;
    corkedWrite(this.socket, frame, off, len);
    // A client that does not read its responses stops being read: its unsent replies stay
    // bounded by the buffer limit plus what it already has in flight.
    if (unsentBytes(this.socket) > BUFFER_LIMIT) this.holdUntilDrained(this.socket);
  }

  /** Stops reading the client until `sink` (its own socket or an upstream one) drains. */
  holdUntilDrained(sink: net.Socket): void {
    if (this.held.has(sink)) return;
    this.held.add(sink);
    this.socket.pause();
    holdDrain(sink, 1);
    sink.once('drain', () => this.release(sink));
    sink.once('close', () => this.release(sink));
  }

  private release(sink: net.Socket): void {
    if (!this.held.delete(sink)) return;
    holdDrain(sink, -1);
    if (this.held.size === 0 && !this.inflightHold && !this.closed) this.socket.resume();
  }

  private readonly held = new Set<net.Socket>();

  get rpc(): RpcProxyFilter {
    return this.filter;
  }

  get protocol(): RpcCodec {
    return this.codec!;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  track(c: Call, on: boolean): void {
    if (on) {
      if (c.slot >= 0) return;
      c.slot = this.activeCount;
      if (this.activeCount === this.active.length) this.active.push(c);
      else this.active[this.activeCount] = c;
      this.activeCount++;
      this.filter.stats.request_active.value++;
      // Answers to calls in flight will land in this client's socket: cap how many it may have.
      if (this.activeCount >= MAX_CALLS_PER_CONNECTION && !this.inflightHold) {
        this.inflightHold = true;
        this.socket.pause();
      }
    } else if (c.slot >= 0 && this.active[c.slot] === c) {
      // The last call takes the leaving one's slot; the emptied slot is cleared, not trimmed.
      const last = this.active[--this.activeCount]!;
      this.active[this.activeCount] = null;
      if (last !== c) {
        this.active[c.slot] = last;
        last.slot = c.slot;
      }
      c.slot = -1;
      this.filter.stats.request_active.value--;
      // The answer is written after this; end the connection only once it has been. (A method,
      // not a closure here: a closure over `this` would cost track a context on every call.)
      if (this.endWhenIdle && this.activeCount === 0) this.endSoon();
      if (this.inflightHold && this.activeCount < MAX_CALLS_PER_CONNECTION / 2) {
        this.inflightHold = false;
        if (this.held.size === 0 && !this.closed) this.socket.resume();
      }
    }
  }

  private inflightHold = false;

  /** Calls this connection may still make (max_requests_per_connection); 0 = no limit (a small integer field either way). */
  private requestsLeft = 0;
  private endWhenIdle = false;

  /**
   * The connection's last allowed call arrived: the client is read no further, and the
   * connection ends (after the answers are written) once its calls are done, as Envoy does.
   */
  private lastRequest(): void {
    this.socket.pause();
    this.endWhenIdle = true;
    this.filter.ext?.onMaxRequests();
    // A call answered at once (no route, one-way) is never tracked: check once this turn ends.
    setImmediate(() => this.endIfIdle());
  }

  private endSoon(): void {
    setImmediate(() => this.endIfIdle());
  }

  private endIfIdle(): void {
    if (!this.endWhenIdle || this.activeCount > 0 || this.closed) return;
    // Answers still in the write batch go out first (its flush is due this turn too).
    if (batchPending(this.socket)) return void setImmediate(() => this.endIfIdle());
    this.socket.end();
  }
  private lbCtx: LbContext | null = null;

  // The upstream connection the last call went to: a client's calls mostly go to one host, and
  // reusing it while it takes calls skips the pool's two Map lookups per call.
  private lastHost: Host | null = null;
  private lastConn: RpcUpstreamConn | null = null;

  /** The pool's connection to `host` (the same one pool.get would return). */
  upstream(cluster: Cluster, host: Host): RpcUpstreamConn {
    const c = this.lastConn;
    if (c !== null && this.lastHost === host && c.takesCalls) return c;
    const n = this.filter.pool(this.codec!).get(cluster, host);
    this.lastHost = host;
    this.lastConn = n;
    return n;
  }

  // Call timeouts: one timer per session, due at the earliest deadline of its calls in flight
  // (a Timeout, a closure and timer-list work per call were a good part of each call's garbage).
  private sweepTimer: NodeJS.Timeout | null = null;
  /** performance.now() when the armed sweep runs; Infinity when none is armed. */
  private sweepAt = Infinity;
  private readonly onSweep = (): void => this.sweep();

  /** A call in flight must be answered by `deadline` (performance.now() ms). */
  watchDeadline(deadline: number): void {
    // A sweep due before this deadline re-arms for it; one due a little after answers it late.
    if (deadline >= this.sweepAt - DEADLINE_SLACK_MS) return;
    this.armSweep(deadline, performance.now());
  }

  private armSweep(at: number, now: number): void {
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepAt = at;
    this.sweepTimer = setTimeout(this.onSweep, Math.max(1, Math.ceil(at - now)));
  }

  private stopSweep(): void {
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    this.sweepAt = Infinity;
  }

  /** Answers the calls past their deadline and re-arms for the earliest one left. */
  private sweep(): void {
    this.sweepTimer = null;
    this.sweepAt = Infinity;
    if (this.closed) return;
    // Timers run on the loop's cached clock, which can trail performance.now() a little.
    const now = performance.now() + 1;
    let next = Infinity;
    // Backwards: a call that times out is swap-removed, and the one moved into its slot was seen.
    for (let i = this.activeCount - 1; i >= 0; i--) {
      if (i >= this.activeCount) continue;
      const c = this.active[i]!;
      if (c.timeoutMs === 0) continue;
      const d = c.t0 + c.timeoutMs;
      if (d <= now) c.onTimeout();
      else if (d < next) next = d;
    }
    if (next !== Infinity && !this.closed) this.armSweep(next, now - 1);
  }

  /** One LbContext per connection, reset per pick: the data path allocates none per call. */
  lbContext(route: RpcRoute, md: MetadataMatch | null, attempt: number, buf: Buffer, off: number, hdr: Int32Array): LbContext {
    const c = (this.lbCtx ??= new LbContext()).reset();
    c.metadataMatch = md;
    // The hash is recomputed per pick from the call's own frame: no per-call state to keep.
    if (route.hash) hashRpcCall(route.hash, c, this.codec!, buf, off, hdr, this.conn.downstream.remote.family === 'unix' ? '' : this.conn.downstream.remote.address);
    c.attempt = attempt;
    return c;
  }

  /**
   * Hot restart: between calls, the client's socket moves to the new process with the bytes of
   * any partial frame; the client sees nothing. Mid-call connections stay until they are idle.
   */
  private handover(): Handover | null {
    // Bytes the batch reader took this turn but has not handed over yet belong in `unread`.
    if (this.direct) http1BatchReader()?.flush();
    // Between calls only, and with every reply already handed to the kernel.
    if (this.closed || this.activeCount > 0 || unsentBytes(this.socket) > 0) return null;
    // TLS state cannot move between processes: such connections finish here.
    if ((this.socket as { encrypted?: boolean }).encrypted) return null;
    const fd = (this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) return null;
    const copy = native().upgrade.dup(fd);
    const unread = this.framer ? this.framer.takeRest() : (this.sniffed ?? Buffer.alloc(0));
    this.stopSweep();
    // Closing our copy of the fd sends nothing to the client: the new process holds the socket.
    this.closed = true;
    this.filter.stats.cx_active.value--;
    this.socket.destroy();
    this.conn.done();
    this.filter.sessionEnded(this);
    return { fd: copy, unread };
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopSweep();
    const st = this.filter.stats;
    st.cx_active.value--;
    if (this.activeCount) st.cx_destroy_remote_with_active_rq.value++;
    for (const c of this.active.slice(0, this.activeCount)) c!.cancel();
    this.conn.done();
    this.filter.sessionEnded(this);
  }
}

/** The tries of a call that has none (shared, never written to). */
const NO_TRIES: Try[] = [];

/** One try of a call on one upstream connection; a hedged call has several at once. */
class Try implements PendingCall {
  timer: NodeJS.Timeout | null = null;
  id = 0;
  constructor(
    readonly call: Call,
    readonly conn: RpcUpstreamConn,
    readonly cluster: Cluster,
    private readonly isRetry: boolean,
  ) {}
  onResponse(buf: Buffer, off: number, hdr: Int32Array): void {
    this.call.onTryResponse(this, buf, off, hdr);
  }
  onFail(reason: 'connect' | 'reset'): void {
    this.call.onTryFail(this, reason);
  }
  /** Stops waiting on this try; a late response is dropped by the connection. */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.conn.forget(this.id);
    this.cluster.stats.upstream_rq_active.value--;
    const rm = this.cluster.breakers.at(this.call.priority);
    rm.addRequest(-1);
    if (this.isRetry) rm.addRetry(-1);
  }
}

/**
 * The cluster name the last pick found no cluster for (a route to a cluster not (yet) known),
 * read right after the pick by the same call: one value for the process, not a field per call.
 */
let missingCluster: string | null = null;

/**
 * One routed request until its response, a local reply, or its client leaving. Each try picks
 * its own host (per-request balancing); tries after the first send a copy of the frame, since
 * the first may still be queued on a socket and its id is rewritten per connection.
 */
class Call {
  /**
   * A copy of the frame's header slots, kept only for routes that read them again per pick
   * (hash, subset); a local reply re-decodes them from the frame instead.
   */
  private readonly hdr: Int32Array | null;
  private readonly frameLen: number;
  private readonly origHi: number;
  private readonly origLo: number;
  /** 0: none. Its session's sweep answers the call once `t0 + timeoutMs` has passed. */
  readonly timeoutMs: number;
  // NO_TRIES until the first try: an array literal of one then, not a push's 16-slot store.
  private tries: Try[] = NO_TRIES;
  private attempts = 0;
  private retries = 0;
  private done = false;
  private failedHosts: Host[] | null = null;
  /** Set only when the filter logs: when the call began and what it is. */
  private readonly facts: { start: number; rpc: RpcLogInfo } | null;
  /** The access log flag for a failure about to become a local reply (UF connect, UC reset). */
  private failFlag = '';
  /** performance.now() at the start (turnClock); with `timeoutMs`, the deadline (no second double per call). */
  readonly t0 = turnClock();
  /** The call's span when the filter traces and the call is sampled. */
  trace: RpcCallTrace | null = null;
  /** Its index in the session's calls in flight; -1 when not in flight. */
  slot = -1;

  /** The route's circuit-breaker priority, for its tries. */
  get priority(): RpcRoute['priority'] {
    return this.route.priority;
  }

  constructor(
    private readonly session: RpcSession,
    private readonly route: RpcRoute,
    private readonly buf: Buffer,
    private readonly off: number,
    hdr: Int32Array,
    private readonly oneway: boolean,
    /** The call's subset criteria: the route's, or merged with the request's own (thrift_proxy). */
    private readonly md: MetadataMatch | null = route.metadataMatch,
  ) {
    // The header array is reused for the next frame: copy it only when picks read it again.
    this.hdr = route.hash || route.metadataMatch ? hdr.slice() : null;
    this.frameLen = hdr[H.FRAME_LEN]!;
    this.origHi = hdr[H.ID_HI]!;
    this.origLo = hdr[H.ID_LO]!;
    // The tighter of the route's timeout and the caller's own (Bolt carries one per frame).
    const own = hdr[H.TIMEOUT_MS]! > 0 ? hdr[H.TIMEOUT_MS]! : 0;
    this.timeoutMs = route.timeoutMs > 0 && own > 0 ? Math.min(route.timeoutMs, own) : route.timeoutMs || own;
    this.facts = session.rpc.accessLog ? { start: Date.now(), rpc: session.callFacts() } : null;
  }

  private log(cluster: Cluster | null, host: Host | null, flags: string, code: number | null, details: string | null, tx: number): void {
    this.session.rpc.logCall(this.session.connection, this.facts!.start, this.facts!.rpc, cluster, host, flags, code, details, this.frameLen, tx);
  }

  /** `limiter`: the permit this call holds (released when it ends, for a concurrency limit). */
  start(limiter: PriorityLimiter | null = null): void {
    this.limiter = limiter?.config.maxConcurrent ? limiter : null;
    if (this.session.isClosed) {
      // The client left while the call waited for a permit.
      this.trace?.end(null, null, null, 'downstream_closed', true);
      this.limiter?.release();
      this.limiter = null;
      return;
    }
    if (this.oneway) {
      this.sendOneway();
      this.limiter?.release();
      this.limiter = null;
      return;
    }
    this.session.track(this, true);
    if (this.timeoutMs > 0) this.session.watchDeadline(this.t0 + this.timeoutMs);
    const initial = this.route.hedge?.initialRequests ?? 1;
    for (let i = 0; i < initial && !this.done; i++) this.sendTry();
  }

  /** Past its deadline (the session's sweep found it): answered with the protocol's timeout. */
  onTimeout(): void {
    if (this.done) return;
    this.session.rpc.stats.local_response_timeout.value++;
    for (const t of this.tries) t.cluster.stats.upstream_rq_timeout.value++;
    this.localReply('timeout', `upstream timeout after ${this.timeoutMs} ms`);
  }

  private sendOneway(): void {
    const host = this.pick();
    if (!host) return void this.trace?.end(null, null, null, 'no_upstream', true);
    const cluster = this.pickedCluster!;
    cluster.stats.upstream_rq_total.value++;
    this.session.upstream(cluster, host).send(this.buf, this.off, this.frameLen, null);
    this.trace?.end(cluster.name, host, null, null, false);
  }

  /** The cluster of the last successful pick() (kept in a field: no tuple per try). */
  private pickedCluster: Cluster | null = null;

  /** A host for the next try, or null; its cluster is left in `pickedCluster`. */
  private pick(): Host | null {
    const rpc = this.session.rpc;
    const name = this.route.clusters.pick();
    const cluster = rpc.rt.clusters.get(name);
    // Subset routing (metadata_match) goes through the session's reusable LB context.
    const ctx = this.md || this.route.hash ? this.session.lbContext(this.route, this.md, this.attempts, this.buf, this.off, this.hdr!) : null;
    let host = cluster?.pickHost(ctx) ?? null;
    // A retry or a backup goes to another host when there is one (Envoy's previous_hosts
    // predicate: what a user retrying a connect failure or hedging a slow host means), within
    // the route's host_selection_retry_max_attempts extra picks.
    // A hashing balancer steps away from the key's host only when told this is another attempt.
    const reselects = this.route.hostReselects;
    for (let i = 0; i < reselects && host && this.triedBefore(host); i++) host = cluster!.pickHost(ctx && ((ctx.attempt += 1), ctx));
    if (!cluster || !host) {
      if (cluster) cluster.stats.upstream_cx_none_healthy.value++;
      else missingCluster = name;
      return null;
    }
    this.pickedCluster = cluster;
    return host;
  }

  private triedBefore(host: Host): boolean {
    if (this.failedHosts?.includes(host)) return true;
    for (const t of this.tries) if (t.conn.host === host) return true;
    return false;
  }

  /** Sends one more try; answers locally when nothing can be sent and nothing is in flight. */
  private sendTry(isRetry = false): void {
    const rpc = this.session.rpc;
    missingCluster = null;
    const host = this.pick();
    if (!host) {
      if (this.tries.length === 0) this.noHostReply();
      return;
    }
    const cluster = this.pickedCluster!;
    const rm = cluster.breakers.at(this.route.priority);
    if (!rm.canRequest()) {
      cluster.stats.upstream_rq_pending_overflow.value++;
      if (this.tries.length === 0) {
        rpc.stats.local_response_overflow.value++;
        this.localReply('overflow', `cluster ${cluster.name} is over its max_requests`);
      }
      return;
    }
    const len = this.frameLen;
    const first = this.attempts === 0;
    const bytes = first ? this.buf : Buffer.from(this.buf.subarray(this.off, this.off + len));
    const off = first ? this.off : 0;
    this.attempts++;
    const conn = this.session.upstream(cluster, host);
    const t = new Try(this, conn, cluster, isRetry);
    if (isRetry) rm.addRetry(1);
    if (this.tries === NO_TRIES) this.tries = [t];
    else this.tries.push(t);
    rm.addRequest(1);
    cluster.stats.upstream_rq_total.value++;
    cluster.stats.upstream_rq_active.value++;
    t.id = conn.send(bytes, off, len, t);
    // A slow provider pushes back on the clients feeding it.
    if (conn.buffered > BUFFER_LIMIT) this.session.holdUntilDrained(conn.sink);
    const perTry = this.route.retry?.perTryTimeoutMs ?? 0;
    if (perTry > 0 && !this.done) t.timer = setTimeout(() => this.onPerTryTimeout(t), perTry);
  }

  private canRetry(cluster: Cluster): boolean {
    const retry = this.route.retry;
    if (!retry || this.retries >= retry.numRetries) return false;
    if (!cluster.breakers.at(this.route.priority).canRetry()) {
      cluster.stats.upstream_rq_retry_overflow.value++;
      return false;
    }
    return true;
  }

  private retry(cluster: Cluster): void {
    this.retries++;
    this.session.rpc.stats.upstream_rq_retry.value++;
    cluster.stats.upstream_rq_retry.value++;
    this.sendTry(true);
  }

  private drop(t: Try): void {
    const i = this.tries.indexOf(t);
    if (i >= 0) {
      this.tries.splice(i, 1);
      t.cancel();
    }
  }

  private onPerTryTimeout(t: Try): void {
    t.timer = null;
    if (this.done) return;
    t.cluster.stats.upstream_rq_per_try_timeout.value++;
    t.conn.host.outlier.putResult(OutlierResult.TIMEOUT);
    // Hedging keeps the slow try and races a backup against it; otherwise the try is abandoned
    // and retried when the policy says so (Envoy retries per-try timeouts on 5xx/gateway-error).
    const hedge = this.route.hedge?.onPerTryTimeout === true;
    if (!hedge) this.drop(t);
    const on = this.route.retry?.retryOn;
    const again = hedge || (on && (on.has('per-try-timeout') || on.has('5xx') || on.has('gateway-error')));
    if (again && this.canRetry(t.cluster)) this.retry(t.cluster);
    if (!this.done && this.tries.length === 0) {
      this.session.rpc.stats.local_response_timeout.value++;
      this.localReply('timeout', `upstream per-try timeout after ${this.route.retry!.perTryTimeoutMs} ms`);
    }
  }

  onTryResponse(t: Try, buf: Buffer, off: number, hdr: Int32Array): void {
    // Passive health first: even a response that lost the race says something about its host.
    t.conn.host.outlier.putResult(OUTLIER_OF[this.session.protocol.classify?.(hdr) ?? 'success']);
    if (this.done) return;
    this.finish();
    this.session.rpc.stats.response.value++;
    const codec = this.session.protocol;
    const ext = this.session.rpc.ext;
    if (ext) ext.onResponse(buf, off, hdr);
    this.trace?.end(t.cluster.name, t.conn.host, hdr[H.STATUS]!, null, (codec.classify?.(hdr) ?? 'success') !== 'success');
    codec.writeRequestId(buf, off, this.origHi, this.origLo);
    if (this.facts) this.log(t.cluster, t.conn.host, '', hdr[H.STATUS]!, null, hdr[H.FRAME_LEN]!);
    this.session.reply(buf, off, hdr[H.FRAME_LEN]!);
  }

  onTryFail(t: Try, reason: 'connect' | 'reset'): void {
    // (connect failures are reported by the connection itself, once, not once per waiting call)
    if (reason === 'reset') t.conn.host.outlier.putResult(OutlierResult.GATEWAY_FAILURE);
    if (this.done) return;
    this.drop(t);
    (this.failedHosts ??= []).push(t.conn.host);
    if (reason === 'reset') t.cluster.stats.upstream_rq_rx_reset.value++;
    // Retrying a call that may have reached the provider needs `reset` in retry_on.
    const on = this.route.retry?.retryOn;
    if (on && on.has(reason === 'connect' ? 'connect-failure' : 'reset') && this.canRetry(t.cluster)) this.retry(t.cluster);
    if (!this.done && this.tries.length === 0) {
      this.session.rpc.stats.local_response_no_upstream.value++;
      this.failFlag = reason === 'connect' ? 'UF' : 'UC';
      this.localReply('no_upstream', reason === 'connect' ? 'upstream connect failed' : 'upstream connection reset');
    }
  }


  /** Nothing to send to and nothing in flight: the local reply says whether the cluster or its hosts were missing. */
  private noHostReply(): void {
    this.session.rpc.stats.local_response_no_upstream.value++;
    const missing = missingCluster;
    if (missing !== null) this.localReply('no_upstream', `unknown cluster '${missing}'`, 'no_cluster');
    else this.localReply('no_upstream', 'no healthy upstream', 'no_host');
  }

  /** `cause`: why no host was picked, when that is why (thrift_proxy counts no_healthy_upstream and unknown_cluster). */
  private localReply(kind: LocalReplyKind, message: string, cause: 'no_host' | 'no_cluster' | null = null): void {
    if (this.done) return;
    this.finish();
    this.trace?.end(null, null, null, kind, true);
    if (this.oneway || this.session.isClosed) {
      if (this.facts) this.log(null, null, this.failFlag || LOCAL_REPLY_FLAGS[kind], null, kind, 0);
      return;
    }
    const ext = this.session.rpc.ext;
    if (ext) ext.onLocalReply(kind, cause);
    const codec = this.session.protocol;
    // Build from the frame but never write into it: its bytes may still sit in an upstream queue.
    let hdr = this.hdr;
    if (!hdr) {
      // The frame's bytes are intact but for the id, which the reply overwrites below.
      codec.decodeHeader(this.buf, this.off, this.off + this.frameLen, this.frameLen, replyHdr);
      hdr = replyHdr;
    }
    const reply = codec.localReply(this.buf, this.off, hdr, kind, message);
    codec.writeRequestId(reply, 0, this.origHi, this.origLo);
    if (this.facts) this.log(null, null, this.failFlag || LOCAL_REPLY_FLAGS[kind], statusOf(codec, reply), kind, reply.length);
    this.session.reply(reply);
  }

  private limiter: PriorityLimiter | null = null;

  /** Over the filter's rate limit: answered locally (one-way calls are dropped), never sent. */
  rateLimited(): void {
    this.session.rpc.stats.request_rate_limited.value++;
    this.trace?.end(null, null, null, 'rate_limited', true);
    if (this.oneway || this.session.isClosed) return;
    this.localReply('overflow', 'rate limited: the proxy is over its rate_limit for this priority');
  }

  private finish(): void {
    if (this.limiter) {
      this.limiter.release();
      this.limiter = null;
    }
    this.done = true;
    this.session.rpc.requestTime.record(turnClock() - this.t0);
    for (const t of this.tries) t.cancel();
    this.tries = NO_TRIES;
    this.session.track(this, false);
  }

  /** The client went away: drop the call; late responses are discarded. */
  cancel(): void {
    if (this.done) return;
    this.finish();
    this.trace?.end(null, null, null, 'downstream_closed', true);
    // DC: the client's connection ended first.
    if (this.facts) this.log(null, null, 'DC', null, 'downstream_closed', 0);
  }
}
