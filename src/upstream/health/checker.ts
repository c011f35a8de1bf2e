import type * as GrpcNs from '@grpc/grpc-js';
import type { Scope, StatsOf } from '../../observability/stats.js';
import { protocols } from '../../protocols/lazy.js';
import { HealthFlag, type Host } from '../host.js';
import type { HealthCheckConfig } from './config.js';
import { GrpcProbe } from './grpc_probe.js';
import { HttpProbe } from './http_probe.js';
import { Outcome, TcpProbe, type Probe } from './probe.js';
import { RpcHeartbeatProbe } from './rpc_probe.js';
import { HEALTH_CHECK_STATS } from './stats.js';

/** What the checker needs from its cluster. */
export interface HealthCheckedCluster {
  readonly name: string;
  /** Whether the cluster has carried traffic yet (no_traffic_interval applies until it has). */
  hadTraffic(): boolean;
  /** A host's health flags changed: rebuild the healthy set. */
  onHealthChange(host: Host): void;
  /** An active check passed (outlier detection may end an ejection early). */
  onHealthCheckPass(host: Host): void;
}

type Grpc = typeof GrpcNs;

/**
 * Active health checking of one cluster, Envoy's state machine per host: a host added to the
 * cluster starts unhealthy and pending, and its first passing check makes it healthy; after
 * that `healthy_threshold` passes in a row bring it back and `unhealthy_threshold` failures
 * in a row take it out — except that an explicit "unhealthy" answer (an unexpected HTTP
 * status, NOT_SERVING) takes it out at once. Network failures and timeouts count towards the
 * threshold, so one lost packet does not empty a cluster.
 */
export class HealthChecker {
  readonly stats: StatsOf<typeof HEALTH_CHECK_STATS>;
  private readonly sessions = new Map<Host, Session>();
  private grpc: Grpc | null = null;
  private closed = false;

  constructor(
    readonly config: HealthCheckConfig,
    readonly cluster: HealthCheckedCluster,
    scope: Scope,
    readonly random: () => number = Math.random,
  ) {
    this.stats = scope.scope('health_check').table(HEALTH_CHECK_STATS);
  }

  /** Loads what the probe kind needs (grpc-js is loaded only by clusters with gRPC checks). */
  async prepare(): Promise<void> {
    if (this.config.probe.kind === 'grpc') {
      const m = (await import('@grpc/grpc-js')) as Grpc & { default?: Grpc };
      this.grpc = m.default ?? m;
    }
  }

  createProbe(host: Host): Probe {
    const p = this.config.probe;
    const reuse = this.config.reuseConnection;
    switch (p.kind) {
      case 'tcp':
        return new TcpProbe(host, p.send, p.receive, reuse);
      case 'http':
        return new HttpProbe(host, p, this.cluster.name, reuse);
      case 'grpc':
        return new GrpcProbe(this.grpc!, host, p.serviceName, p.authority, p.metadata, this.config.timeoutMs);
      case 'rpc':
        return new RpcHeartbeatProbe(host, protocols().getCodec(p.protocol)!, reuse);
    }
  }

  /**
   * The cluster's membership. New hosts start unhealthy and pending and are checked at once;
   * removed hosts stop being checked; kept hosts keep their state. Resolves when every new
   * host has had its first check, which is what cluster warming waits for.
   */
  setHosts(hosts: readonly Host[]): Promise<void> {
    if (this.closed) return Promise.resolve();
    const keep = new Set(hosts);
    for (const [h, s] of this.sessions) {
      if (keep.has(h)) continue;
      s.stop();
      this.sessions.delete(h);
    }
    const first: Array<Promise<void>> = [];
    for (const h of hosts) {
      if (this.sessions.has(h)) continue;
      h.setFlag(HealthFlag.FAILED_ACTIVE_HC | HealthFlag.PENDING_ACTIVE_HC, true);
      const s = new Session(this, h);
      this.sessions.set(h, s);
      first.push(s.firstCheck);
      s.begin();
    }
    this.refreshGauges();
    return Promise.all(first).then(() => undefined);
  }

  /**
   * A data path saw the host ask to be failed (`x-envoy-immediate-health-check-fail`): out of
   * rotation now, back after healthy_threshold passing checks.
   */
  passiveFailure(host: Host): void {
    const s = this.sessions.get(host);
    if (!s) return;
    this.stats.passive_failure.value++;
    s.markUnhealthy();
  }

  refreshGauges(): void {
    let healthy = 0;
    let degraded = 0;
    for (const h of this.sessions.keys()) {
      if (h.hasFlag(HealthFlag.FAILED_ACTIVE_HC)) continue;
      if (h.hasFlag(HealthFlag.DEGRADED_ACTIVE_HC)) degraded++;
      else healthy++;
    }
    this.stats.healthy.value = healthy;
    this.stats.degraded.value = degraded;
  }

  close(): void {
    this.closed = true;
    for (const s of this.sessions.values()) s.stop();
    this.sessions.clear();
  }
}

