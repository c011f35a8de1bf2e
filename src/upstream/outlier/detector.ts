import type { Scope, StatsOf } from '../../observability/stats.js';
import { HealthFlag, type Host } from '../host.js';
import type { OutlierConfig } from './config.js';
import { OutlierResult, type OutlierMonitor } from './monitor.js';
import { OUTLIER_STATS } from './stats.js';

/** The HTTP status each result counts as (0 = none), indexed by OutlierResult. */
const STATUS_OF: readonly number[] = (() => {
  const t: number[] = [];
  t[OutlierResult.REQUEST_SUCCESS] = 200;
  t[OutlierResult.REQUEST_FAILED] = 500;
  t[OutlierResult.GATEWAY_FAILURE] = 502;
  t[OutlierResult.CONNECT_FAILED] = 503;
  t[OutlierResult.TIMEOUT] = 504;
  t[OutlierResult.CONNECT_SUCCESS] = 0;
  t[OutlierResult.CONNECT_SUCCESS_FINAL] = 200;
  return t;
})();

type Kind =
  | 'consecutive_5xx'
  | 'consecutive_gateway_failure'
  | 'consecutive_local_origin_failure'
  | 'success_rate'
  | 'local_origin_success_rate'
  | 'failure_percentage'
  | 'failure_percentage_local_origin';

/** Clock and dice, injectable so unit tests step time and make enforcement deterministic. */
export interface OutlierEnv {
  now(): number;
  random(): number;
}

const REAL_ENV: OutlierEnv = { now: () => performance.now(), random: Math.random };

/**
 * One host's passive health: consecutive-failure counters checked inline on every result, and
 * success/failure counts for the interval sweep. Plain number fields, so a report allocates nothing.
 */
class HostMonitor implements OutlierMonitor {
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  /** Counts of the interval in progress (external origin, then local origin). */
  extTotal = 0;
  extFailed = 0;
  localTotal = 0;
  localFailed = 0;
  ejections = 0;
  ejectedAt = 0;
  unejectedAt = -1;
  jitterMs = 0;
  successRate = -1;

  constructor(
    readonly host: Host,
    private readonly d: OutlierDetector,
  ) {}

  putHttpStatus(status: number): void {
    const c = this.d.config;
    this.extTotal++;
    if (status >= 500) {
      this.extFailed++;
      if (status === 502 || status === 503 || status === 504) {
        if (++this.consecutiveGateway === c.consecutiveGatewayFailure) this.d.detected(this, 'consecutive_gateway_failure');
      } else this.consecutiveGateway = 0;
      if (++this.consecutive5xx === c.consecutive5xx) this.d.detected(this, 'consecutive_5xx');
    } else {
      this.consecutive5xx = 0;
      this.consecutiveGateway = 0;
    }
  }

  putResult(result: OutlierResult): void {
    if (this.d.config.splitExternalLocalOriginErrors) {
      this.putSplit(result);
      return;
    }
    // Without the split, Envoy maps the proxy's own failures onto the status it would answer;
    // CONNECT_SUCCESS maps to nothing (the request's own result follows).
    const status = STATUS_OF[result];
    if (status) this.putHttpStatus(status);
  }

  private putSplit(result: OutlierResult): void {
    switch (result) {
      case OutlierResult.CONNECT_FAILED:
      case OutlierResult.TIMEOUT:
        this.localTotal++;
        this.localFailed++;
        if (++this.consecutiveLocal === this.d.config.consecutiveLocalOriginFailure) this.d.detected(this, 'consecutive_local_origin_failure');
        return;
      case OutlierResult.CONNECT_SUCCESS:
      case OutlierResult.CONNECT_SUCCESS_FINAL:
        this.localTotal++;
        this.consecutiveLocal = 0;
        return;
      default: {
        // Results from the upstream itself count as their HTTP status.
        const status = STATUS_OF[result];
        if (status) this.putHttpStatus(status);
      }
    }
  }


  resetConsecutive(): void {
    this.consecutive5xx = 0;
    this.consecutiveGateway = 0;
    this.consecutiveLocal = 0;
  }
}

/**
 * A cluster's outlier detector, Envoy's algorithm: consecutive-failure ejections happen as the
 * failure is reported; success rate and failure percentage are judged at each `interval`
 * sweep, which is also when ejected hosts come back (after base_ejection_time × the number of
 * ejections in a row, capped at max_ejection_time). No more than max_ejection_percent of the
 * hosts are ejected at once, except that one host always may be.
 */
export class OutlierDetector {
  readonly stats: StatsOf<typeof OUTLIER_STATS>;
  private monitors: HostMonitor[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly config: OutlierConfig,
    scope: Scope,
    /** Called after a host's ejection state changed, so the cluster rebuilds its healthy set. */
    private readonly onChange: (host: Host) => void,
    private readonly env: OutlierEnv = REAL_ENV,
  ) {
    this.stats = scope.scope('outlier_detection').table(OUTLIER_STATS);
  }

  /** Starts the interval sweeps (not in unit tests, which call sweep() themselves). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), this.config.intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Membership changed: monitor the new hosts, forget the removed ones (kept hosts keep their state). */
  setHosts(hosts: readonly Host[]): void {
    const keep = new Set(hosts);
    for (const m of this.monitors) {
      if (keep.has(m.host)) continue;
      if (m.host.hasFlag(HealthFlag.FAILED_OUTLIER_CHECK)) this.stats.ejections_active.value--;
    }
    this.monitors = hosts.map((h) => (h.outlier instanceof HostMonitor ? h.outlier : (h.outlier = new HostMonitor(h, this))) as HostMonitor);
  }

