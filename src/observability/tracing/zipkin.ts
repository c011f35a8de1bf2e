import type { ClusterManager } from '../../upstream/cluster_manager.js';
import type { Scope } from '../stats.js';
import { defineStats } from '../stats.js';
import { BatchReporter, FLUSH_INTERVAL_MS, type ZipkinSpan } from './reporter.js';

export type { ZipkinSpan } from './reporter.js';

/** `tracing.zipkin.*`, Envoy's Zipkin tracer names. */
export const ZIPKIN_STATS = defineStats({
  counters: ['spans_sent', 'reports_sent', 'reports_dropped', 'reports_failed', 'reports_skipped_no_cluster', 'timer_flushed'],
  gauges: [],
});

export interface ZipkinTarget {
  readonly cluster: string;
  readonly path: string;
  /** Host header; '' = the collector cluster's name, as Envoy sends by default. */
  readonly hostname: string;
}

/** Posts batches as one Zipkin v2 JSON array. One reporter per collector is shared by every tracer. */
export class ZipkinReporter extends BatchReporter {
  constructor(target: ZipkinTarget, clusters: ClusterManager, root: Scope) {
    const st = root.scope('tracing').scope('zipkin').table(ZIPKIN_STATS);
    super({ ...target, timeoutMs: FLUSH_INTERVAL_MS, headers: [], what: 'zipkin' }, clusters, {
      sent: (n) => {
        st.reports_sent.value++;
        st.spans_sent.value += n;
      },
      refused: () => st.reports_dropped.value++,
      dropped: () => st.reports_dropped.value++,
      failed: () => st.reports_failed.value++,
      noCluster: () => st.reports_skipped_no_cluster.value++,
      timerFlushed: () => st.timer_flushed.value++,
    });
  }

  protected encode(spans: ZipkinSpan[]): string {
    return JSON.stringify(spans);
  }
}

const REPORTERS = new Map<string, ZipkinReporter>();

/** The process's reporter for a collector (cluster + path + host header). */
export function reporterFor(target: ZipkinTarget, clusters: ClusterManager, root: Scope): ZipkinReporter {
  const key = `${target.cluster}\n${target.path}\n${target.hostname}`;
  let r = REPORTERS.get(key);
  if (!r) REPORTERS.set(key, (r = new ZipkinReporter(target, clusters, root)));
  return r;
}
