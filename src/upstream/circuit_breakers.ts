/**
 * Circuit-breaker thresholds of a cluster (Envoy `circuit_breakers.thresholds`, priority
 * DEFAULT), with Envoy's defaults. Request-level protocols (RPC now, HTTP later) enforce
 * max_requests and max_retries; tcp_proxy does not enforce max_connections yet.
 */
export interface CircuitBreakers {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

const DEFAULTS: CircuitBreakers = Object.freeze({ maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 });

type Obj = Record<string, any>;

export function circuitBreakersOf(cluster: Obj | undefined): CircuitBreakers {
  const thresholds = ((cluster?.circuit_breakers as Obj | undefined)?.thresholds ?? []) as Obj[];
  const t = thresholds.find((x) => (x.priority ?? 'DEFAULT') === 'DEFAULT');
  if (!t) return DEFAULTS;
  const n = (v: unknown, d: number): number => (v === undefined || v === null ? d : Number(v));
  return Object.freeze({
    maxConnections: n(t.max_connections, DEFAULTS.maxConnections),
    maxPendingRequests: n(t.max_pending_requests, DEFAULTS.maxPendingRequests),
    maxRequests: n(t.max_requests, DEFAULTS.maxRequests),
    maxRetries: n(t.max_retries, DEFAULTS.maxRetries),
  });
}
