import http2 from 'node:http2';
import net from 'node:net';
import { durationMs } from '../config/values.js';
import { native } from '../native.js';
import type { StatsOf } from '../observability/stats.js';
import { h2Engine } from '../protocols/http2/engine.js';
import { H2SessionEnd, NativeH2ClientConnection } from '../protocols/http2/native_session.js';
import { RoutingPriority, type BreakerState } from './circuit_breakers.js';
import type { Cluster, ClusterConnPools } from './cluster.js';
import type { Host } from './host.js';
import type { HTTP_CLUSTER_STATS } from './http_stats.js';

type Obj = Record<string, any>;
const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** Which protocol a cluster speaks upstream: its own choice, or whatever the downstream used. */
export type UpstreamProtocol = 'http1' | 'http2' | 'downstream';

/**
 * Envoy's two ways to ask for HTTP/2 upstream: the deprecated cluster `http2_protocol_options`
 * and `typed_extension_protocol_options` with HttpProtocolOptions (explicit or downstream).
 */
export function upstreamProtocolOf(cluster: Cluster): UpstreamProtocol {
  const src = (cluster.spec.source ?? {}) as Obj;
  if (src.http2_protocol_options) return 'http2';
  const hpo = src.typed_extension_protocol_options?.[HPO] as Obj | undefined;
  if (hpo?.explicit_http_config?.http2_protocol_options) return 'http2';
  if (hpo?.use_downstream_protocol_config) return 'downstream';
  return 'http1';
}

/** Envoy's default when common_http_protocol_options.idle_timeout is unset: one hour. */
const DEFAULT_IDLE_MS = 3_600_000;

/**
 * common_http_protocol_options.idle_timeout of HttpProtocolOptions, or of the deprecated cluster
 * field when no HttpProtocolOptions is given (Envoy reads only one of them). 0 disables it.
 */
function idleTimeoutMsOf(cluster: Cluster): number {
  const src = (cluster.spec.source ?? {}) as Obj;
  const hpo = src.typed_extension_protocol_options?.[HPO] as Obj | undefined;
  const v = (hpo ? hpo.common_http_protocol_options : src.common_http_protocol_options)?.idle_timeout;
  return v === undefined || v === null ? DEFAULT_IDLE_MS : Math.max(0, durationMs(v)!);
}

/** The HTTP/2 settings a cluster asks for (max_concurrent_streams bounds streams per connection). */
function http2Options(cluster: Cluster): Obj {
  const src = (cluster.spec.source ?? {}) as Obj;
  const hpo = src.typed_extension_protocol_options?.[HPO] as Obj | undefined;
  return (src.http2_protocol_options ?? hpo?.explicit_http_config?.http2_protocol_options ?? hpo?.use_downstream_protocol_config?.http2_protocol_options ?? {}) as Obj;
}

/**
 * node:http2 keeps each session's open streams in a Map keyed by stream id and its not yet open
 * ones in a Set. Stream ids only grow, so every stream takes a fresh entry and V8 rebuilds those
 * tables whenever their entries run out; a rebuilt table that already sits in old space keeps its
 * stale entries and a link to its successor, so through every scavenge it holds each later stream
 * (and all that stream reaches) alive until the next mark-compact. On a busy session nearly every
 * request's objects were copied and promoted (perf-reports/2026-12-03-h2-session5.md, "Garbage
 * collection"). These replacements store streams in slots that are cleared, never rebuilt per
 * stream. They provide exactly what node:http2 calls on them (get/set/delete/add/size/forEach).
 */
const SLOTS_INITIAL = 16;
/** Beyond this many slots (48 KiB), a stream whose slot is taken goes to a plain Map: a peer that
 * holds streams at chosen ids cannot grow the table further. */
const SLOTS_MAX = 4096;

export class StreamSlots<V> {
  private vals: (V | undefined)[] = new Array<V | undefined>(SLOTS_INITIAL).fill(undefined);
  private ids = new Int32Array(SLOTS_INITIAL);
  private mask = SLOTS_INITIAL - 1;
  private n = 0;
  private overflow: Map<number, V> | null = null;

  get size(): number {
    return this.n + (this.overflow ? this.overflow.size : 0);
  }

  get(id: number): V | undefined {
    // Ids of one side have the same parity, so id >>> 1 spreads consecutive streams over slots.
    const i = (id >>> 1) & this.mask;
    if (this.ids[i] === id) return this.vals[i];
    return this.overflow === null ? undefined : this.overflow.get(id);
  }

