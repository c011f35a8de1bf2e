import type { Host } from './host.js';
import type { LbContext } from './lb/context.js';
import type { LoadBalancer, Random } from './lb/types.js';
import { fastRandom } from './lb/util.js';

/** Envoy's defaults: 1.4 overprovisioning (a priority at ≥ 72% health keeps all its traffic), 50% panic. */
export const DEFAULT_OVERPROVISIONING = 140;
export const DEFAULT_PANIC_THRESHOLD = 50;

export interface PriorityOptions {
  /** `load_assignment.policy.overprovisioning_factor`, in percent (140 = 1.4). */
  readonly overprovisioningFactor: number;
  /** `common_lb_config.healthy_panic_threshold`, percent; 0 disables panic. */
  readonly panicThreshold: number;
}

export const DEFAULT_PRIORITY_OPTIONS: PriorityOptions = Object.freeze({
  overprovisioningFactor: DEFAULT_OVERPROVISIONING,
  panicThreshold: DEFAULT_PANIC_THRESHOLD,
});

/** One priority level: its hosts by health, and balancers built for the sets it needs. */
class Level {
  all: Host[] = [];
  healthy: Host[] = [];
  degraded: Host[] = [];
  healthyLb: LoadBalancer | null = null;
  degradedLb: LoadBalancer | null = null;
  panicLb: LoadBalancer | null = null;
  panic = false;
}

/**
 * The hosts of a cluster (or of one subset) across priorities, and Envoy's rules for which
 * priority serves a request:
 * - each priority's availability is its healthy share × the overprovisioning factor, capped at
 *   100%; traffic goes to priority 0 up to its availability, the rest spills to priority 1, …;
 *   degraded hosts take what healthy hosts of every priority cannot;
 * - when the total availability is under 100%, a priority whose healthy share is below the
 *   panic threshold balances over all its hosts, healthy or not (better than overloading the
 *   few healthy ones); when every priority panics, load follows host counts.
 * The per-request pick is a draw over precomputed cumulative loads: no allocation.
 */
export class PrioritySet {
  private levels: Level[] = [];
  /** Cumulative load per slot: [healthy p0, degraded p0, healthy p1, degraded p1, …], out of 100. */
  private cumulative = new Float64Array(0);
  /** Whether the last pick was a panic pick (for the lb_healthy_panic counter). */
  lastPickPanicked = false;
  /** The common case — one healthy set takes all traffic — picks without a draw. */
  private only: LoadBalancer | null = null;

  constructor(
    private readonly makeLb: () => LoadBalancer,
    private readonly options: PriorityOptions = DEFAULT_PRIORITY_OPTIONS,
    private readonly random: Random = fastRandom,
  ) {}

  /** Every host of the set, any health; called whenever membership or health changes. */
  update(hosts: readonly Host[]): void {
    let maxPriority = -1;
    for (const h of hosts) if (h.priority > maxPriority) maxPriority = h.priority;
    const levels: Level[] = [];
    for (let p = 0; p <= maxPriority; p++) levels.push(this.levels[p] ?? new Level());
    for (const l of levels) {
      l.all = [];
      l.healthy = [];
      l.degraded = [];
    }
    for (const h of hosts) {
      const l = levels[h.priority]!;
      l.all.push(h);
      if (h.healthy) (h.degraded ? l.degraded : l.healthy).push(h);
    }
    this.levels = levels;
    this.computeLoads();
    for (const l of levels) {
      // Balancers are built only for the sets that can receive traffic, and kept for reuse.
      if (l.healthy.length || l.healthyLb) (l.healthyLb ??= this.makeLb()).update(l.healthy);
      if (l.degraded.length || l.degradedLb) (l.degradedLb ??= this.makeLb()).update(l.degraded);
      if (l.panic || l.panicLb) (l.panicLb ??= this.makeLb()).update(l.panic ? l.all : []);
    }
  }

