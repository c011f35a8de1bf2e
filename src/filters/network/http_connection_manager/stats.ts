import { defineStats } from '../../../observability/stats.js';

/** `http.<stat_prefix>.*`: Envoy's connection manager and router names. */
export const HCM_STATS = defineStats({
  counters: [
    'downstream_cx_total',
    'downstream_cx_http1_total',
    'downstream_cx_http2_total',
    'downstream_cx_destroy',
    'downstream_cx_protocol_error',
    'downstream_cx_idle_timeout',
    'downstream_cx_rx_bytes_total',
    'downstream_cx_tx_bytes_total',
    'downstream_rq_total',
    'downstream_rq_http1_total',
    'downstream_rq_http2_total',
    'downstream_rq_1xx',
    'downstream_rq_2xx',
    'downstream_rq_3xx',
    'downstream_rq_4xx',
    'downstream_rq_5xx',
    'downstream_rq_completed',
    'downstream_rq_too_large',
    'downstream_rq_header_timeout',
    'downstream_rq_rx_reset',
    'downstream_rq_too_many_premature_resets',
    'downstream_rq_tx_reset',
    'downstream_rq_timeout',
    // Router filter stats live under the same prefix in Envoy.
    'no_route',
    'no_cluster',
    'rq_direct_response',
    'rq_redirect',
    'rq_total',
    'rq_reset_after_downstream_response_started',
  ],
  gauges: ['downstream_cx_active', 'downstream_cx_http1_active', 'downstream_cx_http2_active', 'downstream_rq_active'],
});