  /** A consecutive-failure threshold was reached on `m`. */
  detected(m: HostMonitor, kind: Kind): void {
    // Envoy starts counting afresh after a detection, whether or not the host is ejected.
    if (kind === 'consecutive_local_origin_failure') m.consecutiveLocal = 0;
    else if (kind === 'consecutive_gateway_failure') m.consecutiveGateway = 0;
    else m.consecutive5xx = 0;
    this.eject(m, kind);
  }

  /** Active health checking saw the host pass: end its ejection now (Envoy's default). */
  healthCheckPassed(host: Host): void {
    if (!this.config.successfulActiveHealthCheckUnejectHost) return;
    const m = host.outlier;
    if (m instanceof HostMonitor && host.hasFlag(HealthFlag.FAILED_OUTLIER_CHECK)) this.uneject(m, this.env.now());
  }

  private enforcing(kind: Kind): number {
    const c = this.config;
    switch (kind) {
      case 'consecutive_5xx':
        return c.enforcingConsecutive5xx;
      case 'consecutive_gateway_failure':
        return c.enforcingConsecutiveGatewayFailure;
      case 'consecutive_local_origin_failure':
        return c.enforcingConsecutiveLocalOriginFailure;
      case 'success_rate':
        return c.enforcingSuccessRate;
      case 'local_origin_success_rate':
        return c.enforcingLocalOriginSuccessRate;
      case 'failure_percentage':
        return c.enforcingFailurePercentage;
      case 'failure_percentage_local_origin':
        return c.enforcingFailurePercentageLocalOrigin;
    }
  }

  private eject(m: HostMonitor, kind: Kind): void {
    const host = m.host;
    if (host.hasFlag(HealthFlag.FAILED_OUTLIER_CHECK)) return;
    const s = this.stats;
    s[`ejections_detected_${kind}`].value++;
    const enforce = this.enforcing(kind);
    if (enforce <= 0 || this.env.random() * 100 >= enforce) return;
    const active = s.ejections_active.value;
    const n = this.monitors.length;
    // The first ejection is always allowed, so one bad host among few is still removed.
    if (active > 0 && (100 * (active + 1)) / n > this.config.maxEjectionPercent) {
      s.ejections_overflow.value++;
      return;
    }
    const c = this.config;
    // The multiplier grows while it still lengthens the ejection (capped at max_ejection_time).
    if (c.baseEjectionTimeMs * m.ejections < c.maxEjectionTimeMs) m.ejections++;
    m.ejectedAt = this.env.now();
    m.jitterMs = c.maxEjectionTimeJitterMs > 0 ? Math.floor(this.env.random() * (c.maxEjectionTimeJitterMs + 1)) : 0;
    host.setFlag(HealthFlag.FAILED_OUTLIER_CHECK, true);
    s.ejections_active.value++;
    s.ejections_enforced_total.value++;
    s[`ejections_enforced_${kind}`].value++;
    this.onChange(host);
  }

  private uneject(m: HostMonitor, now: number): void {
    m.host.setFlag(HealthFlag.FAILED_OUTLIER_CHECK, false);
    this.stats.ejections_active.value--;
    m.unejectedAt = now;
    // A host back in rotation starts with clean counters, or a couple of stray errors would re-eject it.
    m.resetConsecutive();
    this.onChange(m.host);
  }

  /** One interval: return hosts whose ejection is over, then judge success rates. */
  sweep(): void {
    const c = this.config;
    const now = this.env.now();
    for (const m of this.monitors) {
      if (m.host.hasFlag(HealthFlag.FAILED_OUTLIER_CHECK)) {
        const ejectFor = Math.min(c.baseEjectionTimeMs * m.ejections, c.maxEjectionTimeMs) + m.jitterMs;
        if (now - m.ejectedAt >= ejectFor) this.uneject(m, now);
      } else if (m.ejections > 0 && m.unejectedAt >= 0 && now - m.unejectedAt >= c.baseEjectionTimeMs) {
        // Staying healthy earns the multiplier back one step per interval.
        m.ejections--;
      }
    }
    this.judgeRates(false);
    if (c.splitExternalLocalOriginErrors) this.judgeRates(true);
    for (const m of this.monitors) {
      m.extTotal = m.extFailed = m.localTotal = m.localFailed = 0;
    }
  }

  /** Success rate (mean - stdev × factor) and failure percentage over hosts with enough volume. */
  private judgeRates(local: boolean): void {
    const c = this.config;
    const rates: Array<[HostMonitor, number]> = [];
    const failRates: Array<[HostMonitor, number]> = [];
    for (const m of this.monitors) {
      const total = local ? m.localTotal : m.extTotal;
      const failed = local ? m.localFailed : m.extFailed;
      const rate = total > 0 ? (100 * (total - failed)) / total : -1;
      if (!local) m.successRate = total >= c.successRateRequestVolume ? rate : -1;
      if (m.host.hasFlag(HealthFlag.FAILED_OUTLIER_CHECK)) continue;
      if (total >= c.successRateRequestVolume) rates.push([m, rate]);
      if (total >= c.failurePercentageRequestVolume) failRates.push([m, 100 - rate]);
    }
    if (rates.length >= c.successRateMinimumHosts && rates.length > 0) {
      const mean = rates.reduce((s, [, r]) => s + r, 0) / rates.length;
      const variance = rates.reduce((s, [, r]) => s + (r - mean) * (r - mean), 0) / rates.length;
      const threshold = mean - c.successRateStdevFactor * Math.sqrt(variance);
      for (const [m, r] of rates) if (r < threshold) this.eject(m, local ? 'local_origin_success_rate' : 'success_rate');
    }
    if (failRates.length >= c.failurePercentageMinimumHosts && failRates.length > 0) {
      for (const [m, f] of failRates) if (f >= c.failurePercentageThreshold) this.eject(m, local ? 'failure_percentage_local_origin' : 'failure_percentage');
    }
  }
}