  set(id: number, v: V): this {
    if (this.overflow !== null && this.overflow.has(id)) {
      this.overflow.set(id, v);
      return this;
    }
    for (;;) {
      const i = (id >>> 1) & this.mask;
      const held = this.ids[i];
      if (held === 0 || held === id) {
        if (held === 0) this.n++;
        this.ids[i] = id;
        this.vals[i] = v;
        return this;
      }
      if (this.vals.length >= SLOTS_MAX) {
        (this.overflow ??= new Map()).set(id, v);
        return this;
      }
      this.grow();
    }
  }

  delete(id: number): boolean {
    const i = (id >>> 1) & this.mask;
    if (this.ids[i] === id) {
      this.ids[i] = 0;
      this.vals[i] = undefined;
      this.n--;
      return true;
    }
    return this.overflow !== null && this.overflow.delete(id);
  }

  forEach(fn: (v: V, id: number, t: this) => void): void {
    // Callers destroy streams from fn, which deletes them here: walk a snapshot and, like a
    // Map, skip entries deleted meanwhile.
    const ids: number[] = [];
    for (let i = 0; i < this.ids.length; i++) {
      const id = this.ids[i] as number;
      if (id !== 0) ids.push(id);
    }
    if (this.overflow) for (const id of this.overflow.keys()) ids.push(id);
    for (const id of ids) {
      const v = this.get(id);
      if (v !== undefined) fn(v, id, this);
    }
  }

  /** Doubles the table (only when two streams in flight want one slot: a rare, slow stream). */
  private grow(): void {
    const ids = this.ids;
    const vals = this.vals;
    const cap = vals.length * 2;
    this.ids = new Int32Array(cap);
    this.vals = new Array<V | undefined>(cap).fill(undefined);
    this.mask = cap - 1;
    this.n = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (id !== 0) this.set(id, vals[i] as V);
    }
  }
}

/** The session's streams not yet given an id: usually none or one, so a short array. */
class PendingStreams<V> {
  private list: V[] = [];

  get size(): number {
    return this.list.length;
  }

  add(v: V): this {
    if (!this.list.includes(v)) this.list.push(v);
    return this;
  }

  has(v: V): boolean {
    return this.list.includes(v);
  }

  delete(v: V): boolean {
    const l = this.list;
    const i = l.indexOf(v);
    if (i < 0) return false;
    const last = l.pop() as V;
    if (i < l.length) l[i] = last;
    return true;
  }

  forEach(fn: (v: V, v2: V, t: this) => void): void {
    for (const v of this.list.slice()) if (this.list.includes(v)) fn(v, v, this);
  }
}

let kSessionState: symbol | null | undefined;

/**
 * Puts the slot tables in place of a fresh session's stream Map and Set. Leaves the session as it
 * is when it does not look like the node:http2 this was written against (another Node version),
 * or when it already has streams.
 */
export function useStreamSlots(session: http2.Http2Session): void {
  if (kSessionState === undefined) {
    kSessionState = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state') ?? null;
  }
  if (kSessionState === null) return;
  const st = (session as unknown as Record<symbol, Obj | undefined>)[kSessionState];
  // node's primordial SafeMap/SafeSet are not instanceof Map/Set: recognise them by name.
  if (!st || st.streams?.constructor?.name !== 'SafeMap' || st.pendingStreams?.constructor?.name !== 'SafeSet') return;
  if (st.streams.size !== 0 || st.pendingStreams.size !== 0) return;
  st.streams = new StreamSlots();
  st.pendingStreams = new PendingStreams();
}

/** An upstream HTTP/2 connection: node:http2's, or the addon's (`--h2-engine native`, plaintext). */
export type H2UpstreamSession = http2.ClientHttp2Session | NativeH2ClientConnection;

export type H2AcquireDone = (session: H2UpstreamSession | null, reason: 'ok' | 'connect_failure' | 'overflow') => void;

/** -ETIMEDOUT from the addon's connect(). */
const ETIMEDOUT = -110;

