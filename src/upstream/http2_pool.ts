import http2 from 'node:http2';
import net from 'node:net';
import type { StatsOf } from '../observability/stats.js';
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

/** The HTTP/2 settings a cluster asks for (max_concurrent_streams bounds streams per connection). */
function http2Options(cluster: Cluster): Obj {
  const src = (cluster.spec.source ?? {}) as Obj;
  const hpo = src.typed_extension_protocol_options?.[HPO] as Obj | undefined;
  return (src.http2_protocol_options ?? hpo?.explicit_http_config?.http2_protocol_options ?? hpo?.use_downstream_protocol_config?.http2_protocol_options ?? {}) as Obj;
}

export type H2AcquireDone = (session: http2.ClientHttp2Session | null, reason: 'ok' | 'connect_failure' | 'overflow') => void;

interface H2Conn {
  session: http2.ClientHttp2Session;
  connected: boolean;
  streams: number;
  waiters: H2AcquireDone[];
  /** Out of the pool: takes no new stream, closes once its streams are done. */
  draining: boolean;
}

/**
 * Multiplexed HTTP/2 connections to one cluster's hosts: a request takes a stream on the host's
 * least busy connection, and a new connection opens only when every one is at
 * max_concurrent_streams (Envoy's default: 2^31-1, i.e. one connection per host) and the
 * cluster is under max_connections.
 */
export class Http2ClusterPools implements ClusterConnPools {
  /** The cluster's resources at this pool's priority (one pool set per routing priority). */
  readonly rm: BreakerState;
  private readonly hosts = new Map<Host, H2Conn[]>();
  private readonly maxStreams: number;
  private readonly settings: http2.Settings;

  constructor(
    readonly cluster: Cluster,
    readonly stats: StatsOf<typeof HTTP_CLUSTER_STATS>,
    readonly priority: RoutingPriority = RoutingPriority.DEFAULT,
  ) {
    this.rm = cluster.breakers.at(priority);
    const o = http2Options(cluster);
    this.maxStreams = o.max_concurrent_streams === undefined ? 2 ** 31 - 1 : Number(o.max_concurrent_streams);
    this.settings = {};
    if (o.initial_stream_window_size !== undefined) this.settings.initialWindowSize = Number(o.initial_stream_window_size);
    cluster.addConnPools(this);
  }

  drainHosts(_cluster: Cluster, hosts: readonly Host[] | null): void {
    for (const h of hosts ?? [...this.hosts.keys()]) {
      const list = this.hosts.get(h);
      if (!list) continue;
      this.hosts.delete(h);
      for (const c of list.splice(0)) this.drainConn(c);
    }
  }

  /** A graceful close: streams in flight finish, no new one starts on this session. */
  private drainConn(c: H2Conn): void {
    c.draining = true;
    // Still connecting: its waiters get their stream first, then it closes (see open()).
    if (!c.connected || c.session.closed || c.session.destroyed) return;
    this.cluster.stats.upstream_cx_destroy_local.value++;
    c.session.close();
  }

  /** Hands `done` a session with room for one more stream; the caller must call `released` when its stream closes. */
  acquire(host: Host, done: H2AcquireDone): void {
    let list = this.hosts.get(host);
    if (!list) {
      list = [];
      // A retired host or cluster gets a one-off connection that is never pooled.
      if (this.cluster.isRetired(host)) {
        if (!this.rm.canConnect()) {
          this.cluster.stats.upstream_cx_overflow.value++;
          this.stats.upstream_rq_pending_overflow.value++;
          done(null, 'overflow');
          return;
        }
        const c = this.open(host, list);
        c.draining = true;
        c.streams++;
        c.waiters.push(done);
        return;
      }
      this.hosts.set(host, list);
    }
    let best: H2Conn | null = null;
    for (const c of list) if (c.streams < this.maxStreams && (!best || c.streams < best.streams)) best = c;
    if (!best) {
      if (!this.rm.canConnect()) {
        this.cluster.stats.upstream_cx_overflow.value++;
        this.stats.upstream_rq_pending_overflow.value++;
        done(null, 'overflow');
        return;
      }
      best = this.open(host, list);
    }
    best.streams++;
    if (best.connected) done(best.session, 'ok');
    else best.waiters.push(done);
  }

  released(host: Host, session: http2.ClientHttp2Session): void {
    // Called once per stream: a plain loop, no closure (the list is one connection long by default).
    const list = this.hosts.get(host);
    if (!list) return;
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      if (c.session === session) {
        c.streams--;
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
    const authority = a.family === 'IPv6' ? `http://[${a.address}]:${a.port}` : `http://${a.address}:${a.port || 80}`;
    const session = http2.connect(authority, {
      settings: this.settings,
      // Prior knowledge over plain TCP (h2c), through our own socket so unix endpoints work too.
      createConnection: () => (a.family === 'unix' ? net.connect({ path: a.address }) : net.connect({ host: a.address, port: a.port, noDelay: true })),
    });
    const c: H2Conn = { session, connected: false, streams: 0, waiters: [], draining: false };
    list.push(c);
    const timeoutMs = this.cluster.spec.connectTimeoutMs;
    const timer = timeoutMs > 0 ? setTimeout(() => fail(true), timeoutMs) : null;
    let settled = false;
    const fail = (timedOut: boolean) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      cs.upstream_cx_connect_fail.value++;
      if (timedOut) cs.upstream_cx_connect_timeout.value++;
      host.counters.cx_connect_fail++;
      drop();
      session.destroy();
      const w = c.waiters;
      c.waiters = [];
      for (const d of w) d(null, 'connect_failure');
    };
    let dropped = false;
    const drop = () => {
      if (dropped) return;
      dropped = true;
      const i = list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
      this.rm.addConnection(-1);
      if (c.connected) {
        cs.upstream_cx_active.value--;
        cs.upstream_cx_destroy.value++;
        host.counters.cx_active--;
      }
    };
    session.once('connect', () => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      c.connected = true;
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
    });
    session.on('error', () => {
      if (!settled) fail(false);
    });
    // GOAWAY: no new streams here; streams in flight finish on their own.
    session.on('goaway', drop);
    session.on('close', () => {
      if (!settled) fail(false);
      drop();
    });
    return c;
  }
}
