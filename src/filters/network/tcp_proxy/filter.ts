import os from 'node:os';
import { PipeCloseReason, type Cancelable, type Pipe, type Upstream } from '../../../io/engine.js';
import { log } from '../../../log.js';
import { connectUpstream } from '../../../tls/upstream.js';
import { createAccessLogger, type AccessLogger } from '../../../observability/access_log/config.js';
import { newEntry } from '../../../observability/access_log/entry.js';
import type { StatsOf } from '../../../observability/stats.js';
import type { Cluster } from '../../../upstream/cluster.js';
import type { Host } from '../../../upstream/host.js';
import { OutlierResult } from '../../../upstream/outlier/monitor.js';
import { LbContext } from '../../../upstream/lb/context.js';
import type { ConnectionContext, NetworkFilter, RuntimeContext } from '../types.js';
import type { TcpProxyConfig } from './config.js';
import { TCP_PROXY_STATS } from './stats.js';

const ETIMEDOUT = -os.constants.errno.ETIMEDOUT;

/** The configured tcp_proxy: shared by every connection of its filter chain. */
export class TcpProxyFilter implements NetworkFilter {
  readonly stats: StatsOf<typeof TCP_PROXY_STATS>;
  /** Fixed per filter (metadata_match, no hash): shared by its connections, never written after. */
  readonly lbContext: LbContext | null;
  readonly accessLog: AccessLogger | null;
  /** hash_policy source_ip: refilled for each pick (picks are synchronous), so connects allocate nothing. */
  private readonly hashCtx: LbContext | null;

  /** The LB context for connect attempt `attempt` (1 first): a retry steps away from the IP's host. */
  lbFor(conn: ConnectionContext, attempt: number): LbContext | null {
    const c = this.hashCtx;
    if (!c) return this.lbContext;
    c.reset();
    c.metadataMatch = this.config.metadataMatch;
    const r = conn.downstream.remote;
    if (r.family !== 'unix' && r.address) c.addString(r.address);
    c.attempt = attempt - 1;
    return c;
  }

  constructor(
    readonly config: TcpProxyConfig,
    readonly rt: RuntimeContext,
  ) {
    this.stats = rt.stats.scope('tcp').scope(config.statPrefix, 'envoy_tcp_prefix').table(TCP_PROXY_STATS);
    this.lbContext = config.metadataMatch ? Object.assign(new LbContext(), { metadataMatch: config.metadataMatch }) : null;
    this.hashCtx = config.hashSourceIp ? new LbContext() : null;
    this.accessLog = createAccessLogger(config.accessLogs, rt.stats);
  }

  /** One access log line for a connection that ended (only called when there is a log). */
  logConnection(conn: ConnectionContext, start: number, cluster: string | null, host: Host | null, flags: string, rx: number, tx: number): void {
    const e = newEntry(start);
    e.durationMs = Date.now() - start;
    e.bytesReceived = rx;
    e.bytesSent = tx;
    e.downstreamRemote = conn.downstream.remote;
    e.downstreamLocal = conn.downstream.local;
    e.upstreamCluster = cluster;
    e.upstreamHost = host?.label ?? null;
    e.responseFlags = flags;
    e.tls = conn.downstream.tls ?? null;
    this.accessLog!.log(e);
  }

  onNewConnection(conn: ConnectionContext): void {
    this.stats.downstream_cx_total.value++;
    const cluster = this.rt.clusters.get(this.config.clusters.pick());
    if (!cluster) {
      this.stats.downstream_cx_no_route.value++;
      if (this.accessLog) this.logConnection(conn, Date.now(), null, null, 'NR', 0, 0);
      conn.downstream.close();
      conn.done();
      return;
    }
    new TcpProxySession(this, conn, cluster).connect(1);
  }
}

/** One proxied connection: connect (with attempts), then splice until either side is done. */
class TcpProxySession {
  private connecting: Cancelable | null = null;
  private pipe: Pipe | null = null;
  private host: Host | null = null;
  private durationTimer: NodeJS.Timeout | null = null;
  private finished = false;
  /** Holds one of the cluster's max_connections from connect until the upstream closes. */
  private cxHeld = false;
  // Access log facts: cheap to keep, read only when the filter logs.
  private readonly start = Date.now();
  private flags = '';
  private rx = 0;
  private tx = 0;

  constructor(
    private readonly filter: TcpProxyFilter,
    private readonly conn: ConnectionContext,
    private readonly cluster: Cluster,
  ) {
    conn.abort = () => this.abort();
    const max = filter.config.maxDownstreamConnectionDurationMs;
    if (max > 0) {
      this.durationTimer = setTimeout(() => {
        filter.stats.max_downstream_connection_duration.value++;
        this.flags = 'DT';
        this.abort();
      }, max);
    }
  }

