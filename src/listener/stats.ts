import { defineStats } from '../observability/stats.js';

/** `listener.<address>.*`, Envoy's names. */
export const LISTENER_STATS = defineStats({
  counters: ['downstream_cx_total', 'downstream_cx_destroy', 'no_filter_chain_match', 'downstream_cx_overflow', 'downstream_cx_proxy_proto_error'],
  gauges: ['downstream_cx_active'],
});

/** `listener_manager.*`. */
export const LISTENER_MANAGER_STATS = defineStats({
  counters: ['listener_added', 'listener_removed', 'listener_create_success', 'listener_create_failure', 'listener_stopped'],
  gauges: ['total_listeners_active', 'total_listeners_draining', 'total_listeners_warming'],
});
