import { defineStats } from '../../../observability/stats.js';

/** `<stat_prefix>.http_local_rate_limit.*`, Envoy's local rate limit names. */
export const LOCAL_RATELIMIT_STATS = defineStats({
  counters: ['enabled', 'enforced', 'rate_limited', 'ok'],
  gauges: [],
});
