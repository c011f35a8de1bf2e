import { defineStats } from '../../../observability/stats.js';

/** `tcp.<stat_prefix>.*`, Envoy's tcp_proxy names. */
export const TCP_PROXY_STATS = defineStats({
  counters: [
    'downstream_cx_total',
    'downstream_cx_no_route',
    'downstream_cx_rx_bytes_total',
    'downstream_cx_tx_bytes_total',
    'idle_timeout',
    'max_downstream_connection_duration',
    'upstream_flush_total',
  ],
  gauges: ['upstream_flush_active'],
});
