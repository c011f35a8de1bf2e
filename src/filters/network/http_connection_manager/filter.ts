import { createAccessLogger, type AccessLogger } from '../../../observability/access_log/config.js';
import type { Histogram, StatsOf } from '../../../observability/stats.js';
import { HttpTracer, type RequestTrace } from '../../../observability/tracing/tracer.js';
import type { Host } from '../../../upstream/host.js';
import type { Cluster } from '../../../upstream/cluster.js';
import { Http1ClusterPools } from '../../../upstream/http1_pool.js';
import { Http2ClusterPools } from '../../../upstream/http2_pool.js';
import { httpClusterStats, type HTTP_CLUSTER_STATS } from '../../../upstream/http_stats.js';
import type { FilterReply, HttpFilter, HttpFilterRequest } from '../../http/types.js';
import type { ConnectionContext, NetworkFilter, RuntimeContext } from '../types.js';
import type { HcmConfig } from './config.js';
import { createH2Server, serveH2 } from './h2_session.js';
import { Http1Session } from './http1_session.js';
import { HCM_STATS } from './stats.js';

type HcmStats = StatsOf<typeof HCM_STATS>;
type ClusterHttpStats = StatsOf<typeof HTTP_CLUSTER_STATS>;

/**
 * Pools are per cluster and shared by every connection manager in the process, so keep-alive
 * connections are reused across listeners. Keyed weakly: a removed cluster takes its pools along.
 */
const POOLS = new WeakMap<Cluster, Http1ClusterPools>();
const H2_POOLS = new WeakMap<Cluster, Http2ClusterPools>();

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
   * An upstream exchange ended (`status` 0: without a response): records
   * `cluster.<name>.upstream_rq_time` from `t0` (performance.now() at the try's start) and ends
   * the trace's client span.
   */
  upstreamDone(cluster: Cluster, t0: number, trace: RequestTrace | null, status: number, host: Host | null): void {
    let h = this.upstreamTimes.get(cluster);
    if (!h) this.upstreamTimes.set(cluster, (h = this.rt.stats.scope('cluster').scope(cluster.name, 'envoy_cluster_name').histogram('upstream_rq_time')));
    h.record(performance.now() - t0);
    trace?.endUpstream(status, host);
  }

  /** A downstream exchange ended (`status` 0: reset before a response). */
  streamDone(t0: number, trace: RequestTrace | null, status: number): void {
    this.rqTime.record(performance.now() - t0);
    trace?.end(status);
  }

  /** null without `access_log`: streams then build no entry. */
  readonly accessLog: AccessLogger | null;

  /** null when the chain is just the router: requests then skip the filter step entirely. */
  readonly httpFilters: readonly HttpFilter[] | null;

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
    this.httpFilters = config.httpFilters.length ? config.httpFilters.map((f) => f.factory.create(f.config, scope, rt.stats)) : null;
  }

  /**
   * Asks each HTTP filter in order: delays add up, the first reply ends the chain. Returns null
   * when every filter lets the request through untouched.
   */
  runFilters(req: HttpFilterRequest): { delayMs: number; reply: FilterReply | null; notify: HttpFilter[] } | null {
    const fl = this.httpFilters;
    if (!fl) return null;
    let out: { delayMs: number; reply: FilterReply | null; notify: HttpFilter[] } | null = null;
    for (const f of fl) {
      const v = f.onRequest(req);
      if (!v) continue;
      out ??= { delayMs: 0, reply: null, notify: [] };
      out.delayMs += v.delayMs;
      out.notify.push(f);
      if (v.reply) {
        out.reply = v.reply;
        break;
      }
    }
    return out;
  }

  onNewConnection(conn: ConnectionContext): void {
    const s = this.stats;
    if (!conn.adopted) s.downstream_cx_total.value++; // a handed-over one was counted already
    s.downstream_cx_active.value++;
    this.bufferLimit = conn.bufferLimit;
    const socket = this.rt.engine.stream(conn.downstream);
    if (this.config.codec === 'HTTP2') serveH2(this, conn, socket, null);
    else new Http1Session(this, conn, socket);
  }

  /** The HTTP/2 server connections are handed to; created on the first HTTP/2 connection. */
  h2Server(): ReturnType<typeof createH2Server> {
    return (this.h2 ??= createH2Server(this));
  }

  h2PoolsFor(cluster: Cluster): Http2ClusterPools {
    let p = H2_POOLS.get(cluster);
    if (!p) {
      p = new Http2ClusterPools(cluster, this.statsFor(cluster.name));
      H2_POOLS.set(cluster, p);
    }
    return p;
  }

  poolsFor(cluster: Cluster): Http1ClusterPools {
    let p = POOLS.get(cluster);
    if (!p) {
      p = new Http1ClusterPools(cluster, this.statsFor(cluster.name));
      POOLS.set(cluster, p);
    }
    return p;
  }

  statsFor(name: string): ClusterHttpStats {
    let s = this.clusterStats.get(name);
    if (!s) {
      s = httpClusterStats(this.rt.stats.scope('cluster').scope(name, 'envoy_cluster_name'));
      this.clusterStats.set(name, s);
    }
    return s;
  }
}
