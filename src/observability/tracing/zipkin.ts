import http from 'node:http';
import { log } from '../../log.js';
import type { ClusterManager } from '../../upstream/cluster_manager.js';
import type { Scope, StatsOf } from '../stats.js';
import { defineStats } from '../stats.js';

/** `tracing.zipkin.*`, Envoy's Zipkin tracer names. */
export const ZIPKIN_STATS = defineStats({
  counters: ['spans_sent', 'reports_sent', 'reports_dropped', 'reports_failed', 'reports_skipped_no_cluster', 'timer_flushed'],
  gauges: [],
});

interface Endpoint {
  serviceName?: string;
  ipv4?: string;
  ipv6?: string;
  port?: number;
}

/** A finished span in Zipkin's v2 JSON model (times in microseconds). */
export interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  kind: 'SERVER' | 'CLIENT';
  timestamp: number;
  duration: number;
  localEndpoint: Endpoint;
  remoteEndpoint?: Endpoint;
  tags: Record<string, string>;
}

/** Envoy's defaults for the runtime keys tracing.zipkin.min_flush_spans and flush_interval_ms. */
const MIN_FLUSH_SPANS = 5;
const FLUSH_INTERVAL_MS = 5000;
/** Spans held while the collector is slow or away; beyond this, new ones are dropped and counted. */
const MAX_PENDING = 10_000;

export interface ZipkinTarget {
  readonly cluster: string;
  readonly path: string;
  /** Host header; '' = the collector cluster's name, as Envoy sends by default. */
  readonly hostname: string;
}

/**
 * Batches spans and posts them to the collector cluster as one JSON array, off the request
 * path: when enough spans wait (min_flush_spans) or on a timer. The timer is unref'd so it never
 * keeps a draining process alive. One reporter per collector is shared by every tracer.
 */
export class ZipkinReporter {
  private pending: ZipkinSpan[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly stats: StatsOf<typeof ZIPKIN_STATS>;

  constructor(
    private readonly target: ZipkinTarget,
    private readonly clusters: ClusterManager,
    root: Scope,
  ) {
    this.stats = root.scope('tracing').scope('zipkin').table(ZIPKIN_STATS);
  }

  report(span: ZipkinSpan): void {
    if (this.pending.length >= MAX_PENDING) {
      this.stats.reports_dropped.value++;
      return;
    }
    this.pending.push(span);
    if (this.pending.length >= MIN_FLUSH_SPANS) {
      // Posted on the next turn: the request that finished the batch is not held up by it.
      setImmediate(() => this.flush());
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.stats.timer_flushed.value++;
        this.flush();
      }, FLUSH_INTERVAL_MS);
      this.timer.unref();
    }
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending.length === 0) return;
    const spans = this.pending;
    this.pending = [];
    const host = this.clusters.get(this.target.cluster)?.pickHost();
    if (!host || host.address.family === 'unix') {
      this.stats.reports_skipped_no_cluster.value++;
      return;
    }
    const body = JSON.stringify(spans);
    const req = http.request(
      {
        host: host.address.address,
        port: host.address.port,
        method: 'POST',
        path: this.target.path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), host: this.target.hostname || this.target.cluster },
        timeout: FLUSH_INTERVAL_MS,
      },
      (res) => {
        res.resume();
        if (res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300) {
          this.stats.reports_sent.value++;
          this.stats.spans_sent.value += spans.length;
        } else {
          this.stats.reports_dropped.value++;
          log.debug({ status: res.statusCode, collector: this.target.cluster }, 'zipkin collector refused a report');
        }
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      this.stats.reports_failed.value++;
      log.debug({ err: err.message, collector: this.target.cluster }, 'zipkin report failed');
    });
    req.end(body);
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
