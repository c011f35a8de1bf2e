import { createAccessLogger, type AccessLogger } from '../../../observability/access_log/config.js';
import type { Histogram, StatsOf } from '../../../observability/stats.js';
import { HttpTracer, type RequestTrace } from '../../../observability/tracing/tracer.js';
// One clock read per batch of reads; performance.now() outside one (the clamp: a t0 read outside a batch may trail it).
import { now as clockNow } from '../../../protocols/http1/clock.js';
import type { Host } from '../../../upstream/host.js';
import type { Cluster } from '../../../upstream/cluster.js';
import type { HttpRoute } from '../../../router/http_route_table.js';
import { Http1ClusterPools } from '../../../upstream/http1_pool.js';
import { Http2ClusterPools } from '../../../upstream/http2_pool.js';
import type { RoutingPriority } from '../../../upstream/circuit_breakers.js';
import { httpClusterStats, type HTTP_CLUSTER_STATS } from '../../../upstream/http_stats.js';
import type { HttpFilter, HttpFilterRequest } from '../../http/types.js';
import { StreamTimeouts } from './stream_timeouts.js';
import { runFilterChain, type ChainVerdict } from '../../http/chain.js';
import type { ConnectionContext, NetworkFilter, RuntimeContext } from '../types.js';
import type { HcmConfig } from './config.js';
import { createH2Server, serveH2, serveH2IfPreface } from './h2_session.js';
import { Http1Session } from './http1_session.js';
import type { ClientSocket } from '../../../io/direct_socket.js';
import { HCM_STATS } from './stats.js';
import { Underscores, underscoreStats, type UnderscoreStats } from './underscores.js';

type HcmStats = StatsOf<typeof HCM_STATS>;
type ClusterHttpStats = StatsOf<typeof HTTP_CLUSTER_STATS>;

/**
 * Pools are per cluster and shared by every connection manager in the process, so keep-alive
 * connections are reused across listeners. Keyed weakly: a removed cluster takes its pools along.
 * One pool set per routing priority (index 0 DEFAULT, 1 HIGH), as Envoy keeps them.
 */
const POOLS = new WeakMap<Cluster, [Http1ClusterPools | null, Http1ClusterPools | null]>();
const H2_POOLS = new WeakMap<Cluster, [Http2ClusterPools | null, Http2ClusterPools | null]>();

/** The configured connection manager: shared by every connection of its filter chain. */
export class HttpConnectionManagerFilter implements NetworkFilter {
  readonly stats: HcmStats;
  private readonly clusterStats = new Map<string, ClusterHttpStats>();
  private h2: ReturnType<typeof createH2Server> | null = null;
  /** The listener's per-connection buffer limit (one listener per filter instance). */
  bufferLimit = 1024 * 1024;

  /** `http.<stat_prefix>.downstream_rq_time`: first request byte to the end of the exchange (ms). */
  readonly rqTime: Histogram;
  /** null without `tracing`: requests then build no trace state at all. */
  readonly tracer: HttpTracer | null;
  private readonly upstreamTimes = new WeakMap<Cluster, Histogram>();
  /**
   * The cluster each per-cluster lookup below was last made for, and its answer: requests of a
   * route go to one cluster, and a WeakMap or Map lookup is ~100-150 instructions, several a
   * request. A replaced cluster is a new object, so it misses.
   */
  private lastTimesOf: Cluster | null = null;
  private lastTimes: Histogram | null = null;
  private lastH1Of: Cluster | null = null;
  private lastH1: [Http1ClusterPools | null, Http1ClusterPools | null] | null = null;
  private lastH2Of: Cluster | null = null;
  private lastH2: [Http2ClusterPools | null, Http2ClusterPools | null] | null = null;
  private lastStatsName: string | null = null;
  private lastStats: ClusterHttpStats | null = null;

  /**
   * An upstream exchange ended (`status` 0: without a response): records
   * `cluster.<name>.upstream_rq_time` from `t0` (clock.ts now() at the try's start) and ends
   * the trace's client span.
   */
  upstreamDone(cluster: Cluster, t0: number, trace: RequestTrace | null, status: number, host: Host | null): void {
    let h: Histogram | undefined;
    if (cluster === this.lastTimesOf) h = this.lastTimes!;
    else {
      h = this.upstreamTimes.get(cluster);
      if (!h) this.upstreamTimes.set(cluster, (h = this.rt.stats.scope('cluster').scope(cluster.spec.statName ?? cluster.name, 'envoy_cluster_name').histogram('upstream_rq_time')));
      this.lastTimesOf = cluster;
      this.lastTimes = h;
    }
    h.record(Math.max(0, clockNow() - t0));
    trace?.endUpstream(status, host);
  }