interface H2Conn {
  /** null only while a native connection is connecting (node's exists from the start). */
  session: H2UpstreamSession | null;
  connected: boolean;
  streams: number;
  waiters: H2AcquireDone[];
  /** Out of the pool: takes no new stream, closes once its streams are done. */
  draining: boolean;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (native connections; node's queue past it). */
  peerMaxStreams: number;
  /** Out of `list` and uncounted (dropConn ran). */
  dropped: boolean;
  /** Date.now() when its last stream ended (the idle sweep reads it when `streams` is 0). */
  idleSince: number;
}

/** A request waiting for stream capacity (every connection full, the cluster at max_connections). */
interface PendingStream {
  done: H2AcquireDone;
  /** Served or cancelled: its cancel function does nothing more. */
  settled: boolean;
}

function noop(): void {}

let nativeH2: boolean | undefined;
function hasNativeH2(): boolean {
  if (nativeH2 === undefined) {
    try {
      nativeH2 = typeof native().H2Session === 'function';
    } catch {
      nativeH2 = false;
    }
  }
  return nativeH2;
}

/** IP literals and unix paths connect through the addon; a host name keeps node:http2 (its DNS). */
function nativeConnectable(a: Host['address']): boolean {
  return a.family === 'unix' || net.isIP(a.address) !== 0;
}

/**
 * Multiplexed HTTP/2 connections to one cluster's hosts: a request takes a stream on the host's
 * least busy connection, and a new connection opens only when every one is at
 * max_concurrent_streams (Envoy's default: 2^31-1, i.e. one connection per host; lower when the
 * peer's SETTINGS says so) and the cluster is under max_connections. Past that, requests wait as
 * pending (bounded by max_pending_requests) until a stream ends, the peer raises its limit or a
 * connection slot frees, as Envoy's pool does. A connection without streams for idle_timeout
 * closes with GOAWAY.
 */
export class Http2ClusterPools implements ClusterConnPools {
  /** The cluster's resources at this pool's priority (one pool set per routing priority). */
  readonly rm: BreakerState;
  private readonly hosts = new Map<Host, H2Conn[]>();
  /**
   * The entry of `hosts` acquireNow() or released() found last: both run once per request, mostly
   * for the host before (~45 instructions a Map lookup). Dropped with the entry (drainHosts).
   */
  private lastHost: Host | null = null;
  private lastList: H2Conn[] | null = null;
  private readonly maxStreams: number;
  private readonly settings: http2.Settings;
  /** Connections go through the addon's nghttp2 session (decided once, at construction). */
  readonly native: boolean;
  readonly idleTimeoutMs: number;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Requests waiting for capacity, per host in arrival order; `pendingCount` over all hosts. */
  private readonly pending = new Map<Host, PendingStream[]>();
  private pendingCount = 0;

  constructor(
    readonly cluster: Cluster,
    readonly stats: StatsOf<typeof HTTP_CLUSTER_STATS>,
    readonly priority: RoutingPriority = RoutingPriority.DEFAULT,
    /** The server runs the native io engine: `--io-engine node` keeps node:http2 upstream too. */
    nativeIo = true,
  ) {
    this.rm = cluster.breakers.at(priority);
    const o = http2Options(cluster);
    this.maxStreams = o.max_concurrent_streams === undefined ? 2 ** 31 - 1 : Number(o.max_concurrent_streams);
    this.settings = {};
    if (o.initial_stream_window_size !== undefined) this.settings.initialWindowSize = Number(o.initial_stream_window_size);
    // One switch for both directions: with `--h2-engine native` plaintext upstreams use the
    // addon's client session too. TLS upstreams keep node:http2 (the bytes exist only in Node's
    // TLS stack), as does an addon built before native/http2, and the node io engine (the
    // pure-Node reference path).
    this.native = nativeIo && h2Engine() === 'native' && !cluster.spec.tls && hasNativeH2();
    this.idleTimeoutMs = idleTimeoutMsOf(cluster);
    cluster.addConnPools(this);
  }

