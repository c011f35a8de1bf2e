import { defineStats } from '../../observability/stats.js';

/** `cluster.<name>.health_check.*`, Envoy's names. */
export const HEALTH_CHECK_STATS = defineStats({
  counters: ['attempt', 'success', 'failure', 'network_failure', 'passive_failure', 'verify_cluster'],
  gauges: ['healthy', 'degraded'],
});