  connect(attempt: number): void {
    const cs = this.cluster.stats;
    const host = this.cluster.pickHost(this.filter.lbFor(this.conn, attempt), this.conn.downstream.local);
    if (!host) {
      cs.upstream_cx_none_healthy.value++;
      this.flags = 'UH';
      this.finish();
      return;
    }
    // max_connections (tcp_proxy traffic counts at DEFAULT priority, as in Envoy): over it, the
    // downstream connection is closed at once rather than queued.
    const rm = this.cluster.breakers.at(0);
    if (!rm.canConnect()) {
      cs.upstream_cx_overflow.value++;
      this.flags = 'UO';
      this.finish();
      return;
    }
    rm.addConnection(1);
    this.cxHeld = true;
    cs.upstream_cx_total.value++;
    host.counters.cx_total++;
    // TLS clusters connect through node:tls (src/tls); plaintext ones through the engine.
    this.connecting = connectUpstream(this.filter.rt.engine, this.cluster, host.address, this.cluster.spec.connectTimeoutMs, (status, up) => {
      this.connecting = null;
      if (this.finished) {
        up?.close();
        return;
      }
      if (status !== 0 || !up) {
        this.releaseCx();
        if (status === ETIMEDOUT) cs.upstream_cx_connect_timeout.value++;
        cs.upstream_cx_connect_fail.value++;
        host.counters.cx_connect_fail++;
        host.outlier.putResult(status === ETIMEDOUT ? OutlierResult.TIMEOUT : OutlierResult.CONNECT_FAILED);
        if (log.isLevelEnabled('debug')) {
          log.debug({ cluster: this.cluster.name, host: host.label, error: this.filter.rt.engine.errnoName(status), attempt }, 'upstream connect failed');
        }
        if (attempt < this.filter.config.maxConnectAttempts) this.connect(attempt + 1);
        else {
          if (this.filter.config.maxConnectAttempts > 1) cs.upstream_cx_connect_attempts_exceeded.value++;
          this.flags = 'UF';
          this.finish();
        }
        return;
      }
      // For L4 traffic a connection that opens is the whole result (Envoy's tcp_proxy does the same).
      host.outlier.putResult(OutlierResult.CONNECT_SUCCESS_FINAL);
      this.splice(host, up);
    });
  }

  private splice(host: Host, up: Upstream): void {
    const cs = this.cluster.stats;
    this.host = host;
    cs.upstream_cx_active.value++;
    host.counters.cx_active++;
    const opts = { idleTimeoutMs: this.filter.config.idleTimeoutMs, highWaterMark: this.conn.bufferLimit };
    this.pipe = this.filter.rt.engine.pipe(this.conn.downstream, up, opts, (reason, rx, tx) => {
      const ts = this.filter.stats;
      ts.downstream_cx_rx_bytes_total.value += rx;
      ts.downstream_cx_tx_bytes_total.value += tx;
      cs.upstream_cx_tx_bytes_total.value += rx;
      cs.upstream_cx_rx_bytes_total.value += tx;
      this.rx = rx;
      this.tx = tx;
      if (reason === PipeCloseReason.IDLE_TIMEOUT) this.flags = 'SI';
      else if (reason === PipeCloseReason.RESET_UPSTREAM) this.flags = 'UC';
      cs.upstream_cx_active.value--;
      cs.upstream_cx_destroy.value++;
      host.counters.cx_active--;
      if (reason === PipeCloseReason.IDLE_TIMEOUT) {
        ts.idle_timeout.value++;
        cs.upstream_cx_idle_timeout.value++;
      }
      if (reason === PipeCloseReason.RESET_UPSTREAM) cs.upstream_cx_destroy_remote.value++;
      else if (reason !== PipeCloseReason.DONE) cs.upstream_cx_destroy_local.value++;
      this.pipe = null;
      this.finish();
    });
  }

  /** Gives back the max_connections slot this session holds, once. */
  private releaseCx(): void {
    if (!this.cxHeld) return;
    this.cxHeld = false;
    this.cluster.breakers.at(0).addConnection(-1);
  }

  private abort(): void {
    if (this.connecting) {
      this.connecting.cancel();
      this.connecting = null;
    }
    if (this.pipe) this.pipe.close(); // its callback finishes the session
    else this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.releaseCx();
    if (this.durationTimer) clearTimeout(this.durationTimer);
    if (!this.host) this.conn.downstream.close(); // never piped: we still own the socket
    if (this.filter.accessLog) this.filter.logConnection(this.conn, this.start, this.cluster.name, this.host, this.flags, this.rx, this.tx);
    this.conn.done();
  }
}
