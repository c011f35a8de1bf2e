import { defineStats } from '../../../observability/stats.js';

/** `rpc.<stat_prefix>.*`, named after Envoy's dubbo_proxy stats. */
export const RPC_PROXY_STATS = defineStats({
  counters: [
    'cx_total',
    'request',
    'request_oneway',
    'request_heartbeat',
    'request_decoding_error',
    'response',
    'response_unmatched',
    'local_response_no_route',
    'local_response_no_upstream',
    'local_response_timeout',
    'local_response_overflow',
    'request_rate_limited',
    'upstream_heartbeat',
    'upstream_rq_retry',
    'cx_destroy_local_with_active_rq',
    'cx_destroy_remote_with_active_rq',
    // Dubbo READONLY events sent to clients when the listener began draining.
    'drain_readonly_sent',
  ],
  gauges: ['request_active', 'cx_active'],
});
