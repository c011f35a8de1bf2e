import type { FieldError } from '../errors.js';
import type { Gauge, Scope } from '../observability/stats.js';

/** Envoy's RoutingPriority: a route picks which set of thresholds its traffic counts against. */
export const RoutingPriority = Object.freeze({ DEFAULT: 0, HIGH: 1 } as const);
export type RoutingPriority = 0 | 1;

/** One `circuit_breakers.thresholds` entry, with Envoy's defaults filled in. */
export interface CircuitBreakerThresholds {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

const DEFAULTS: CircuitBreakerThresholds = Object.freeze({ maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 });

type Obj = Record<string, any>;

const PRIORITY_NAMES = ['default', 'high'] as const;

/** `circuit_breakers.<priority>.*`: 1 while the resource is at its limit (Envoy's names). */
interface OpenGauges {
  readonly cx_open: Gauge;
  readonly rq_pending_open: Gauge;
  readonly rq_open: Gauge;
  readonly rq_retry_open: Gauge;
}

/** `remaining_*`, only with `track_remaining` (Envoy keeps them off by default). */
interface RemainingGauges {
  readonly remaining_cx: Gauge;
  readonly remaining_pending: Gauge;
  readonly remaining_rq: Gauge;
  readonly remaining_retries: Gauge;
}

/**
 * The resources of one priority of one cluster, shared by every protocol that sends to it
 * (Envoy's ResourceManager). Callers check `can*()` before taking a resource and pair each
 * `add*(1)` with an `add*(-1)`; the open gauges follow every change.
 */
export class BreakerState {
  connections = 0;
  pending = 0;
  requests = 0;
  retries = 0;

  constructor(
    readonly thresholds: CircuitBreakerThresholds,
    private readonly open: OpenGauges | null,
    private readonly remaining: RemainingGauges | null,
  ) {
    this.publish();
  }

  canConnect(): boolean {
    return this.connections < this.thresholds.maxConnections;
  }
  canQueue(): boolean {
    return this.pending < this.thresholds.maxPendingRequests;
  }
  canRequest(): boolean {
    return this.requests < this.thresholds.maxRequests;
  }
  canRetry(): boolean {
    return this.retries < this.thresholds.maxRetries;
  }

  // Each change updates only the gauges of the resource it changed: an exchange changes its
  // request count twice, and writing all eight gauges each time was ~220 instructions a gRPC call.
  addConnection(d: number): void {
    this.connections += d;
    const t = this.thresholds;
    if (this.open) this.open.cx_open.value = this.connections >= t.maxConnections ? 1 : 0;
    if (this.remaining) this.remaining.remaining_cx.value = Math.max(0, t.maxConnections - this.connections);
  }
  addPending(d: number): void {
    this.pending += d;
    const t = this.thresholds;
    if (this.open) this.open.rq_pending_open.value = this.pending >= t.maxPendingRequests ? 1 : 0;
    if (this.remaining) this.remaining.remaining_pending.value = Math.max(0, t.maxPendingRequests - this.pending);
  }
  addRequest(d: number): void {
    this.requests += d;
    const t = this.thresholds;
    if (this.open) this.open.rq_open.value = this.requests >= t.maxRequests ? 1 : 0;
    if (this.remaining) this.remaining.remaining_rq.value = Math.max(0, t.maxRequests - this.requests);
  }
  addRetry(d: number): void {
    this.retries += d;
    const t = this.thresholds;
    if (this.open) this.open.rq_retry_open.value = this.retries >= t.maxRetries ? 1 : 0;
    if (this.remaining) this.remaining.remaining_retries.value = Math.max(0, t.maxRetries - this.retries);
  }

  /** Every gauge, from the counts (at the start). */
  private publish(): void {
    const t = this.thresholds;
    const o = this.open;
    if (o) {
      o.cx_open.value = this.connections >= t.maxConnections ? 1 : 0;
      o.rq_pending_open.value = this.pending >= t.maxPendingRequests ? 1 : 0;
      o.rq_open.value = this.requests >= t.maxRequests ? 1 : 0;
      o.rq_retry_open.value = this.retries >= t.maxRetries ? 1 : 0;
    }
    const r = this.remaining;
    if (r) {
      r.remaining_cx.value = Math.max(0, t.maxConnections - this.connections);
      r.remaining_pending.value = Math.max(0, t.maxPendingRequests - this.pending);
      r.remaining_rq.value = Math.max(0, t.maxRequests - this.requests);
      r.remaining_retries.value = Math.max(0, t.maxRetries - this.retries);
    }
  }
}

/**
 * A cluster's circuit breakers (Envoy `circuit_breakers.thresholds`): one BreakerState per
 * RoutingPriority, each with its own limits and counts. The getters keep the DEFAULT
 * thresholds readable the way callers used them before priorities existed.
 */
export class CircuitBreakers {
  readonly byPriority: readonly [BreakerState, BreakerState];

  constructor(thresholds: readonly [CircuitBreakerThresholds, CircuitBreakerThresholds], trackRemaining: readonly [boolean, boolean], scope: Scope | null) {
    const make = (p: 0 | 1): BreakerState => {
      const s = scope?.scope('circuit_breakers').scope(PRIORITY_NAMES[p]) ?? null;
      const open: OpenGauges | null = s
        ? { cx_open: s.gauge('cx_open'), rq_pending_open: s.gauge('rq_pending_open'), rq_open: s.gauge('rq_open'), rq_retry_open: s.gauge('rq_retry_open') }
        : null;
      const rem: RemainingGauges | null = s && trackRemaining[p]
        ? { remaining_cx: s.gauge('remaining_cx'), remaining_pending: s.gauge('remaining_pending'), remaining_rq: s.gauge('remaining_rq'), remaining_retries: s.gauge('remaining_retries') }
        : null;
      return new BreakerState(thresholds[p], open, rem);
    };
    this.byPriority = [make(0), make(1)];
  }

