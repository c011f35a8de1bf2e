import { defineStats } from '../../../observability/stats.js';

/**
 * `http.<stat_prefix>.cors.*`, Envoy's names: `origin_valid` / `origin_invalid`, requests with a
 * non-empty Origin that a policy's allow_origin_string_match did or did not match. Requests
 * without an Origin, or on routes without a policy (or with it off), are not counted.
 */
export const CORS_STATS = defineStats({
  counters: ['origin_valid', 'origin_invalid'],
  gauges: [],
});