/** One host's checks: one timer (interval or timeout) and one probe. */
class Session {
  private timer: NodeJS.Timeout | null = null;
  private probe: Probe | null = null;
  /** Which check a callback belongs to: a late answer to a timed-out check is ignored. */
  private seq = 0;
  private numHealthy = 0;
  private numUnhealthy = 0;
  private stopped = false;
  private resolveFirst: (() => void) | null = null;
  readonly firstCheck: Promise<void>;

  constructor(
    private readonly checker: HealthChecker,
    private readonly host: Host,
  ) {
    this.firstCheck = new Promise((r) => (this.resolveFirst = r));
  }

  begin(): void {
    const j = this.checker.config.initialJitterMs;
    if (j > 0) this.schedule(Math.floor(this.checker.random() * j));
    else this.check();
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => this.check(), ms);
    this.timer.unref();
  }

  private check(): void {
    if (this.stopped) return;
    const c = this.checker;
    c.stats.attempt.value++;
    this.probe ??= c.createProbe(this.host);
    const seq = ++this.seq;
    this.timer = setTimeout(() => {
      if (seq !== this.seq || this.stopped) return;
      this.seq++;
      this.probe?.abort();
      this.onOutcome(Outcome.NETWORK_FAILURE);
    }, c.config.timeoutMs);
    this.timer.unref();
    this.probe.start((o) => {
      if (seq !== this.seq || this.stopped) return;
      this.seq++;
      if (this.timer) clearTimeout(this.timer);
      this.onOutcome(o);
    });
  }

  private onOutcome(o: Outcome): void {
    const c = this.checker;
    const h = this.host;
    let changed = false;
    if (o === Outcome.HEALTHY || o === Outcome.DEGRADED) {
      c.stats.success.value++;
      this.numUnhealthy = 0;
      if (h.hasFlag(HealthFlag.FAILED_ACTIVE_HC)) {
        // A host never checked before needs one pass; a host that failed needs the threshold.
        const pending = h.hasFlag(HealthFlag.PENDING_ACTIVE_HC);
        if (pending || ++this.numHealthy >= c.config.healthyThreshold) {
          h.setFlag(HealthFlag.FAILED_ACTIVE_HC, false);
          // A recovered host warms up again (slow start); a first pass does not restart the clock
          // the cluster started when the host joined.
          if (!pending) h.slowStartFrom = performance.now();
          this.numHealthy = 0;
          changed = true;
        }
      }
      const degraded = o === Outcome.DEGRADED;
      if (h.hasFlag(HealthFlag.DEGRADED_ACTIVE_HC) !== degraded) {
        h.setFlag(HealthFlag.DEGRADED_ACTIVE_HC, degraded);
        changed = true;
      }
      c.cluster.onHealthCheckPass(h);
    } else {
      c.stats.failure.value++;
      if (o === Outcome.NETWORK_FAILURE) c.stats.network_failure.value++;
      this.numHealthy = 0;
      if (!h.hasFlag(HealthFlag.FAILED_ACTIVE_HC)) {
        if (o === Outcome.ACTIVE_FAILURE || ++this.numUnhealthy >= c.config.unhealthyThreshold) {
          h.setFlag(HealthFlag.FAILED_ACTIVE_HC, true);
          this.numUnhealthy = 0;
          changed = true;
        }
      }
    }
    if (h.hasFlag(HealthFlag.PENDING_ACTIVE_HC)) {
      h.setFlag(HealthFlag.PENDING_ACTIVE_HC, false);
      changed = true;
    }
    if (changed) {
      c.refreshGauges();
      c.cluster.onHealthChange(h);
    }
    const r = this.resolveFirst;
    this.resolveFirst = null;
    r?.();
    this.schedule(this.interval(changed));
  }

  markUnhealthy(): void {
    if (this.host.hasFlag(HealthFlag.FAILED_ACTIVE_HC)) return;
    this.host.setFlag(HealthFlag.FAILED_ACTIVE_HC, true);
    this.numHealthy = 0;
    this.checker.refreshGauges();
    this.checker.cluster.onHealthChange(this.host);
  }

  /** Envoy's choice of interval: no-traffic, edge (just changed), healthy or unhealthy; plus jitter. */
  private interval(changed: boolean): number {
    const c = this.checker.config;
    const healthy = !this.host.hasFlag(HealthFlag.FAILED_ACTIVE_HC);
    let base: number;
    if (!this.checker.cluster.hadTraffic()) base = healthy ? c.noTrafficHealthyIntervalMs : c.noTrafficIntervalMs;
    else if (changed) base = healthy ? c.healthyEdgeIntervalMs : c.unhealthyEdgeIntervalMs;
    else base = healthy ? c.intervalMs : c.unhealthyIntervalMs;
    let jitter = 0;
    if (c.intervalJitterPercent > 0) jitter += this.checker.random() * ((base * c.intervalJitterPercent) / 100);
    if (c.intervalJitterMs > 0) jitter += this.checker.random() * c.intervalJitterMs;
    return Math.floor(base + jitter);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.probe?.close();
    this.probe = null;
    const r = this.resolveFirst;
    this.resolveFirst = null;
    r?.();
  }
}
