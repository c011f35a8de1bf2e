import { defineStats } from '../../../observability/stats.js';

/**
 * `http.<stat_prefix>.priority_ratelimit.*`: the filter's own (Envoy has no queueing limiter).
 * Each limiter adds its queue stats (granted, queued, waiting, ...) beside these, per source
 * application under `http.<stat_prefix>.app.<name>.priority_ratelimit.*`.
 */
export const PRIORITY_RATELIMIT_STATS = defineStats({
  counters: ['rate_limited'],
  gauges: [],
});
