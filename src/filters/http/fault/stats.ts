import { defineStats } from '../../../observability/stats.js';

/** `http.<stat_prefix>.fault.*`, Envoy's fault filter names. */
export const FAULT_STATS = defineStats({
  counters: ['delays_injected', 'aborts_injected', 'faults_overflow'],
  gauges: ['active_faults'],
});
