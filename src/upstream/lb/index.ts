import { LeastRequestLb } from './least_request.js';
import { RandomLb } from './random.js';
import { RoundRobinLb } from './round_robin.js';
import type { LbPolicy, LoadBalancer } from './types.js';

export const SUPPORTED_LB_POLICIES: readonly LbPolicy[] = ['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST'];

export function createLoadBalancer(policy: LbPolicy, opts: { choiceCount?: number } = {}): LoadBalancer {
  switch (policy) {
    case 'ROUND_ROBIN':
      return new RoundRobinLb();
    case 'RANDOM':
      return new RandomLb();
    case 'LEAST_REQUEST':
      return new LeastRequestLb(opts.choiceCount ?? 2);
  }
}

export type { LbPolicy, LoadBalancer } from './types.js';
export { RoundRobinLb, RandomLb, LeastRequestLb };
