import type { LbConfig, LbPolicy, LeastRequestConfig, MaglevConfig, RingHashConfig } from './types.js';

// Envoy's defaults and limits, apart from the balancers: config validation reads them for every
// cluster, while a policy's code loads only when a cluster names it (lazy.ts).

export const SUPPORTED_LB_POLICIES: readonly LbPolicy[] = ['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST', 'RING_HASH', 'MAGLEV'];

export const DEFAULT_LEAST_REQUEST: LeastRequestConfig = Object.freeze({ choiceCount: 2, activeRequestBias: 1, activeRequestBiasSet: false });

export const DEFAULT_RING_HASH: RingHashConfig = Object.freeze({ minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024, hashFunction: 'XX_HASH' });

export const DEFAULT_MAGLEV: MaglevConfig = Object.freeze({ tableSize: 65537 });
/** `maglev_lb_config.table_size` limit in Envoy's proto. */
export const MAX_MAGLEV_TABLE_SIZE = 5000011;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Envoy's defaults for every policy's settings. */
export const DEFAULT_LB_CONFIG: LbConfig = Object.freeze({
  policy: 'ROUND_ROBIN',
  leastRequest: DEFAULT_LEAST_REQUEST,
  ringHash: DEFAULT_RING_HASH,
  maglev: DEFAULT_MAGLEV,
  consistentHashing: Object.freeze({ useHostnameForHashing: false }),
});