  drainHosts(_cluster: Cluster, hosts: readonly Host[] | null): void {
    for (const h of hosts ?? [...this.hosts.keys()]) {
      const list = this.hosts.get(h);
      if (!list) continue;
      this.hosts.delete(h);
      if (h === this.lastHost) this.lastHost = this.lastList = null;
      for (const c of list.splice(0)) this.drainConn(c);
      // Requests still waiting for this host ask again: a retired host gets them one-off
      // connections, as acquire() gives any late request.
      const q = this.pending.get(h);
      if (!q) continue;
      this.pending.delete(h);
      for (const w of q) {
        if (w.settled) continue;
        w.settled = true;
        this.unpend();
        this.acquire(h, w.done);
      }
    }
    // Nothing left to sweep (a removed cluster): the timer would only keep this pool alive.
    if (this.hosts.size === 0 && this.sweepTimer !== null) {
      clearTimeout(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  /** A graceful close: streams in flight finish, no new one starts on this session. */
  private drainConn(c: H2Conn): void {
    c.draining = true;
    // Still connecting: its waiters get their stream first, then it closes (see open()).
    const s = c.session;
    if (!c.connected || !s || (s instanceof NativeH2ClientConnection ? s.isClosing : s.closed || s.destroyed)) return;
    this.cluster.stats.upstream_cx_destroy_local.value++;
    s.close();
  }

  /**
   * Hands `done` a session with room for one more stream; the caller must call `released` when
   * its stream closes. Returns a cancel function for a request left waiting (pending); calling it
   * after `done` ran does nothing.
   */
  acquire(host: Host, done: H2AcquireDone): () => void {
    let list = this.hosts.get(host);
    if (!list) {
      list = [];
      // A retired host or cluster gets a one-off connection that is never pooled.
      if (this.cluster.isRetired(host)) {
        if (!this.rm.canConnect()) {
          this.cluster.stats.upstream_cx_overflow.value++;
          this.stats.upstream_rq_pending_overflow.value++;
          done(null, 'overflow');
          return noop;
        }
        const c = this.open(host, list);
        c.draining = true;
        c.streams++;
        c.waiters.push(done);
        return noop;
      }
      this.hosts.set(host, list);
    }
    let best = this.pick(list);
    if (!best) {
      if (this.pending.has(host)) {
        // Requests that came first keep their turn; a slot freed elsewhere (the breakers are
        // shared with other pools) may serve them now.
        if (!this.rm.canConnect()) this.cluster.stats.upstream_cx_overflow.value++;
        const cancel = this.enqueue(host, done);
        this.servePending(host);
        return cancel;
      }
      if (!this.rm.canConnect()) {
        this.cluster.stats.upstream_cx_overflow.value++;
        return this.enqueue(host, done);
      }
      best = this.open(host, list);
    }
    this.attach(best, done);
    return noop;
  }

  /**
   * acquire() for the usual case, answered at once: a connected connection of the host with room
   * takes the stream and its session is returned. null (nothing taken) when acquire() must decide:
   * no connection yet, none ready or with room, requests already waiting. No callback is made.
   */
  acquireNow(host: Host): H2UpstreamSession | null {
    const list = this.listOf(host);
    // A host with a queue has pendingCount > 0 (queues never hold settled waiters).
    if (list === undefined || (this.pendingCount !== 0 && this.pending.has(host))) return null;
    const best = this.pick(list);
    if (best === null || !best.connected) return null;
    best.streams++;
    return best.session!;
  }

  /** The host's least busy connection with room for a stream (the peer's limit counts: 0 is none). */
  private pick(list: H2Conn[]): H2Conn | null {
    let best: H2Conn | null = null;
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      if (c.streams < Math.min(this.maxStreams, c.peerMaxStreams) && (best === null || c.streams < best.streams)) best = c;
    }
    return best;
  }

  private attach(c: H2Conn, done: H2AcquireDone): void {
    c.streams++;
    if (c.connected) done(c.session!, 'ok');
    else c.waiters.push(done);
  }

  /** No room anywhere and no connection to open: wait, unless max_pending_requests is reached. */
  private enqueue(host: Host, done: H2AcquireDone): () => void {
    if (!this.rm.canQueue()) {
      this.stats.upstream_rq_pending_overflow.value++;
      done(null, 'overflow');
      return noop;
    }
    const w: PendingStream = { done, settled: false };
    let q = this.pending.get(host);
    if (!q) this.pending.set(host, (q = []));
    q.push(w);
    this.pendingCount++;
    this.rm.addPending(1);
    this.stats.upstream_rq_pending_total.value++;
    this.stats.upstream_rq_pending_active.value++;
    // A queued request has no deadline of its own: the route timeout bounds it.
    return () => {
      if (w.settled) return;
      w.settled = true;
      const i = q.indexOf(w);
      if (i >= 0) q.splice(i, 1);
      if (q.length === 0 && this.pending.get(host) === q) this.pending.delete(host);
      this.unpend();
    };
  }

  private unpend(): void {
    this.pendingCount--;
    this.rm.addPending(-1);
    this.stats.upstream_rq_pending_active.value--;
  }

  /** Gives waiting requests of `host` the room there is now, opening connections while allowed. */
  private servePending(host: Host): void {
    const q = this.pending.get(host);
    const list = this.hosts.get(host);
    if (!q || !list) return;
    while (q.length !== 0) {
      let c = this.pick(list);
      if (!c) {
        if (!this.rm.canConnect()) break;
        c = this.open(host, list);
      }
      const w = q.shift()!;
      w.settled = true;
      this.unpend();
      // May re-enter (a try that fails at once releases its stream): the queue is consistent here.
      this.attach(c, w.done);
    }
    if (q.length === 0 && this.pending.get(host) === q) this.pending.delete(host);
  }

  /** A connection slot or stream room freed somewhere: every host with waiters gets a look. */
  private serveAllPending(): void {
    for (const h of [...this.pending.keys()]) this.servePending(h);
  }

  /** Fails the requests waiting for `host` (Envoy purges them when a connect to the host fails). */
  private purgePending(host: Host): void {
    const q = this.pending.get(host);
    if (!q) return;
    this.pending.delete(host);
    for (const w of q) {
      if (w.settled) continue;
      w.settled = true;
      this.unpend();
      w.done(null, 'connect_failure');
    }
  }

  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS: a raise lets waiting requests in. */
  private peerSettings(host: Host, c: H2Conn, maxStreams: number): void {
    const raised = maxStreams > c.peerMaxStreams;
    c.peerMaxStreams = maxStreams;
    if (raised && this.pendingCount !== 0 && !c.dropped) this.servePending(host);
  }

  /** hosts.get(host), through the last entry found. */
  private listOf(host: Host): H2Conn[] | undefined {
    if (host === this.lastHost) return this.lastList!;
    const list = this.hosts.get(host);
    if (list !== undefined) {
      this.lastHost = host;
      this.lastList = list;
    }
    return list;
  }

  released(host: Host, session: H2UpstreamSession): void {
    // Called once per stream: a plain loop, no closure (the list is one connection long by default).
    const list = this.listOf(host);
    if (!list) return;
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      if (c.session === session) {
        if (--c.streams === 0 && this.idleTimeoutMs > 0) {
          c.idleSince = Date.now();
          if (this.sweepTimer === null) this.armSweep(this.idleTimeoutMs);
        }
        if (this.pendingCount !== 0) this.servePending(host);
        return;
      }
    }
  }

  private open(host: Host, list: H2Conn[]): H2Conn {
    const cs = this.cluster.stats;
    const a = host.address;
    this.rm.addConnection(1);
    cs.upstream_cx_total.value++;
    this.stats.upstream_cx_http2_total.value++;
    host.counters.cx_total++;
    if (this.native && nativeConnectable(a)) return this.openNative(host, list);
    const authority = a.family === 'IPv6' ? `http://[${a.address}]:${a.port}` : `http://${a.address}:${a.port || 80}`;
    const session = http2.connect(authority, {
      settings: this.settings,
      // Prior knowledge over plain TCP (h2c), through our own socket so unix endpoints work too.
      createConnection: () => (a.family === 'unix' ? net.connect({ path: a.address }) : net.connect({ host: a.address, port: a.port, noDelay: true })),
    });
    useStreamSlots(session);
    const c: H2Conn = { session, connected: false, streams: 0, waiters: [], draining: false, peerMaxStreams: Infinity, dropped: false, idleSince: 0 };
    list.push(c);
    const timeoutMs = this.cluster.spec.connectTimeoutMs;
    const timer = timeoutMs > 0 ? setTimeout(() => fail(true), timeoutMs) : null;
    let settled = false;
    const fail = (timedOut: boolean) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      session.destroy();
      this.connectFailed(host, list, c, timedOut);
    };
    const drop = () => this.dropConn(host, list, c);
    session.once('connect', () => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      this.connected(host, c, session);
    });
    session.on('error', () => {
      if (!settled) fail(false);
    });
    // GOAWAY: no new streams here; streams in flight finish on their own (node:http2 closes those
    // above last_stream_id with REFUSED_STREAM, which the try may retry).
    session.on('goaway', () => {
      this.stats.upstream_cx_close_notify.value++;
      drop();
    });
    session.on('remoteSettings', (st: http2.Settings) => this.peerSettings(host, c, st.maxConcurrentStreams ?? 2 ** 32 - 1));
    session.on('close', () => {
      if (!settled) fail(false);
      drop();
    });
    return c;
  }

