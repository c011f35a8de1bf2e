import { RoundRobinLb } from './round_robin.js';
import type { LbConfig, LbPolicy, LoadBalancer } from './types.js';
import { fastRandom } from './util.js';

/**
 * The balancers a running cluster builds. ROUND_ROBIN, Envoy's default, is always here; every
 * other policy's module is imported once a cluster names it, since a sidecar pays idle memory
 * for each module it loads. The cluster manager awaits `loadLbPolicy` before it builds a
 * cluster, so `createLb` stays synchronous (balancers are rebuilt on every membership change).
 */
type MakeLb = (c: LbConfig) => LoadBalancer;

const makers: Partial<Record<LbPolicy, MakeLb>> = {
  ROUND_ROBIN: (c) => new RoundRobinLb(fastRandom, c.slowStart ?? null),
};

const loaders: Record<Exclude<LbPolicy, 'ROUND_ROBIN'>, () => Promise<MakeLb>> = {
  RANDOM: async () => {
    const { RandomLb } = await import('./random.js');
    return () => new RandomLb(fastRandom);
  },
  LEAST_REQUEST: async () => {
    const { LeastRequestLb } = await import('./least_request.js');
    return (c) => new LeastRequestLb(c.leastRequest, fastRandom, c.slowStart ?? null);
  },
  RING_HASH: async () => {
    const { RingHashLb } = await import('./ring_hash.js');
    return (c) => new RingHashLb(c.ringHash, c.consistentHashing.useHostnameForHashing, fastRandom);
  },
  MAGLEV: async () => {
    const { MaglevLb } = await import('./maglev.js');
    return (c) => new MaglevLb(c.maglev, c.consistentHashing.useHostnameForHashing, fastRandom);
  },
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
  return make(c);
}
