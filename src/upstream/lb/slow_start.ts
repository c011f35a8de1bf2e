import type { Host } from '../host.js';

/** `slow_start_config` of ROUND_ROBIN and LEAST_REQUEST. */
export interface SlowStartConfig {
  readonly windowMs: number;
  /** Ramp shape: the time factor is raised to 1/aggression (1 = linear). */
  readonly aggression: number;
  /** The least share of its weight a host in slow start gets, 0-1 (Envoy's default 10%). */
  readonly minWeight: number;
}

/**
 * Envoy's slow-start scaling of a host's weight: inside the window after the host joined (or
 * came back through health checks), weight × max(minWeight, (t / window)^(1/aggression)), with
 * t at least 1 ms; outside it the weight itself.
 */
export function slowStartWeight(host: Host, c: SlowStartConfig, now: number): number {
  const since = host.slowStartFrom;
  if (since <= 0) return host.weight;
  const age = now - since;
  if (age >= c.windowMs) return host.weight;
  const t = Math.max(1, age) / c.windowMs;
  const f = c.aggression === 1 ? t : Math.pow(t, 1 / c.aggression);
  return host.weight * Math.max(c.minWeight, f);
}