  /**
   * The addon's connect() and client session; the same accounting and connect-timeout semantics
   * as the node:http2 path above (connected = TCP connected, as node's 'connect').
   */
  private openNative(host: Host, list: H2Conn[]): H2Conn {
    const a = host.address;
    const c: H2Conn = { session: null, connected: false, streams: 0, waiters: [], draining: false, peerMaxStreams: Infinity, dropped: false, idleSince: 0 };
    list.push(c);
    const drop = () => this.dropConn(host, list, c);
    const fail = (timedOut: boolean) => this.connectFailed(host, list, c, timedOut);
    const b = native();
    b.connect(a.address, a.family === 'unix' ? -1 : a.port, this.cluster.spec.connectTimeoutMs, (status, fd) => {
      if (status !== 0) {
        fail(status === ETIMEDOUT);
        return;
      }
      let session: NativeH2ClientConnection;
      try {
        session = new NativeH2ClientConnection(fd, { initialWindowSize: this.settings.initialWindowSize }, {
          onSettings: (n) => this.peerSettings(host, c, n),
          // GOAWAY: no new streams here; streams in flight finish on their own (those the peer
          // never processed come back as REFUSED_STREAM, which the try retries).
          onGoaway: () => {
            this.stats.upstream_cx_close_notify.value++;
            drop();
          },
          // Whatever the reason, the streams have been reset (h2Close) before this.
          onEnd: (reason) => {
            // The upstream broke the protocol (nghttp2 sent GOAWAY): Envoy's counter for it.
            if (reason === H2SessionEnd.PROTOCOL_ERROR) this.stats.upstream_cx_protocol_error.value++;
            drop();
          },
        });
      } catch {
        // The session closes the fd itself when set-up fails (EMFILE on the poll, ...).
        fail(false);
        return;
      }
      c.session = session;
      this.connected(host, c, session);
    });
    return c;
  }

