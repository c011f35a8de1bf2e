import type { PeerAddress } from '../io/engine.js';
import { NO_OUTLIER, type OutlierMonitor } from './outlier/monitor.js';

/**
 * Why a host is out of (or demoted in) rotation, as bits: Envoy's health flags. Any bit of
 * UNHEALTHY takes the host out of the healthy set; DEGRADED keeps it as a last resort.
 */
export const HealthFlag = {
  FAILED_ACTIVE_HC: 1,
  FAILED_OUTLIER_CHECK: 2,
  FAILED_EDS_HEALTH: 4,
  DEGRADED_ACTIVE_HC: 8,
  /** Added to a health-checked cluster and not checked yet (always set with FAILED_ACTIVE_HC). */
  PENDING_ACTIVE_HC: 16,
} as const;
const UNHEALTHY = HealthFlag.FAILED_ACTIVE_HC | HealthFlag.FAILED_OUTLIER_CHECK | HealthFlag.FAILED_EDS_HEALTH;

/** `/failed_active_hc/failed_outlier_check`, as /clusters prints health_flags. */
const FLAG_NAMES: ReadonlyArray<readonly [number, string]> = [
  [HealthFlag.FAILED_ACTIVE_HC, 'failed_active_hc'],
  [HealthFlag.FAILED_OUTLIER_CHECK, 'failed_outlier_check'],
  [HealthFlag.FAILED_EDS_HEALTH, 'failed_eds_health'],
  [HealthFlag.DEGRADED_ACTIVE_HC, 'degraded_active_hc'],
  [HealthFlag.PENDING_ACTIVE_HC, 'pending_active_hc'],
];

/** Per-host figures, shown by /clusters the way Envoy prints them (not in /stats). */
export interface HostCounters {
  cx_total: number;
  cx_active: number;
  cx_connect_fail: number;
  rq_total: number;
  rq_active: number;
}

/**
 * One upstream endpoint. Its identity is address + priority; weight and metadata may be updated in
 * place by EDS (as Envoy does), so connections and counters survive such a change.
 */
export class Host {
  readonly counters: HostCounters = { cx_total: 0, cx_active: 0, cx_connect_fail: 0, rq_total: 0, rq_active: 0 };
  /** HealthFlag bits; 0 = healthy. */
  healthFlags = 0;
  /**
   * Passive health: data paths report each result here (`host.outlier.putResult(...)`). A
   * shared no-op until the cluster has outlier detection, so callers never test for null.
   */
  outlier: OutlierMonitor = NO_OUTLIER;
  /** When the host joined (or last came back through active health checks): slow start's clock, ms. */
  slowStartFrom = 0;

  constructor(
    readonly address: PeerAddress,
    public weight: number,
    readonly priority: number,
    /** The DNS name the address came from (STRICT_DNS), or ''. */
    readonly hostname: string,
    public metadata: unknown,
  ) {}

  /** In the healthy set: no failed active check, no outlier ejection, not unhealthy per EDS. */
  get healthy(): boolean {
    return (this.healthFlags & UNHEALTHY) === 0;
  }

  /** Sets the EDS part of the health (the endpoint's `health_status`). */
  set healthy(v: boolean) {
    this.setFlag(HealthFlag.FAILED_EDS_HEALTH, !v);
  }

  get degraded(): boolean {
    return (this.healthFlags & HealthFlag.DEGRADED_ACTIVE_HC) !== 0;
  }

  setFlag(flag: number, on: boolean): void {
    this.healthFlags = on ? this.healthFlags | flag : this.healthFlags & ~flag;
  }

  hasFlag(flag: number): boolean {
    return (this.healthFlags & flag) !== 0;
  }

  /** `healthy`, or every set flag as `/name`, the way Envoy's /clusters prints health_flags. */
  get healthFlagsText(): string {
    if (this.healthFlags === 0) return 'healthy';
    let out = '';
    for (const [bit, name] of FLAG_NAMES) if (this.healthFlags & bit) out += `/${name}`;
    return out;
  }

  /** `10.0.0.1:80`, `[::1]:80` or the unix path, as /clusters prints it. */
  get label(): string {
    const a = this.address;
    if (a.family === 'unix') return a.address;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  /** Load the balancers compare: in-flight requests, or open connections for L4 traffic. */
  get load(): number {
    return this.counters.rq_active + this.counters.cx_active;
  }
}
