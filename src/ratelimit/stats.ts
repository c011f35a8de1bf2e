import { defineStats } from '../observability/stats.js';

/** `<prefix>.priority_ratelimit.*`: Strait's own (Envoy has no queueing limiter). */
export const PRIORITY_LIMITER_STATS = defineStats({
  counters: ['granted', 'granted_after_wait', 'queued', 'rejected', 'queue_overflow', 'timed_out'],
  gauges: ['waiting', 'active'],
});
