import { LbContext } from './context.js';
import { DEFAULT_LB_CONFIG } from './defaults.js';
import { LeastRequestLb } from './least_request.js';
import { MaglevLb } from './maglev.js';
import { RandomLb } from './random.js';
import { RingHashLb } from './ring_hash.js';
import { RoundRobinLb } from './round_robin.js';
import type { LbConfig, LbPolicy, LoadBalancer, Random } from './types.js';
import { fastRandom } from './util.js';

export { DEFAULT_LB_CONFIG, SUPPORTED_LB_POLICIES } from './defaults.js';

/** A policy name, or a config whose missing parts take Envoy's defaults. */
export type LbConfigInput = LbPolicy | (Partial<LbConfig> & { readonly policy: LbPolicy });

export function createLoadBalancer(input: LbConfigInput, random: Random = fastRandom): LoadBalancer {
  const c: LbConfig = typeof input === 'string' ? { ...DEFAULT_LB_CONFIG, policy: input } : { ...DEFAULT_LB_CONFIG, ...input };
  const useHostname = c.consistentHashing.useHostnameForHashing;
  switch (c.policy) {
    case 'ROUND_ROBIN':
      return new RoundRobinLb(random, c.slowStart ?? null);
    case 'RANDOM':
      return new RandomLb(random);
    case 'LEAST_REQUEST':
      return new LeastRequestLb(c.leastRequest, random, c.slowStart ?? null);
    case 'RING_HASH':
      return new RingHashLb(c.ringHash, useHostname, random);
    case 'MAGLEV':
      return new MaglevLb(c.maglev, useHostname, random);
  }
}

export type { LbConfig, LbPolicy, LoadBalancer, Random } from './types.js';
export type { Hash64 } from './hash.js';
export type { SlowStartConfig } from './slow_start.js';
export { xxHash64, xxHash64String, murmurHash2 } from './hash.js';
export { isPrime, MAX_MAGLEV_TABLE_SIZE } from './maglev.js';
export { LbContext, RoundRobinLb, RandomLb, LeastRequestLb, RingHashLb, MaglevLb };