  /** A downstream exchange ended (`status` 0: reset before a response). */
  streamDone(t0: number, trace: RequestTrace | null, status: number): void {
    this.rqTime.record(Math.max(0, clockNow() - t0));
    trace?.end(status);
  }

  /** stream_idle_timeout / request_timeout watcher; null when neither is set. */
  readonly streamTimeouts: StreamTimeouts | null;

  /** headers_with_underscores_action's codec counters (http1.*, http2.*); null under ALLOW. */
  readonly underscoreStats: { readonly http1: UnderscoreStats; readonly http2: UnderscoreStats } | null;

  /** null without `access_log`: streams then build no entry. */
  readonly accessLog: AccessLogger | null;

  /** null when the chain is just the router: requests then skip the filter step entirely. */
  readonly httpFilters: readonly HttpFilter[] | null;
  /** The filters' names in the chain: the keys of their routes' typed_per_filter_config. */
  private readonly httpFilterNames: readonly string[];
  /** Which filters the chain has `disabled: true` (off unless a route turns them on); null if none. */
  private readonly httpFiltersOff: readonly boolean[] | null;

  /**
   * The smallest `maxRequestBytes` of the HTTP filters (the buffer filter): forwarded requests
   * are held until their body is complete and answered 413 past it. 0: nothing is held.
   */
  readonly holdRequestBytes: number;
  /**
   * `server: <server_name>` CRLF, and the same followed by `connection: close` CRLF (a response
   * that ends its connection): made once for the chain, flat, not per connection or response.
   */
  readonly serverLine: string;
  readonly serverCloseLine: string;
  constructor(
    readonly config: HcmConfig,
    readonly rt: RuntimeContext,
  ) {
    const scope = rt.stats.scope('http').scope(config.statPrefix, 'envoy_http_conn_manager_prefix');
    this.stats = scope.table(HCM_STATS);
    this.rqTime = scope.histogram('downstream_rq_time');
    // Spans name the proxy by its connection manager's stat prefix (Strait has no node cluster yet).
    this.tracer = config.tracing ? new HttpTracer(config.tracing, rt.clusters, rt.stats, config.statPrefix || 'strait') : null;
    this.accessLog = createAccessLogger(config.accessLogs, rt.stats);
    this.underscoreStats = config.underscores !== Underscores.ALLOW ? { http1: underscoreStats(rt.stats, 'http1'), http2: underscoreStats(rt.stats, 'http2') } : null;
    this.streamTimeouts = config.streamIdleTimeoutMs > 0 || config.requestTimeoutMs > 0 ? new StreamTimeouts(config.streamIdleTimeoutMs, config.requestTimeoutMs) : null;
    this.httpFilters = config.httpFilters.length ? config.httpFilters.map((f) => f.factory.create(f.config, scope, rt.stats, f.name, rt)) : null;
    this.httpFilterNames = config.httpFilters.map((f) => f.name);
    this.httpFiltersOff = config.httpFilters.some((f) => f.disabled) ? config.httpFilters.map((f) => f.disabled) : null;
    let hold = 0;
    for (const f of this.httpFilters ?? []) if (f.maxRequestBytes && (hold === 0 || f.maxRequestBytes < hold)) hold = f.maxRequestBytes;
    this.holdRequestBytes = hold;
    this.serverLine = `server: ${config.serverName}\r\n`;
    this.serverCloseLine = `${this.serverLine}connection: close\r\n`;
  }

  /**
   * Asks each HTTP filter in order (src/filters/http/chain.ts): delays add up, the first reply
   * ends the chain, a filter may hold the request (`wait`). Returns null when every filter lets
   * the request through untouched.
   */
  runFilters(req: HttpFilterRequest): ChainVerdict | null {
    const fl = this.httpFilters;
    return fl ? runFilterChain(fl, req, 0, null, this.httpFilterNames, this.httpFiltersOff) : null;
  }

