import * as roundRobin from './round_robin.js';
import type { LbConfig, LbPolicy, LoadBalancer, Random } from './types.js';
import { fastRandom } from './util.js';

/**
 * The balancers a running cluster builds. ROUND_ROBIN, Envoy's default, is always here; every
 * other policy's module is imported once a cluster names it, since a sidecar pays idle memory
 * for each module it loads. The cluster manager awaits `loadLbPolicy` before it builds a
 * cluster, so `createLb` stays synchronous (balancers are rebuilt on every membership change).
 */
export type MakeLb = (c: LbConfig, random: Random) => LoadBalancer;

/**
 * How each policy's balancer is made from its module: the one place that knows the
 * constructors, for the lazy path here and the eager createLoadBalancer (index.ts).
 */
export const MAKE_FROM = {
  ROUND_ROBIN: (m: typeof import('./round_robin.js')): MakeLb => (c, r) => new m.RoundRobinLb(r, c.slowStart ?? null),
  RANDOM: (m: typeof import('./random.js')): MakeLb => (_c, r) => new m.RandomLb(r),
  LEAST_REQUEST: (m: typeof import('./least_request.js')): MakeLb => (c, r) => new m.LeastRequestLb(c.leastRequest, r, c.slowStart ?? null),
  RING_HASH: (m: typeof import('./ring_hash.js')): MakeLb => (c, r) => new m.RingHashLb(c.ringHash, c.consistentHashing.useHostnameForHashing, r),
  MAGLEV: (m: typeof import('./maglev.js')): MakeLb => (c, r) => new m.MaglevLb(c.maglev, c.consistentHashing.useHostnameForHashing, r),
};

const makers: Partial<Record<LbPolicy, MakeLb>> = { ROUND_ROBIN: MAKE_FROM.ROUND_ROBIN(roundRobin) };

const loaders: Record<Exclude<LbPolicy, 'ROUND_ROBIN'>, () => Promise<MakeLb>> = {
  RANDOM: () => import('./random.js').then(MAKE_FROM.RANDOM),
  LEAST_REQUEST: () => import('./least_request.js').then(MAKE_FROM.LEAST_REQUEST),
  RING_HASH: () => import('./ring_hash.js').then(MAKE_FROM.RING_HASH),
  MAGLEV: () => import('./maglev.js').then(MAKE_FROM.MAGLEV),
};

const loading = new Map<LbPolicy, Promise<void>>();

/** Imports `policy`'s balancer; null when it is loaded already. */
export function loadLbPolicy(policy: LbPolicy): Promise<void> | null {
  if (makers[policy]) return null;
  let p = loading.get(policy);
  if (!p) {
    p = loaders[policy as Exclude<LbPolicy, 'ROUND_ROBIN'>]().then((make) => {
      makers[policy] = make;
    });
    // A failed import is retried by the next cluster that names the policy.
    p.catch(() => loading.delete(policy));
    loading.set(policy, p);
  }
  return p;
}

export function createLb(c: LbConfig): LoadBalancer {
  const make = makers[c.policy];
  // A path that builds a cluster without loading its policy first: a bug, not a config error.
  if (!make) throw new Error(`load balancing policy ${c.policy} is used before its module was loaded (loadLbPolicy)`);
  return make(c, fastRandom);
}
