import net from 'node:net';
import { durationMs } from '../config/values.js';
import type { StatsOf } from '../observability/stats.js';
import { RoutingPriority, type BreakerState } from './circuit_breakers.js';
import type { Cluster, ClusterConnPools } from './cluster.js';
import type { Host } from './host.js';
import type { HTTP_CLUSTER_STATS } from './http_stats.js';
import { canSendNow, directFd, flushRanges, queueRange, sendKeptRange, sendTo } from '../protocols/http1/send.js';
import type { ClientSocket } from '../io/direct_socket.js';
import { HEAD_NOT_SENT } from '../protocols/http1/encoder.js';
import type { BodyFramer } from '../protocols/http1/body.js';
import { copyOut, http1BatchReader, inBatch, onBatchEnd, type Http1BatchReader } from '../protocols/http1/batch_reader.js';
import { BatchQueue } from '../protocols/http1/batch_queue.js';
import type { MessageHead } from '../protocols/http1/types.js';
import { now as clockNow } from '../protocols/http1/clock.js';

/**
 * What an upstream HTTP/1.1 connection reports to the exchange currently using it. Exactly one
 * exchange owns a busy connection; an idle connection has none.
 */
export interface Http1ConnUser {
  onUpstreamData(chunk: Buffer): void;
  /**
   * Optional: a read as `buf[off, end)`, valid only during the call (a reused read buffer); the
   * user copies what it keeps. Users without it get onUpstreamData with a copy.
   */
  onUpstreamRead?(buf: Buffer, off: number, end: number): void;
  /** The connection closed or failed while this user owned it. */
  onUpstreamClose(hadError: boolean): void;
}

/**
 * Every upstream socket reads into this one buffer (Node's `onread`), and each read is copied out
 * at once, so sharing it is safe: no Readable-stream plumbing and no 64 KiB ArrayBuffer per read,
 * and the copy handed on is owned by whoever keeps it (response heads, partial heads, writes).
 */
const READ_BUF = Buffer.allocUnsafe(64 * 1024);

/** Connections with a head queued by deferWriteRange, sent at the end of the batch (flushDeferred). */
const deferredConns = new BatchQueue<Http1UpstreamConn>();

function flushDeferredOf(c: Http1UpstreamConn): void {
  try {
    c.flushDeferred(true);
  } catch {
    // A write that throws (a socket torn down under it) costs that connection only.
    c.destroy();
  }
}

function flushDeferred(): void {
  try {
    deferredConns.drain(flushDeferredOf);
  } finally {
    flushRanges();
  }
}
onBatchEnd(flushDeferred);

/** One keep-alive connection to one host. */
export class Http1UpstreamConn {
  user: Http1ConnUser | null = null;
  /** After an upgrade: the bytes read go here as they are (the tunnel), no longer to a user. */
  private sink: ClientSocket | null = null;
  /** Requests this connection has carried (1 on its first). */
  uses = 0;
  closed = false;
  /** clock.ts now() when it last went idle (the pool's idle sweep); kept here, not in a Map, to save a Map write per request. */
  idleSince = 0;
  /** Where write() sends directly (src/protocols/http1/send.ts); -1: through the stream. */
  private readonly fd: number;
  /**
   * The last response head parsed on this connection, refilled by the next parse (H1Try): its
   * try is over by then, and whoever kept anything of it made a copy.
   */
  spareHead: MessageHead | null = null;
  /** The body framer of the response being read (H1Try's), reset per response; null until the first. */
  framer: BodyFramer | null = null;
  /**
   * A request head deferWriteRange queued for the end of the batch, deferred[deferredAt,
   * deferredAt + deferredLen); any other write sends it first.
   */
  private deferred: Buffer | null = null;
  private deferredAt = 0;
  private deferredLen = 0;

  constructor(
    readonly socket: net.Socket,
    readonly pool: Http1HostPool,
  ) {
    // Made once connected: the fd exists from then on.
    this.fd = directFd(socket);
    socket.on('close', (hadError) => {
      this.closed = true;
      const u = this.user;
      this.user = null;
      pool.onClosed(this);
      if (u) u.onUpstreamClose(hadError);
    });
    socket.on('error', () => {}); // 'close' follows and reports it
  }

