import type { Host } from '../host.js';

/**
 * A load balancer picks one host from the cluster's current healthy set. `update` is called on
 * the control path whenever membership changes; `pick` is the data path and must not allocate.
 */
export interface LoadBalancer {
  update(hosts: readonly Host[]): void;
  pick(): Host | null;
}

export type LbPolicy = 'ROUND_ROBIN' | 'RANDOM' | 'LEAST_REQUEST';

/** Random source, injectable so distribution tests are deterministic. Returns [0, 1). */
export type Random = () => number;
