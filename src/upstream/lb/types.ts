import type { Host } from '../host.js';
import type { LbContext } from './context.js';
import type { SlowStartConfig } from './slow_start.js';

/**
 * A load balancer picks one host from the cluster's current healthy set. `update` is called on
 * the control path whenever membership changes and may allocate; `pick` is the data path and
 * must not allocate. `ctx` carries what the request offers (a hash for RING_HASH and MAGLEV);
 * balancers that need nothing from it ignore it, and hashing balancers without a hash pick at
 * random, as Envoy does.
 */
export interface LoadBalancer {
  update(hosts: readonly Host[]): void;
  pick(ctx?: LbContext | null): Host | null;
}

export type LbPolicy = 'ROUND_ROBIN' | 'RANDOM' | 'LEAST_REQUEST' | 'RING_HASH' | 'MAGLEV';

/** Random source, injectable so distribution tests are deterministic. Returns [0, 1). */
export type Random = () => number;

/** `least_request_lb_config`. */
export interface LeastRequestConfig {
  /** `choice_count`: hosts sampled per pick when weights are equal. */
  readonly choiceCount: number;
  /** `active_request_bias.default_value`: weight / (active + 1)^bias when weights differ. */
  readonly activeRequestBias: number;
  /** Envoy uses the weighted schedule even for equal weights once the bias is configured. */
  readonly activeRequestBiasSet: boolean;
}

/** `ring_hash_lb_config`. */
export interface RingHashConfig {
  readonly minimumRingSize: number;
  readonly maximumRingSize: number;
  readonly hashFunction: 'XX_HASH' | 'MURMUR_HASH_2';
}

/** `maglev_lb_config`. */
export interface MaglevConfig {
  /** A prime: the permutation walk only visits every slot when the size is prime. */
  readonly tableSize: number;
}

/** `common_lb_config.consistent_hashing_lb_config`, for RING_HASH and MAGLEV. */
export interface ConsistentHashingConfig {
  readonly useHostnameForHashing: boolean;
}

/** Everything a cluster's balancer is built from: validated, frozen. */
export interface LbConfig {
  readonly policy: LbPolicy;
  readonly leastRequest: LeastRequestConfig;
  readonly ringHash: RingHashConfig;
  readonly maglev: MaglevConfig;
  readonly consistentHashing: ConsistentHashingConfig;
  /** `slow_start_config` of round robin or least request; null = off. */
  readonly slowStart?: SlowStartConfig | null;
}
