import { defineStats } from '../../../observability/stats.js';

/**
 * `thrift.<stat_prefix>.*`: Envoy's thrift_proxy names the RPC engine's own table does not have
 * (it already counts request, request_oneway, request_decoding_error, response, request_active,
 * cx_destroy_*_with_active_rq and the request_time_ms histogram under the same prefix).
 */
export const THRIFT_PROXY_STATS = defineStats({
  counters: [
    'request_call',
    'response_reply',
    'response_success',
    'response_error',
    'response_exception',
    'response_invalid_type',
    // Envoy's Thrift router counts these under the filter's prefix too.
    'route_missing',
    'no_healthy_upstream',
    'unknown_cluster',
    'downstream_cx_max_requests',
  ],
  gauges: [],
});
