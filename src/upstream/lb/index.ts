import { LbContext } from './context.js';
import { DEFAULT_LB_CONFIG } from './defaults.js';
import * as leastRequest from './least_request.js';
import { MAKE_FROM, type MakeLb } from './lazy.js';
import * as maglev from './maglev.js';
import * as random from './random.js';
import * as ringHash from './ring_hash.js';
import * as roundRobin from './round_robin.js';
import type { LbConfig, LbPolicy, LoadBalancer, Random } from './types.js';
import { fastRandom } from './util.js';

export { DEFAULT_LB_CONFIG, SUPPORTED_LB_POLICIES } from './defaults.js';

/** A policy name, or a config whose missing parts take Envoy's defaults. */
export type LbConfigInput = LbPolicy | (Partial<LbConfig> & { readonly policy: LbPolicy });

/** Every policy's balancer, loaded up front (tests and benchmarks; a running cluster uses lazy.ts). */
const EAGER: Record<LbPolicy, MakeLb> = {
  ROUND_ROBIN: MAKE_FROM.ROUND_ROBIN(roundRobin),
  RANDOM: MAKE_FROM.RANDOM(random),
  LEAST_REQUEST: MAKE_FROM.LEAST_REQUEST(leastRequest),
  RING_HASH: MAKE_FROM.RING_HASH(ringHash),
  MAGLEV: MAKE_FROM.MAGLEV(maglev),
};

export function createLoadBalancer(input: LbConfigInput, rnd: Random = fastRandom): LoadBalancer {
  const c: LbConfig = typeof input === 'string' ? { ...DEFAULT_LB_CONFIG, policy: input } : { ...DEFAULT_LB_CONFIG, ...input };
  return EAGER[c.policy](c, rnd);
}

export type { LbConfig, LbPolicy, LoadBalancer, Random } from './types.js';
export type { Hash64 } from './hash.js';
export type { SlowStartConfig } from './slow_start.js';
export { xxHash64, xxHash64String, murmurHash2 } from './hash.js';
export { isPrime, MAX_MAGLEV_TABLE_SIZE } from './maglev.js';
export { LbContext };
export { RoundRobinLb } from './round_robin.js';
export { RandomLb } from './random.js';
export { LeastRequestLb } from './least_request.js';
export { RingHashLb } from './ring_hash.js';
export { MaglevLb } from './maglev.js';
