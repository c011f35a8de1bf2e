import { defineStats } from '../observability/stats.js';

/** `cluster.<name>.*`, Envoy's names. */
export const CLUSTER_STATS = defineStats({
  counters: [
    'upstream_cx_total',
    'upstream_cx_connect_fail',
    'upstream_cx_connect_timeout',
    'upstream_cx_connect_attempts_exceeded',
    'upstream_cx_none_healthy',
    'upstream_cx_overflow',
    'upstream_cx_destroy',
    'upstream_cx_destroy_local',
    'upstream_cx_destroy_remote',
    'upstream_cx_idle_timeout',
    'upstream_cx_rx_bytes_total',
    'upstream_cx_tx_bytes_total',
    'upstream_rq_total',
    'upstream_rq_timeout',
    'upstream_rq_per_try_timeout',
    'upstream_rq_retry',
    'upstream_rq_retry_overflow',
    'upstream_rq_pending_overflow',
    'upstream_rq_rx_reset',
    'update_attempt',
    'update_success',
    'update_failure',
    'update_rejected',
    'update_empty',
    'membership_change',
  ],
  gauges: ['upstream_cx_active', 'upstream_rq_active', 'membership_total', 'membership_healthy'],
});

/** `cluster_manager.*`. */
export const CLUSTER_MANAGER_STATS = defineStats({
  counters: ['cluster_added', 'cluster_modified', 'cluster_removed', 'cluster_updated'],
  gauges: ['active_clusters', 'warming_clusters'],
});

/** `cluster.<name>.ring_hash_lb.*`: ring size and how evenly hosts are placed on it. */
export const RING_HASH_LB_STATS = defineStats({
  counters: [],
  gauges: ['size', 'min_hashes_per_host', 'max_hashes_per_host'],
});

/** `cluster.<name>.maglev_lb.*`: table entries per host. */
export const MAGLEV_LB_STATS = defineStats({
  counters: [],
  gauges: ['min_entries_per_host', 'max_entries_per_host'],
});
