import { defineStats } from '../../observability/stats.js';

/** `cluster.<name>.outlier_detection.*`, Envoy's names. */
export const OUTLIER_STATS = defineStats({
  counters: [
    'ejections_enforced_total',
    'ejections_overflow',
    'ejections_enforced_consecutive_5xx',
    'ejections_detected_consecutive_5xx',
    'ejections_enforced_consecutive_gateway_failure',
    'ejections_detected_consecutive_gateway_failure',
    'ejections_enforced_consecutive_local_origin_failure',
    'ejections_detected_consecutive_local_origin_failure',
    'ejections_enforced_success_rate',
    'ejections_detected_success_rate',
    'ejections_enforced_local_origin_success_rate',
    'ejections_detected_local_origin_success_rate',
    'ejections_enforced_failure_percentage',
    'ejections_detected_failure_percentage',
    'ejections_enforced_failure_percentage_local_origin',
    'ejections_detected_failure_percentage_local_origin',
  ],
  gauges: ['ejections_active'],
});