  /** The resources of `priority` (anything but HIGH counts as DEFAULT). */
  at(priority: RoutingPriority | number): BreakerState {
    return this.byPriority[priority === RoutingPriority.HIGH ? 1 : 0];
  }

  get maxConnections(): number {
    return this.byPriority[0].thresholds.maxConnections;
  }
  get maxPendingRequests(): number {
    return this.byPriority[0].thresholds.maxPendingRequests;
  }
  get maxRequests(): number {
    return this.byPriority[0].thresholds.maxRequests;
  }
  get maxRetries(): number {
    return this.byPriority[0].thresholds.maxRetries;
  }
}

/** Parses a `RoutingPriority` given by name or number; null (with an error) otherwise. */
export function parseRoutingPriority(v: unknown, path: string, errors: FieldError[]): RoutingPriority | null {
  if (v === undefined || v === null || v === 'DEFAULT' || v === 0) return RoutingPriority.DEFAULT;
  if (v === 'HIGH' || v === 1) return RoutingPriority.HIGH;
  errors.push({ path, message: `unknown routing priority ${JSON.stringify(v)} (DEFAULT or HIGH)` });
  return null;
}

const FIELDS = [
  ['max_connections', 'maxConnections'],
  ['max_pending_requests', 'maxPendingRequests'],
  ['max_requests', 'maxRequests'],
  ['max_retries', 'maxRetries'],
] as const;

/**
 * Validates `circuit_breakers` (cluster config path `path`), reporting every problem. Returns
 * the DEFAULT and HIGH thresholds (Envoy's defaults where a priority or a field is unset).
 */
export function parseCircuitBreakers(
  cb: Obj | undefined | null,
  path: string,
  errors: FieldError[],
  warnings: FieldError[] | null = null,
): { thresholds: [CircuitBreakerThresholds, CircuitBreakerThresholds]; trackRemaining: [boolean, boolean] } {
  const out: [CircuitBreakerThresholds, CircuitBreakerThresholds] = [DEFAULTS, DEFAULTS];
  const track: [boolean, boolean] = [false, false];
  const list = (cb?.thresholds ?? []) as Obj[];
  const seen = [false, false];
  list.forEach((t, i) => {
    const tp = `${path}.thresholds[${i}]`;
    const p = parseRoutingPriority(t.priority, `${tp}.priority`, errors);
    if (p === null) return;
    if (seen[p]) errors.push({ path: `${tp}.priority`, message: `priority ${PRIORITY_NAMES[p]!.toUpperCase()} is given twice` });
    seen[p] = true;
    const v: Record<string, number> = {};
    for (const [field, key] of FIELDS) {
      const raw = t[field];
      if (raw === undefined || raw === null) {
        v[key] = DEFAULTS[key];
        continue;
      }
      // Wrapper types (UInt32Value) arrive as plain numbers or as { value }.
      const n = Number(typeof raw === 'object' ? raw.value : raw);
      if (!Number.isInteger(n) || n < 0) errors.push({ path: `${tp}.${field}`, message: 'must be a non-negative integer' });
      v[key] = n;
    }
    out[p] = Object.freeze(v as unknown as CircuitBreakerThresholds);
    track[p] = t.track_remaining === true;
    if (warnings) {
      if (t.retry_budget) warnings.push({ path: `${tp}.retry_budget`, message: 'is not supported; max_retries applies' });
      if (t.max_connection_pools !== undefined && t.max_connection_pools !== null) warnings.push({ path: `${tp}.max_connection_pools`, message: 'is not supported; ignored' });
    }
  });
  if (warnings && cb?.per_host_thresholds?.length) warnings.push({ path: `${path}.per_host_thresholds`, message: 'is not supported; ignored' });
  return { thresholds: out, trackRemaining: track };
}

/**
 * The circuit breakers of a cluster from its normalized config; `scope` is the cluster's stat
 * scope (`cluster.<name>`), null for none. Config was validated by parseCircuitBreakers.
 */
export function circuitBreakersOf(cluster: Obj | undefined, scope: Scope | null = null): CircuitBreakers {
  const { thresholds, trackRemaining } = parseCircuitBreakers(cluster?.circuit_breakers as Obj | undefined, 'circuit_breakers', []);
  return new CircuitBreakers(thresholds, trackRemaining, scope);
}

/** Envoy's /clusters text lines for the thresholds: `<cluster>::default_priority::max_connections::1024`. */
export function breakersText(cluster: string, cb: CircuitBreakers): string {
  let out = '';
  for (const [i, p] of (['default_priority', 'high_priority'] as const).entries()) {
    const t = cb.byPriority[i as 0 | 1].thresholds;
    out += `${cluster}::${p}::max_connections::${t.maxConnections}\n${cluster}::${p}::max_pending_requests::${t.maxPendingRequests}\n`;
    out += `${cluster}::${p}::max_requests::${t.maxRequests}\n${cluster}::${p}::max_retries::${t.maxRetries}\n`;
  }
  return out;
}

/** Envoy's /clusters?format=json `circuit_breakers` object. */
export function breakersJson(cb: CircuitBreakers): unknown {
  return {
    thresholds: cb.byPriority.map((s, i) => ({
      priority: i === 1 ? 'HIGH' : 'DEFAULT',
      max_connections: s.thresholds.maxConnections,
      max_pending_requests: s.thresholds.maxPendingRequests,
      max_requests: s.thresholds.maxRequests,
      max_retries: s.thresholds.maxRetries,
    })),
  };
}