  /** Connected (TCP, for either kind): counted, waiters get their stream. */
  private connected(host: Host, c: H2Conn, session: H2UpstreamSession): void {
    const cs = this.cluster.stats;
    c.connected = true;
    c.idleSince = Date.now();
    cs.upstream_cx_active.value++;
    host.counters.cx_active++;
    const w = c.waiters;
    c.waiters = [];
    for (const d of w) d(session, 'ok');
    if (c.draining) {
      // Drained while connecting: the waiters' streams are open now, so close behind them.
      cs.upstream_cx_destroy_local.value++;
      session.close();
    }
  }

  /** A connect that failed or timed out: counted, out of the pool, its waiters and the host's pending requests told. */
  private connectFailed(host: Host, list: H2Conn[], c: H2Conn, timedOut: boolean): void {
    const cs = this.cluster.stats;
    cs.upstream_cx_connect_fail.value++;
    if (timedOut) cs.upstream_cx_connect_timeout.value++;
    host.counters.cx_connect_fail++;
    // Before dropConn, which would open a connection for them to the host that just failed.
    this.purgePending(host);
    this.dropConn(host, list, c);
    const w = c.waiters;
    c.waiters = [];
    for (const d of w) d(null, 'connect_failure');
  }

  /** Takes `c` out of the pool and its accounting, once, whichever event comes first. */
  private dropConn(host: Host, list: H2Conn[], c: H2Conn): void {
    if (c.dropped) return;
    c.dropped = true;
    const i = list.indexOf(c);
    if (i >= 0) list.splice(i, 1);
    this.rm.addConnection(-1);
    if (c.connected) {
      const cs = this.cluster.stats;
      cs.upstream_cx_active.value--;
      cs.upstream_cx_destroy.value++;
      host.counters.cx_active--;
    }
    // A connection slot is free: waiting requests may get a new connection.
    if (this.pendingCount !== 0) this.serveAllPending();
  }

  private armSweep(ms: number): void {
    this.sweepTimer = setTimeout(this.sweep, ms);
    this.sweepTimer.unref();
  }

  /**
   * Closes connections without a stream for idle_timeout (upstream_cx_idle_timeout). Each leaves
   * the pool before its GOAWAY, within this one callback: no request can be handed a connection
   * that is closing, and one without streams has none to cut.
   */
  private readonly sweep = (): void => {
    this.sweepTimer = null;
    const now = Date.now();
    const idleMs = this.idleTimeoutMs;
    let next = Infinity;
    for (const list of this.hosts.values()) {
      for (let i = list.length - 1; i >= 0; i--) {
        const c = list[i]!;
        if (!c.connected || c.streams !== 0) continue;
        const due = c.idleSince + idleMs;
        if (due > now) {
          if (due < next) next = due;
          continue;
        }
        list.splice(i, 1);
        this.cluster.stats.upstream_cx_idle_timeout.value++;
        this.drainConn(c);
      }
    }
    if (next !== Infinity) this.armSweep(next - now);
  };
}
