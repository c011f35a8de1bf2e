import http from 'node:http';
import { log } from '../../log.js';
import type { ClusterManager } from '../../upstream/cluster_manager.js';

interface Endpoint {
  serviceName?: string;
  ipv4?: string;
  ipv6?: string;
  port?: number;
}

/**
 * A finished span as tracers build it: Zipkin's v2 JSON model (times in microseconds), which
 * the Zipkin reporter posts as is and the OTLP reporter converts when it flushes, off the
 * request path.
 */
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

/** What tracers hand finished spans to. */
export interface SpanReporter {
  report(span: ZipkinSpan): void;
}

/** Envoy's defaults for the runtime keys tracing.<tracer>.min_flush_spans and flush_interval_ms. */
export const MIN_FLUSH_SPANS = 5;
export const FLUSH_INTERVAL_MS = 5000;
/** Spans held while the collector is slow or away; beyond this, new ones are dropped and counted. */
export const MAX_PENDING = 10_000;
/** Posts in flight at once: a slow collector gets no pile of connections, spans wait instead. */
const MAX_INFLIGHT = 2;
/** Spans per post: one encode stays short however far behind the reporter is. */
const MAX_BATCH = 1000;

/** Counters a reporter bumps; each exporter maps them onto its own Envoy stat names. */
export interface ReportCounters {
  sent(spans: number): void;
  refused(): void;
  failed(): void;
  dropped(): void;
  noCluster(): void;
  timerFlushed(): void;
}

export interface PostTarget {
  readonly cluster: string;
  readonly path: string;
  readonly hostname: string;
  readonly timeoutMs: number;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** For logs. */
  readonly what: string;
}

/**
 * Batches spans and posts them to a collector cluster, off the request path: when enough spans
 * wait (min_flush_spans) or on a timer. The queue is bounded (drops are counted) and the timer is
 * unref'd so it never keeps a draining process alive.
 */
export abstract class BatchReporter implements SpanReporter {
  private pending: ZipkinSpan[] = [];
  private timer: NodeJS.Timeout | null = null;
  private inflight = 0;

  constructor(
    protected readonly target: PostTarget,
    private readonly clusters: ClusterManager,
    private readonly counters: ReportCounters,
  ) {}

  /** The request body for one batch (JSON). */
  protected abstract encode(spans: ZipkinSpan[]): string;

  report(span: ZipkinSpan): void {
    if (this.pending.length >= MAX_PENDING) {
      this.counters.dropped();
      return;
    }
    this.pending.push(span);
    if (this.pending.length === MIN_FLUSH_SPANS) {
      // Posted on the next turn: the request that finished the batch is not held up by it.
      setImmediate(() => this.flush());
    } else if (this.pending.length < MIN_FLUSH_SPANS) this.arm();
  }

  /** Flushes on the timer (flush_interval_ms) what no full batch carried. */
  private arm(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.counters.timerFlushed();
      this.flush();
    }, FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending.length === 0) return;
    if (this.inflight >= MAX_INFLIGHT) return; // sent when a post in flight ends
    let spans = this.pending;
    if (spans.length > MAX_BATCH) {
      this.pending = spans.slice(MAX_BATCH);
      spans = spans.slice(0, MAX_BATCH);
    } else this.pending = [];
    const host = this.clusters.get(this.target.cluster)?.pickHost();
    if (!host || host.address.family === 'unix') {
      this.counters.noCluster();
      return;
    }
    let body: string;
    try {
      body = this.encode(spans);
    } catch (err) {
      this.counters.failed();
      log.debug({ err: (err as Error).message, collector: this.target.cluster }, `${this.target.what}: could not encode spans`);
      return;
    }
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), host: this.target.hostname || this.target.cluster };
    for (const [k, v] of this.target.headers) headers[k] = v;
    this.inflight++;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.inflight--;
      // What waited behind the cap goes now if a batch is due; otherwise the timer takes it.
      if (this.pending.length >= MIN_FLUSH_SPANS) setImmediate(() => this.flush());
      else if (this.pending.length > 0) this.arm();
    };
    const req = http.request(
      { host: host.address.address, port: host.address.port, method: 'POST', path: this.target.path, headers, timeout: this.target.timeoutMs },
      (res) => {
        res.resume();
        end();
        if (res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300) this.counters.sent(spans.length);
        else {
          this.counters.refused();
          log.debug({ status: res.statusCode, collector: this.target.cluster }, `${this.target.what}: the collector refused a report`);
        }
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      end();
      this.counters.failed();
      log.debug({ err: err.message, collector: this.target.cluster }, `${this.target.what}: report failed`);
    });
    req.end(body);
    // A backlog beyond one batch goes out in the next post while there is room for it.
    if (this.pending.length >= MIN_FLUSH_SPANS && this.inflight < MAX_INFLIGHT) setImmediate(() => this.flush());
  }
}
