import type { Host } from './host.js';
import { defineStats, type Counter, type Scope, type StatsOf } from '../observability/stats.js';

/**
 * `cluster.<name>.*` stats that request-level HTTP traffic adds to a cluster, with Envoy's names.
 * Instantiated in the cluster's own scope: a stat with the same name declared by another table
 * (the cluster's, RPC's) is the same object, so counts add up whoever declares them.
 */
export const HTTP_CLUSTER_STATS = defineStats({
  counters: [
    'upstream_rq_total',
    'upstream_rq_completed',
    'upstream_rq_1xx',
    'upstream_rq_2xx',
    'upstream_rq_3xx',
    'upstream_rq_4xx',
    'upstream_rq_5xx',
    'upstream_rq_timeout',
    'upstream_rq_per_try_timeout',
    'upstream_rq_retry',
    'upstream_rq_retry_success',
    'upstream_rq_retry_overflow',
    'upstream_rq_retry_limit_exceeded',
    'retry_or_shadow_abandoned',
    'upstream_rq_pending_total',
    'upstream_rq_pending_overflow',
    'upstream_rq_rx_reset',
    'upstream_rq_tx_reset',
    'upstream_cx_http1_total',
    'upstream_cx_http2_total',
    'upstream_cx_protocol_error',
    /** GOAWAY received from an upstream (Envoy counts it as a close notification). */
    'upstream_cx_close_notify',
  ],
  gauges: ['upstream_rq_active', 'upstream_rq_pending_active'],
});

export type HttpClusterStats = StatsOf<typeof HTTP_CLUSTER_STATS>;

const SCOPES = new WeakMap<HttpClusterStats, Scope>();
const CODES = new WeakMap<HttpClusterStats, Map<number, Counter>>();

/** The table in a cluster's scope, remembering the scope for the per-code counters. */
export function httpClusterStats(scope: Scope): HttpClusterStats {
  const s = scope.table(HTTP_CLUSTER_STATS);
  SCOPES.set(s, scope);
  return s;
}

/**
 * The (table, status) countUpstreamStatus counted last and its counter, which it would otherwise
 * look up in CODES and a Map again (~200 instructions a response): most responses repeat the last
 * one's.
 * It keeps one removed cluster's table alive until the next response is counted.
 */
let lastStats: HttpClusterStats | null = null;
let lastStatus = 0;
let lastCounter: Counter | undefined;

/**
 * Counts an upstream response status (`upstream_rq_<code>`) and, given the host, reports it to
 * outlier detection (a shared no-op when the cluster has none).
 */
export function countUpstreamStatus(stats: HttpClusterStats, status: number, host?: Host | null): void {
  host?.outlier.putHttpStatus(status);
  let c: Counter | undefined;
  if (stats === lastStats && status === lastStatus) c = lastCounter;
  else {
    let codes = CODES.get(stats);
    if (!codes) CODES.set(stats, (codes = new Map()));
    c = codes.get(status);
    if (!c) {
      const scope = SCOPES.get(stats);
      if (scope) codes.set(status, (c = scope.counter(`upstream_rq_${status}`)));
    }
    if (c) {
      lastStats = stats;
      lastStatus = status;
      lastCounter = c;
    }
  }
  if (c) c.value++;
  if (status < 200) stats.upstream_rq_1xx.value++;
  else if (status < 300) stats.upstream_rq_2xx.value++;
  else if (status < 400) stats.upstream_rq_3xx.value++;
  else if (status < 500) stats.upstream_rq_4xx.value++;
  else stats.upstream_rq_5xx.value++;
}
