import type { FieldError } from '../../errors.js';
import { DEFAULT_LB_CONFIG, DEFAULT_LEAST_REQUEST, DEFAULT_MAGLEV, DEFAULT_RING_HASH, isPrime, MAX_MAGLEV_TABLE_SIZE, SUPPORTED_LB_POLICIES } from './defaults.js';
import type { LbConfig, LbPolicy } from './types.js';
import type { SlowStartConfig } from './slow_start.js';
import { durationMs } from '../../config/values.js';

type Obj = Record<string, any>;

/** Which `lb_config` member belongs to which policy. */
const POLICY_CONFIG: Record<string, LbPolicy> = {
  round_robin_lb_config: 'ROUND_ROBIN',
  least_request_lb_config: 'LEAST_REQUEST',
  ring_hash_lb_config: 'RING_HASH',
  maglev_lb_config: 'MAGLEV',
};

/** `common_lb_config` members that change nothing yet (healthy_panic_threshold is read by cluster_config). */
const IGNORED_COMMON = [
  'zone_aware_lb_config',
  'locality_weighted_lb_config',
  'update_merge_window',
  'ignore_new_hosts_until_first_hc',
  'close_connections_on_host_set_change',
  'override_host_status',
] as const;

/** uint64 fields arrive as numbers, or decimal strings past 2^53 (the proto3 JSON mapping). */
function u64(v: unknown, dflt: number): number {
  return v === undefined ? dflt : Number(v);
}

/**
 * The load-balancing part of one normalized `envoy.config.cluster.v3.Cluster`: `lb_policy` and
 * the settings of that policy, with Envoy's defaults. Proto-level limits (choice_count ≥ 2, ring
 * sizes ≤ 8M, table_size ≤ 5000011) were checked by the decoder; this adds the rules Envoy
 * enforces in code (maglev table size prime, minimum ≤ maximum ring size).
 */