  private computeLoads(): void {
    const { overprovisioningFactor: of, panicThreshold } = this.options;
    const levels = this.levels;
    const n = levels.length;
    const health = new Float64Array(n);
    const degraded = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const l = levels[i]!;
      const size = l.all.length;
      if (size === 0) continue;
      health[i] = Math.min(100, (of * l.healthy.length) / size);
      degraded[i] = Math.min(100, (of * l.degraded.length) / size);
      total += health[i]! + degraded[i]!;
    }
    const normalizedTotal = Math.min(100, total);
    let allPanic = n > 0;
    for (let i = 0; i < n; i++) {
      const l = levels[i]!;
      const size = l.all.length;
      const share = size ? (100 * (l.healthy.length + l.degraded.length)) / size : 0;
      l.panic = panicThreshold > 0 && normalizedTotal < 100 && size > 0 && share < panicThreshold;
      if (!l.panic && size > 0) allPanic = false;
    }
    const loads = new Float64Array(2 * n);
    if (allPanic && panicThreshold > 0) {
      // Total panic: every priority balances over all its hosts, in proportion to their number.
      let hostCount = 0;
      for (const l of levels) hostCount += l.all.length;
      for (let i = 0; i < n; i++) loads[2 * i] = hostCount ? (100 * levels[i]!.all.length) / hostCount : 0;
    } else if (normalizedTotal > 0) {
      let remaining = 100;
      for (let i = 0; i < n; i++) {
        const v = Math.min(remaining, (health[i]! * 100) / normalizedTotal);
        loads[2 * i] = v;
        remaining -= v;
      }
      for (let i = 0; i < n; i++) {
        const v = Math.min(remaining, (degraded[i]! * 100) / normalizedTotal);
        loads[2 * i + 1] = v;
        remaining -= v;
      }
      // Rounding leftovers go to the first slot that takes traffic.
      if (remaining > 1e-9) {
        const first = loads.findIndex((v) => v > 0);
        if (first >= 0) loads[first]! += remaining;
      }
    }
    const cum = new Float64Array(2 * n);
    let sum = 0;
    for (let i = 0; i < 2 * n; i++) {
      sum += loads[i]!;
      cum[i] = sum;
    }
    this.cumulative = cum;
    const full = loads.findIndex((v) => v >= 100 - 1e-9);
    const level = full >= 0 && (full & 1) === 0 ? levels[full >> 1]! : null;
    this.only = level && !level.panic ? (level.healthyLb ??= this.makeLb()) : null;
  }

  /** Per-priority loads as percentages [healthy, degraded], for tests and /clusters. */
  loads(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let prev = 0;
    for (let i = 0; i < this.levels.length; i++) {
      const h = this.cumulative[2 * i]! - prev;
      const d = this.cumulative[2 * i + 1]! - this.cumulative[2 * i]!;
      prev = this.cumulative[2 * i + 1]!;
      out.push([Math.round(h * 1000) / 1000, Math.round(d * 1000) / 1000]);
    }
    return out;
  }

  /** Priority 0's healthy-set balancer (ring and table stats report on it). */
  get primaryLb(): LoadBalancer | null {
    return this.levels[0]?.healthyLb ?? null;
  }

  get size(): number {
    let n = 0;
    for (const l of this.levels) n += l.all.length;
    return n;
  }

  pick(ctx?: LbContext | null): Host | null {
    const only = this.only;
    if (only !== null) {
      this.lastPickPanicked = false;
      return only.pick(ctx);
    }
    const cum = this.cumulative;
    const n = cum.length;
    this.lastPickPanicked = false;
    if (n === 0 || cum[n - 1]! <= 0) return null;
    // A request with a hash picks its priority from the hash too, so the key's host is stable.
    const draw = ctx && ctx.hasHash ? (ctx.hashLo % 100) + 0.5 : this.random() * cum[n - 1]!;
    let slot = 0;
    while (slot < n - 1 && cum[slot]! <= draw) slot++;
    const l = this.levels[slot >> 1]!;
    if (l.panic) {
      this.lastPickPanicked = true;
      return l.panicLb!.pick(ctx);
    }
    return ((slot & 1) === 0 ? l.healthyLb : l.degradedLb)?.pick(ctx) ?? null;
  }
}