  /** socket.write(b), sent directly when nothing is queued; false: wait for 'drain'. */
  write(b: Buffer): boolean {
    if (this.deferred !== null) this.flushDeferred();
    return sendTo(this.socket, this.fd, b);
  }

  /**
   * writeRange() at the end of the batch of reads being handled, when inside one (else now): the
   * heads of one batch then leave back to back. Whatever else is written to this connection first
   * (a body through write()) sends the head before it; destroy() drops it. The bytes must stay
   * as they are until then (a kept head, encodeHeadSendAt): no view is made of them.
   */
  deferWriteRange(buf: Buffer, at: number, len: number): void {
    if (!inBatch() || this.deferred !== null) {
      this.writeRange(buf, at, len);
      return;
    }
    this.deferred = buf;
    this.deferredAt = at;
    this.deferredLen = len;
    deferredConns.push(this);
  }

  /** write() for buf[at, at + len), bytes that stay as they are. */
  writeRange(buf: Buffer, at: number, len: number): boolean {
    if (this.deferred !== null) this.flushDeferred();
    return sendKeptRange(this.socket, this.fd, buf, at, len);
  }

  /**
   * Sends the deferred head, if any (flushDeferred at the batch's end, or a write behind it).
   * `queued` (the batch's end): the send is queued for the hook's one flushRanges call.
   */
  flushDeferred(queued = false): void {
    const b = this.deferred;
    if (b === null) return;
    this.deferred = null;
    if (this.closed) return;
    if (queued) queueRange(this.socket, this.fd, b, this.deferredAt, this.deferredLen, true);
    else sendKeptRange(this.socket, this.fd, b, this.deferredAt, this.deferredLen);
  }

  /** Drops a head deferWriteRange still holds; true when there was one (then nothing of it left). */
  dropDeferred(): boolean {
    if (this.deferred === null) return false;
    this.deferred = null;
    return true;
  }

  /** The fd a write may go to directly right now (encodeHeadSend), else -1: sendTo's rule. */
  sendFd(): number {
    return canSendNow(this.socket, this.fd) ? this.fd : -1;
  }

  /**
   * Finishes the write of buf[at, at + len) that encodeHeadSendAt began on sendFd(): `sent` is
   * lastHeadSent(). What the kernel did not take (all of it after an error, which the stream then
   * reports) goes through the stream, as in sendTo; nothing tried: writeRange().
   */
  wroteRange(buf: Buffer, at: number, len: number, sent: number): boolean {
    if (sent === len) return true;
    if (sent === HEAD_NOT_SENT) return this.writeRange(buf, at, len);
    return this.socket.write(buf.subarray(sent > 0 ? at + sent : at, at + len));
  }

  /** wroteRange() for a head that is a Buffer of its own. */
  wrote(b: Buffer, sent: number): boolean {
    if (sent === b.length) return true;
    if (sent === HEAD_NOT_SENT) return this.write(b);
    return this.socket.write(sent > 0 ? b.subarray(sent) : b);
  }

  /** The `onread` callback: `buf` is READ_BUF, valid only until this returns. */
  onRead(n: number, buf: Buffer): void {
    this.onReadAt(buf, 0, n);
  }

  /** Bytes read as `buf[off, end)`, valid only during this call (READ_BUF or the batch reader's arena). */
  onReadAt(buf: Buffer, off: number, end: number): void {
    const u = this.user;
    if (this.sink === null && u !== null && u.onUpstreamRead !== undefined) u.onUpstreamRead(buf, off, end);
    else this.onData(copyOut(buf, off, end));
  }

  /** Bytes read from the upstream (an owned Buffer): the user's, or the tunnel's after an upgrade. */
  onData(d: Buffer): void {
    const sink = this.sink;
    if (sink) {
      if (!sink.write(d)) {
        this.socket.pause();
        sink.once('drain', () => this.socket.resume());
      }
      return;
    }
    if (this.user) this.user.onUpstreamData(d);
    // Bytes on an idle connection answer nothing we sent: the connection is unusable.
    else this.destroy();
  }

