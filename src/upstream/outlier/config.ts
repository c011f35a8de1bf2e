import { durationMs } from '../../config/values.js';
import type { FieldError } from '../../errors.js';

type Obj = Record<string, any>;

/** `outlier_detection` of a cluster, validated, with Envoy's defaults. Percentages are 0-100. */
export interface OutlierConfig {
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  readonly maxEjectionTimeJitterMs: number;
  readonly maxEjectionPercent: number;
  readonly consecutive5xx: number;
  readonly enforcingConsecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  readonly enforcingConsecutiveGatewayFailure: number;
  /** Local-origin errors (connect, timeout) counted on their own instead of as 503/504. */
  readonly splitExternalLocalOriginErrors: boolean;
  readonly consecutiveLocalOriginFailure: number;
  readonly enforcingConsecutiveLocalOriginFailure: number;
  readonly enforcingSuccessRate: number;
  readonly enforcingLocalOriginSuccessRate: number;
  readonly successRateMinimumHosts: number;
  readonly successRateRequestVolume: number;
  /** stdev_factor / 1000, as Envoy divides it. */
  readonly successRateStdevFactor: number;
  readonly failurePercentageThreshold: number;
  readonly enforcingFailurePercentage: number;
  readonly enforcingFailurePercentageLocalOrigin: number;
  readonly failurePercentageMinimumHosts: number;
  readonly failurePercentageRequestVolume: number;
  /** An active health check passing ends an ejection at once (Envoy's default: true). */
  readonly successfulActiveHealthCheckUnejectHost: boolean;
}

function num(o: Obj, f: string, dflt: number): number {
  const v = o[f];
  return v === undefined || v === null ? dflt : Number(v);
}

function ms(o: Obj, f: string, dflt: number): number {
  return o[f] === undefined || o[f] === null ? dflt : durationMs(o[f])!;
}

/** Parses `outlier_detection`, pushing every problem with its path. */
export function buildOutlierConfig(o: Obj, path: string, errors: FieldError[]): OutlierConfig | null {
  const start = errors.length;
  const pct = (f: string, dflt: number): number => {
    const v = num(o, f, dflt);
    if (!(v >= 0 && v <= 100)) errors.push({ path: `${path}.${f}`, message: `must be a percentage 0-100 (got ${o[f]})` });
    return v;
  };
  const positive = (f: string, dflt: number): number => {
    const v = num(o, f, dflt);
    if (!(Number.isInteger(v) && v >= 1)) errors.push({ path: `${path}.${f}`, message: `must be at least 1 (got ${o[f]})` });
    return v;
  };
  const intervalMs = ms(o, 'interval', 10_000);
  if (intervalMs <= 0) errors.push({ path: `${path}.interval`, message: 'must be greater than 0' });
  const baseEjectionTimeMs = ms(o, 'base_ejection_time', 30_000);
  if (baseEjectionTimeMs <= 0) errors.push({ path: `${path}.base_ejection_time`, message: 'must be greater than 0' });
  // Envoy raises the 300 s default cap to the base time when the base is longer.
  const maxEjectionTimeMs = Math.max(ms(o, 'max_ejection_time', 300_000), baseEjectionTimeMs);
  const cfg: OutlierConfig = {
    intervalMs,
    baseEjectionTimeMs,
    maxEjectionTimeMs,
    maxEjectionTimeJitterMs: ms(o, 'max_ejection_time_jitter', 0),
    maxEjectionPercent: pct('max_ejection_percent', 10),
    consecutive5xx: positive('consecutive_5xx', 5),
    enforcingConsecutive5xx: pct('enforcing_consecutive_5xx', 100),
    consecutiveGatewayFailure: positive('consecutive_gateway_failure', 5),
    // Envoy detects gateway failures by default but enforces none unless asked.
    enforcingConsecutiveGatewayFailure: pct('enforcing_consecutive_gateway_failure', 0),
    splitExternalLocalOriginErrors: o.split_external_local_origin_errors === true,
    consecutiveLocalOriginFailure: positive('consecutive_local_origin_failure', 5),
    enforcingConsecutiveLocalOriginFailure: pct('enforcing_consecutive_local_origin_failure', 100),
    enforcingSuccessRate: pct('enforcing_success_rate', 100),
    enforcingLocalOriginSuccessRate: pct('enforcing_local_origin_success_rate', 100),
    successRateMinimumHosts: num(o, 'success_rate_minimum_hosts', 5),
    successRateRequestVolume: num(o, 'success_rate_request_volume', 100),
    successRateStdevFactor: num(o, 'success_rate_stdev_factor', 1900) / 1000,
    failurePercentageThreshold: pct('failure_percentage_threshold', 85),
    enforcingFailurePercentage: pct('enforcing_failure_percentage', 0),
    enforcingFailurePercentageLocalOrigin: pct('enforcing_failure_percentage_local_origin', 0),
    failurePercentageMinimumHosts: num(o, 'failure_percentage_minimum_hosts', 5),
    failurePercentageRequestVolume: num(o, 'failure_percentage_request_volume', 50),
    successfulActiveHealthCheckUnejectHost: o.successful_active_health_check_uneject_host !== false,
  };
  if (o.detector_config !== undefined || o.monitors !== undefined) {
    errors.push({ path: `${path}.monitors`, message: 'custom outlier monitors are not supported' });
  }
  return errors.length > start ? null : Object.freeze(cfg);
}