  onNewConnection(conn: ConnectionContext): void {
    const s = this.stats;
    if (!conn.adopted) s.downstream_cx_total.value++; // a handed-over one was counted already
    s.downstream_cx_active.value++;
    this.bufferLimit = conn.bufferLimit;
    if (this.config.maxConnectionDurationMs > 0) this.limitDuration(conn);
    const engine = this.rt.engine;
    if (this.config.codec === 'HTTP2') {
      serveH2(this, conn, engine.stream(conn.downstream), null);
      return;
    }
    // Without a net.Socket where the engine can (the session, its owner, gets the reads): an
    // HTTP/2 client's preface is then found in the first read, and the fd moves to the HTTP/2
    // session for no more than a peek would have cost every HTTP/1 connection (a system call).
    const ds = engine.directStream?.(conn.downstream) ?? null;
    if (ds !== null) {
      // The batch reader holds the socket and the socket its owner: nothing else need keep the session.
      new Http1Session(this, conn, ds, true);
      return;
    }
    // Else a peek spares an HTTP/2 client the net.Socket, and the HTTP/1 session gets a socket
    // read through the engine's byte callback where it has one (no Readable plumbing per read).
    if (this.config.codec === 'AUTO' && serveH2IfPreface(this, conn)) return;
    let session: Http1Session | null = null;
    const onBytes = (d: Buffer): void => session!.onBytes(d);
    const onRead = (b: Buffer, o: number, e: number): void => session!.onRead(b, o, e);
    const direct: ClientSocket | null = engine.streamWithReader?.(conn.downstream, onBytes, onRead) ?? null;
    session = new Http1Session(this, conn, direct ?? engine.stream(conn.downstream), direct !== null);
  }

  /**
   * max_connection_duration: then the connection drains as on shutdown, whichever protocol holds
   * it by then (HTTP/1.1: `connection: close` on the response in flight, an idle one closed;
   * HTTP/2: GOAWAY, closed once its streams are done), as Envoy's drain sequence.
   */
  private limitDuration(conn: ConnectionContext): void {
    const t = setTimeout(() => {
      this.stats.downstream_cx_max_duration_reached.value++;
      conn.drain?.();
    }, this.config.maxConnectionDurationMs);
    t.unref();
    const done = conn.done;
    conn.done = () => {
      clearTimeout(t);
      done.call(conn);
    };
  }

  /** The HTTP/2 server connections are handed to; created on the first HTTP/2 connection. */
  h2Server(): ReturnType<typeof createH2Server> {
    return (this.h2 ??= createH2Server(this));
  }

  /** `priority`: the route's RoutingPriority (0 DEFAULT, 1 HIGH). */
  h2PoolsFor(cluster: Cluster, priority: RoutingPriority = 0): Http2ClusterPools {
    let ps = cluster === this.lastH2Of ? this.lastH2 : H2_POOLS.get(cluster);
    if (!ps) H2_POOLS.set(cluster, (ps = [null, null]));
    this.lastH2Of = cluster;
    this.lastH2 = ps;
    return (ps[priority] ??= new Http2ClusterPools(cluster, this.statsFor(cluster), priority, this.rt.engine.name === 'native'));
  }

  poolsFor(cluster: Cluster, priority: RoutingPriority = 0): Http1ClusterPools {
    let ps = cluster === this.lastH1Of ? this.lastH1 : POOLS.get(cluster);
    if (!ps) POOLS.set(cluster, (ps = [null, null]));
    this.lastH1Of = cluster;
    this.lastH1 = ps;
    return (ps[priority] ??= new Http1ClusterPools(cluster, this.statsFor(cluster), priority));
  }

  /**
   * The cluster a route sends to, for a request a filter answered before routing: Envoy's filters
   * know the route's cluster from the start, and grpc_stats counts such a call under it. Weighted
   * clusters are picked as routing picks them (a hash policy's metadata_match aside).
   */
  routeCluster(route: HttpRoute | null, header: (n: string) => string | undefined): Cluster | undefined {
    const a = route?.action;
    if (a?.kind !== 'forward') return undefined;
    const name = a.clusterHeader ? header(a.clusterHeader) : a.clusters?.pick();
    return name ? this.rt.clusters.get(name) : undefined;
  }

  statsFor(cluster: Cluster): ClusterHttpStats {
    const name = cluster.name;
    if (name === this.lastStatsName) return this.lastStats!;
    let s = this.clusterStats.get(name);
    if (!s) {
      s = httpClusterStats(this.rt.stats.scope('cluster').scope(cluster.spec.statName ?? name, 'envoy_cluster_name'));
      this.clusterStats.set(name, s);
    }
    this.lastStatsName = name;
    this.lastStats = s;
    return s;
  }
}