  /**
   * The connection leaves HTTP (an upgrade): from now on its bytes go to `sink` with
   * backpressure, and its end ends `sink`. It never returns to the pool ('close' still counts it).
   */
  tunnelTo(sink: ClientSocket): void {
    this.user = null;
    this.sink = sink;
    this.socket.once('end', () => sink.end());
  }

  destroy(): void {
    this.deferred = null;
    if (!this.closed) this.socket.destroy();
  }
}

interface ConnBox {
  conn: Http1UpstreamConn | null;
}

// The socket's read callbacks live as long as the connection, so they are made here and not in
// connect(): a closure made there keeps connect()'s scope, and with it `done`, the first
// request's callback, and through it that exchange and its downstream connection, for as long
// as the pooled connection lives.

/** Node's onread for a socket the batch reader does not take: reads into the shared READ_BUF. */
function nodeOnRead(box: ConnBox): net.OnReadOpts {
  return {
    buffer: READ_BUF,
    callback: (n: number, buf: Uint8Array): boolean => {
      box.conn?.onRead(n, buf as Buffer);
      return true; // keep reading: pause() is how an exchange applies backpressure
    },
  };
}

/** Hands a connected socket to the batch reader, or back to Node's reads when it is not taken. */
function readThrough(reader: Http1BatchReader, socket: net.Socket, c: Http1UpstreamConn): void {
  if (reader.attach(socket, (d) => c.onData(d), (b, o, e) => c.onReadAt(b, o, e))) return;
  socket.on('data', (d: Buffer) => c.onData(d));
  socket.resume();
}

export type AcquireDone = (conn: Http1UpstreamConn | null, reason: 'ok' | 'connect_failure' | 'overflow', reused: boolean) => void;

interface Waiter {
  done: AcquireDone;
  cancelled: boolean;
}

/** Envoy's default when idle_timeout is unset in HttpProtocolOptions.common_http_protocol_options: one hour. */
const DEFAULT_IDLE_MS = 3_600_000;

/**
 * The pool set of one cluster and one routing priority (Envoy keeps a pool per priority too):
 * one host pool per host, limited by that priority's circuit breakers, which every protocol
 * sending to the cluster shares. max_connections bounds the sum over hosts,
 * max_pending_requests bounds the requests waiting for a connection.
 */
export class Http1ClusterPools implements ClusterConnPools {
  /** The cluster's resources at this pool's priority. */
  readonly rm: BreakerState;
  private readonly hosts = new Map<Host, Http1HostPool>();
  /** Pools of hosts that left (or of this retired cluster): late users share them, so their queue is served. */
  private readonly drained = new WeakMap<Host, Http1HostPool>();
  /**
   * The entry of `hosts` forHost() gave last: consecutive requests mostly go to the same host
   * (one host, or a pick that repeats), and the Map lookup was ~45 instructions a request.
   */
  private lastHost: Host | null = null;
  private lastPool: Http1HostPool | null = null;
  readonly idleTimeoutMs: number;

