import { defineStats } from '../../observability/stats.js';

/** `cluster.<name>.lb_subsets_*`, Envoy's names. */
export const SUBSET_STATS = defineStats({
  counters: ['lb_subsets_created', 'lb_subsets_removed', 'lb_subsets_selected', 'lb_subsets_fallback'],
  gauges: ['lb_subsets_active'],
});
