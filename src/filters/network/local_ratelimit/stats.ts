import { defineStats } from '../../../observability/stats.js';

/** `local_ratelimit.<stat_prefix>.*`, Envoy's network local rate limit names. */
export const NETWORK_LOCAL_RATELIMIT_STATS = defineStats({
  counters: ['rate_limited'],
  gauges: [],
});