  constructor(
    readonly cluster: Cluster,
    readonly stats: StatsOf<typeof HTTP_CLUSTER_STATS>,
    readonly priority: RoutingPriority = RoutingPriority.DEFAULT,
  ) {
    const src = cluster.spec.source as Record<string, any> | undefined;
    this.rm = cluster.breakers.at(priority);
    // HttpProtocolOptions when given, else the deprecated cluster field (Envoy reads only one).
    const opts = src?.typed_extension_protocol_options?.['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
    const idle = (opts ? opts.common_http_protocol_options : src?.common_http_protocol_options)?.idle_timeout;
    this.idleTimeoutMs = idle === undefined || idle === null ? DEFAULT_IDLE_MS : Math.max(0, durationMs(idle)!);
    cluster.addConnPools(this);
  }

  forHost(host: Host): Http1HostPool {
    if (host === this.lastHost) return this.lastPool!;
    let p = this.hosts.get(host);
    if (p) {
      this.lastHost = host;
      this.lastPool = p;
      return p;
    }
    if (this.cluster.isRetired(host)) {
      // A request that picked a host just before it left (or holds a retired cluster) still gets
      // a connection, but one that closes after its exchange.
      p = this.drained.get(host);
      if (!p) {
        p = new Http1HostPool(this, host);
        p.drain();
        this.drained.set(host, p);
      }
      return p;
    }
    this.hosts.set(host, (p = new Http1HostPool(this, host)));
    return p;
  }

  /** Closes idle connections (shutdown, tests). Busy ones finish their exchange. */
  drain(): void {
    for (const p of this.hosts.values()) p.drainIdle();
  }

  drainHosts(_cluster: Cluster, hosts: readonly Host[] | null): void {
    for (const h of hosts ?? [...this.hosts.keys()]) {
      const p = this.hosts.get(h);
      if (!p) continue;
      p.drain();
      this.hosts.delete(h);
      this.drained.set(h, p);
      if (h === this.lastHost) this.lastHost = this.lastPool = null;
    }
  }
}


/** Keep-alive connections to one host: reuse the most recently idle first (warm, least likely closed by the peer's idle timer). */
export class Http1HostPool {
  private readonly idle: Http1UpstreamConn[] = [];
  private readonly waiters: Waiter[] = [];
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Host removed or cluster retired: no connection goes back to idle. */
  private draining = false;

  constructor(
    private readonly cluster: Http1ClusterPools,
    readonly host: Host,
  ) {}

  /**
   * Hands a connection to `done`: an idle one at once, a new one once connected, or queued when
   * the cluster is at max_connections. Returns a cancel function for the queued/connecting case.
   */
  acquire(connectTimeoutMs: number, done: AcquireDone): () => void {
    const c = this.takeIdle();
    if (c) {
      done(c, 'ok', true);
      return noop;
    }
    const cp = this.cluster;
    const rm = cp.rm;
    if (rm.canConnect()) return this.connect(connectTimeoutMs, done);
    cp.cluster.stats.upstream_cx_overflow.value++;
    if (!rm.canQueue()) {
      cp.stats.upstream_rq_pending_overflow.value++;
      done(null, 'overflow', false);
      return noop;
    }
    const w: Waiter = { done, cancelled: false };
    rm.addPending(1);
    cp.stats.upstream_rq_pending_total.value++;
    cp.stats.upstream_rq_pending_active.value++;
    this.waiters.push(w);
    // A queued request waits without its own deadline: the route timeout bounds it.
    return () => {
      if (w.cancelled) return;
      w.cancelled = true;
      this.unqueue(w);
    };
  }

  /**
   * An idle connection, counted as used, or null. The keep-alive fast path: callers try this
   * first and build no callback for `acquire` when it answers.
   */
  takeIdle(): Http1UpstreamConn | null {
    while (this.idle.length) {
      const c = this.idle.pop()!;
      if (c.closed) continue;
      c.uses++;
      return c;
    }
    return null;
  }

  private unqueue(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
    this.cluster.rm.addPending(-1);
    this.cluster.stats.upstream_rq_pending_active.value--;
  }