export function buildLbConfig(c: Obj, path: string, errors: FieldError[], warnings: FieldError[] | null): LbConfig | null {
  const start = errors.length;
  const warn = (p: string, message: string) => warnings?.push({ path: p, message });

  const policy = (c.lb_policy ?? 'ROUND_ROBIN') as LbPolicy;
  if (!SUPPORTED_LB_POLICIES.includes(policy)) {
    errors.push({ path: `${path}.lb_policy`, message: `lb_policy ${policy} is not supported yet (supported: ${SUPPORTED_LB_POLICIES.join(', ')})` });
  }
  if (c.load_balancing_policy) errors.push({ path: `${path}.load_balancing_policy`, message: 'extension load balancing policies are not supported yet; use lb_policy' });
  for (const [field, owner] of Object.entries(POLICY_CONFIG)) {
    if (c[field] === undefined || owner === policy) continue;
    // Envoy documents the three with settings that matter as an error; round robin's only
    // member (slow start) is not implemented anyway.
    if (owner === 'ROUND_ROBIN') warn(`${path}.${field}`, `applies to lb_policy ${owner}, not ${policy}; ignored`);
    else errors.push({ path: `${path}.${field}`, message: `applies to lb_policy ${owner}, but lb_policy is ${policy}` });
  }

  let leastRequest = DEFAULT_LEAST_REQUEST;
  const lr = c.least_request_lb_config as Obj | undefined;
  if (lr && policy === 'LEAST_REQUEST') {
    const choiceCount = lr.choice_count === undefined ? DEFAULT_LEAST_REQUEST.choiceCount : Number(lr.choice_count);
    let bias = DEFAULT_LEAST_REQUEST.activeRequestBias;
    const arb = lr.active_request_bias as Obj | undefined;
    if (arb) {
      // No runtime layer: the default value is what Envoy uses when the key has no override.
      bias = Number(arb.default_value ?? 0);
      if (!Number.isFinite(bias) || bias < 0) {
        errors.push({ path: `${path}.least_request_lb_config.active_request_bias.default_value`, message: `must be a finite number ≥ 0 (got ${arb.default_value})` });
      }
    }
    leastRequest = Object.freeze({ choiceCount, activeRequestBias: bias, activeRequestBiasSet: arb !== undefined });
  }

  let slowStart: SlowStartConfig | null = null;
  const rr = c.round_robin_lb_config as Obj | undefined;
  if (rr?.slow_start_config && policy === 'ROUND_ROBIN') slowStart = buildSlowStart(rr.slow_start_config, `${path}.round_robin_lb_config.slow_start_config`, errors);
  if (lr?.slow_start_config && policy === 'LEAST_REQUEST') slowStart = buildSlowStart(lr.slow_start_config, `${path}.least_request_lb_config.slow_start_config`, errors);

  let ringHash = DEFAULT_RING_HASH;
  const rh = c.ring_hash_lb_config as Obj | undefined;
  if (rh && policy === 'RING_HASH') {
    const rpath = `${path}.ring_hash_lb_config`;
    const min = u64(rh.minimum_ring_size, DEFAULT_RING_HASH.minimumRingSize);
    const max = u64(rh.maximum_ring_size, DEFAULT_RING_HASH.maximumRingSize);
    // Envoy accepts 0 and then builds an empty ring that routes nothing; refuse it instead.
    if (min < 1) errors.push({ path: `${rpath}.minimum_ring_size`, message: 'must be at least 1 (an empty ring routes nothing)' });
    if (max < 1) errors.push({ path: `${rpath}.maximum_ring_size`, message: 'must be at least 1 (an empty ring routes nothing)' });
    else if (min > max) errors.push({ path: `${rpath}.minimum_ring_size`, message: `minimum_ring_size (${min}) > maximum_ring_size (${max})` });
    const hashFunction = (rh.hash_function ?? 'XX_HASH') as string;
    if (hashFunction !== 'XX_HASH' && hashFunction !== 'MURMUR_HASH_2') errors.push({ path: `${rpath}.hash_function`, message: `unknown hash function ${hashFunction}` });
    ringHash = Object.freeze({ minimumRingSize: min, maximumRingSize: max, hashFunction: hashFunction as 'XX_HASH' | 'MURMUR_HASH_2' });
  }

  let maglev = DEFAULT_MAGLEV;
  const mg = c.maglev_lb_config as Obj | undefined;
  if (mg && policy === 'MAGLEV') {
    const tableSize = u64(mg.table_size, DEFAULT_MAGLEV.tableSize);
    // The decoder has already reported sizes over the limit; do not repeat it.
    if (tableSize <= MAX_MAGLEV_TABLE_SIZE && !isPrime(tableSize)) {
      errors.push({ path: `${path}.maglev_lb_config.table_size`, message: `must be a prime number (got ${mg.table_size}; the default is ${DEFAULT_MAGLEV.tableSize})` });
    }
    maglev = Object.freeze({ tableSize });
  }

  let useHostnameForHashing = false;
  const common = (c.common_lb_config ?? {}) as Obj;
  for (const f of IGNORED_COMMON) {
    if (common[f] !== undefined) warn(`${path}.common_lb_config.${f}`, 'is not implemented yet; ignored');
  }
  const ch = common.consistent_hashing_lb_config as Obj | undefined;
  if (ch) {
    useHostnameForHashing = ch.use_hostname_for_hashing === true;
    if (ch.hash_balance_factor !== undefined) {
      warn(`${path}.common_lb_config.consistent_hashing_lb_config.hash_balance_factor`, 'bounded-load consistent hashing is not implemented yet; ignored');
    }
  }

  if (errors.length > start) return null;
  return Object.freeze({
    policy,
    leastRequest,
    ringHash,
    maglev,
    consistentHashing: useHostnameForHashing ? Object.freeze({ useHostnameForHashing }) : DEFAULT_LB_CONFIG.consistentHashing,
    ...(slowStart ? { slowStart } : {}),
  });
}

/**
 * `slow_start_config`: window (required to do anything; Envoy treats an absent window as no slow
 * start), aggression (runtime default_value, 1.0 when unset or ≤ 0 as in Envoy), and
 * min_weight_percent (default 10%).
 */
function buildSlowStart(s: Obj, path: string, errors: FieldError[]): SlowStartConfig | null {
  const windowMs = s.slow_start_window === undefined ? 0 : durationMs(s.slow_start_window)!;
  let aggression = s.aggression?.default_value === undefined ? 1 : Number(s.aggression.default_value);
  if (!Number.isFinite(aggression)) errors.push({ path: `${path}.aggression.default_value`, message: 'must be a finite number' });
  if (!(aggression > 0)) aggression = 1;
  const pct = s.min_weight_percent?.value === undefined ? 10 : Number(s.min_weight_percent.value);
  if (!(pct >= 0 && pct <= 100)) errors.push({ path: `${path}.min_weight_percent.value`, message: 'must be a percentage 0-100' });
  if (windowMs <= 0) return null;
  return Object.freeze({ windowMs, aggression, minWeight: pct / 100 });
}