  private connect(timeoutMs: number, done: AcquireDone): () => void {
    const cp = this.cluster;
    const cs = cp.cluster.stats;
    const a = this.host.address;
    cp.rm.addConnection(1);
    cs.upstream_cx_total.value++;
    cp.stats.upstream_cx_http1_total.value++;
    this.host.counters.cx_total++;
    // Plain net sockets: the engine interface hands L7 filters only downstream streams today.
    const reader = http1BatchReader();
    // With the batch reader the socket never reads through Node: paused before it connects, it
    // is handed to the reader once connected. Otherwise Node reads into the shared READ_BUF.
    const box: ConnBox = { conn: null };
    const onread = reader ? undefined : nodeOnRead(box);
    const socket = a.family === 'unix' ? net.connect({ path: a.address, onread }) : net.connect({ host: a.address, port: a.port, noDelay: true, onread });
    if (reader) socket.pause();
    let settled = false;
    const timer = timeoutMs > 0 ? setTimeout(() => fail(true), timeoutMs) : null;
    const fail = (timedOut: boolean) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      socket.destroy();
      cp.rm.addConnection(-1);
      cs.upstream_cx_connect_fail.value++;
      if (timedOut) cs.upstream_cx_connect_timeout.value++;
      this.host.counters.cx_connect_fail++;
      done(null, 'connect_failure', false);
      // A failed connect frees a slot a queued request may use.
      this.serveWaiters();
    };
    socket.once('error', () => fail(false));
    socket.once('connect', () => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      socket.removeAllListeners('error');
      cs.upstream_cx_active.value++;
      this.host.counters.cx_active++;
      const c = (box.conn = new Http1UpstreamConn(socket, this));
      if (reader) readThrough(reader, socket, c);
      c.uses = 1;
      done(c, 'ok', false);
    });
    // Cancelled (timeout, client gone): not a connect failure, and nobody is waiting for `done`.
    return () => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      socket.destroy();
      cp.rm.addConnection(-1);
      this.serveWaiters();
    };
  }

  /**
   * Returns a connection after a complete exchange; `reusable` is false when either side said
   * close, `upstreamSaidClose` when the response did (Envoy's upstream_cx_close_notify).
   */
  release(c: Http1UpstreamConn, reusable: boolean, upstreamSaidClose = false): void {
    // Callers look the pool up by host; after a drain that may be a newer pool than the conn's.
    if (c.pool !== this) return c.pool.release(c, reusable, upstreamSaidClose);
    c.user = null;
    if (upstreamSaidClose) this.cluster.stats.upstream_cx_close_notify.value++;
    if (!reusable || c.closed) {
      c.destroy();
      return;
    }
    if (this.draining) {
      this.cluster.cluster.stats.upstream_cx_destroy_local.value++;
      c.destroy();
      return;
    }
    // A waiting request takes it directly, in arrival order.
    const w = this.nextWaiter();
    if (w) {
      c.uses++;
      w.done(c, 'ok', true);
      return;
    }
    this.idle.push(c);
    c.idleSince = clockNow();
    this.armSweep();
  }

  private nextWaiter(): Waiter | null {
    while (this.waiters.length) {
      const w = this.waiters[0]!;
      if (w.cancelled) {
        this.waiters.shift();
        continue;
      }
      this.unqueue(w);
      return w;
    }
    return null;
  }

  onClosed(c: Http1UpstreamConn): void {
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    const cp = this.cluster;
    cp.rm.addConnection(-1);
    cp.cluster.stats.upstream_cx_active.value--;
    cp.cluster.stats.upstream_cx_destroy.value++;
    this.host.counters.cx_active--;
    this.serveWaiters();
  }

  private serveWaiters(): void {
    const cp = this.cluster;
    while (cp.rm.canConnect()) {
      const w = this.nextWaiter();
      if (!w) return;
      this.connect(this.cluster.cluster.spec.connectTimeoutMs, w.done);
    }
  }

  private armSweep(): void {
    if (this.sweepTimer || this.cluster.idleTimeoutMs <= 0) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = null;
      const now = clockNow();
      for (const c of [...this.idle]) {
        if (!c.closed && now - c.idleSince >= this.cluster.idleTimeoutMs) {
          this.cluster.cluster.stats.upstream_cx_idle_timeout.value++;
          c.destroy();
        }
      }
      if (this.idle.length) this.armSweep();
    }, this.cluster.idleTimeoutMs);
    this.sweepTimer.unref();
  }

  drainIdle(): void {
    for (const c of [...this.idle]) c.destroy();
  }

  /**
   * Envoy's drain: idle connections close now, busy ones when their exchange ends; requests
   * still queued here get a connection that closes after use.
   */
  drain(): void {
    this.draining = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    const idle = this.idle.splice(0);
    for (const c of idle) {
      if (c.closed) continue;
      this.cluster.cluster.stats.upstream_cx_destroy_local.value++;
      c.destroy();
    }
  }
}

function noop(): void {}
