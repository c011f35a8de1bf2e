import type { Downstream, PeerAddress } from '../../io/engine.js';
import type { HeaderLookup } from '../../router/header_matcher.js';
import type { ClusterManager } from '../../upstream/cluster_manager.js';
import type { Host } from '../../upstream/host.js';
import type { Scope } from '../stats.js';
import type { TracingConfig } from './config.js';
import { extract, newId, outgoing, TRACE_HEADERS, type IncomingContext } from './context.js';
import { otlpReporterFor } from './otlp.js';
import type { SpanReporter, ZipkinSpan } from './reporter.js';
import { reporterFor } from './zipkin.js';

/** The process's shared reporter for a tracing config's sink. */
export function reporterOf(config: TracingConfig, clusters: ClusterManager, root: Scope): SpanReporter {
  const s = config.sink;
  return s.kind === 'zipkin' ? reporterFor(s, clusters, root) : otlpReporterFor(s, clusters, root);
}

export function endpoint(a: PeerAddress | undefined, serviceName?: string): ZipkinSpan['localEndpoint'] {
  const e: ZipkinSpan['localEndpoint'] = serviceName ? { serviceName } : {};
  if (a && a.family !== 'unix') {
    if (a.family === 'IPv6') e.ipv6 = a.address;
    else e.ipv4 = a.address;
    e.port = a.port;
  }
  return e;
}

export const nowUs = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** A connection manager's tracer: one per HCM config, shared by its requests. */
export class HttpTracer {
  private readonly reporter: SpanReporter;

  constructor(
    readonly config: TracingConfig,
    clusters: ClusterManager,
    root: Scope,
    /** localEndpoint.serviceName of every span (Envoy uses the node's cluster). */
    readonly serviceName: string,
  ) {
    this.reporter = reporterOf(config, clusters, root);
  }

  /** Starts the server span of a request; `get` reads its headers (lower-case names). */
  start(method: string, target: string, host: string, get: HeaderLookup, d: Downstream): RequestTrace {
    const inc = extract(get, this.config.preferW3c);
    const ctx = inc && 'traceId' in inc ? (inc as IncomingContext) : null;
    const decided = inc ? inc.sampled : null;
    const sampled = decided ?? Math.random() < this.config.randomSampling;
    const traceId = ctx?.traceId ?? (this.config.traceId128 ? newId() + newId() : newId());
    return new RequestTrace(this, this.reporter, traceId, ctx?.spanId ?? null, sampled, ctx?.format === 'b3-single', method, target, host, d);
  }
}

/**
 * The spans of one proxied request: a SERVER span from the downstream request to its end and,
 * once routed, a CLIENT span (child of the server span) around the upstream exchange. The
 * next hop sees the client span as its parent. Spans are reported only when sampled.
 */
export class RequestTrace {
  readonly serverId = newId();
  private readonly startUs = nowUs();
  private readonly t0 = performance.now();
  clientId: string | null = null;
  private clientStartUs = 0;
  private clientT0 = 0;
  private cluster = '';
  private requestId: string | null = null;
  private clientDone = false;
  private done = false;

  constructor(
    private readonly tracer: HttpTracer,
    private readonly reporter: SpanReporter,
    readonly traceId: string,
    readonly parentId: string | null,
    readonly sampled: boolean,
    private readonly single: boolean,
    private readonly method: string,
    private readonly target: string,
    private readonly host: string,
    private readonly downstream: Downstream,
  ) {}

  /** Starts the client span and returns the headers that carry it upstream. */
  upstream(cluster: string, requestId: string | null): Array<[string, string]> {
    if (!this.clientId) {
      this.clientId = newId();
      this.clientStartUs = nowUs();
      this.clientT0 = performance.now();
    }
    this.cluster = cluster;
    this.requestId = requestId;
    return outgoing(this.traceId, this.clientId, this.serverId, this.sampled, this.single);
  }

  /** HTTP/1: the header lines for the upstream head; the names go to `drop` so incoming ones are replaced. */
  upstreamHeaderText(cluster: string, requestId: string | null, drop: string[]): string {
    for (const n of TRACE_HEADERS) drop.push(n);
    let out = '';
    for (const [k, v] of this.upstream(cluster, requestId)) out += `${k}: ${v}\r\n`;
    return out;
  }

  /** HTTP/2: replaces the trace headers in an outgoing header object. */
  upstreamHeaderObject(cluster: string, requestId: string | null, h: Record<string, unknown>): void {
    for (const n of TRACE_HEADERS) delete h[n];
    for (const [k, v] of this.upstream(cluster, requestId)) h[k] = v;
  }

  private name(): string {
    const q = this.target.indexOf('?');
    return `${this.host}${q < 0 ? this.target : this.target.slice(0, q)}`;
  }

  private tags(status: number): Record<string, string> {
    const url = `http://${this.host}${this.target}`;
    const t: Record<string, string> = {
      component: 'proxy',
      'http.method': this.method,
      'http.url': url.length > this.tracer.config.maxPathTagLength ? url.slice(0, this.tracer.config.maxPathTagLength) : url,
      'http.status_code': String(status),
    };
    if (this.cluster) t.upstream_cluster = this.cluster;
    if (this.requestId) t['guid:x-request-id'] = this.requestId;
    // 0 = no response (reset); 5xx are errors as Envoy tags them.
    if (status === 0 || status >= 500) t.error = 'true';
    return t;
  }

  /** The upstream exchange is over: `status` 0 when it failed without a response. */
  endUpstream(status: number, host: Host | null): void {
    if (!this.clientId || this.clientDone) return;
    this.clientDone = true;
    if (!this.sampled) return;
    const span: ZipkinSpan = {
      traceId: this.traceId,
      id: this.clientId,
      parentId: this.serverId,
      name: this.name(),
      kind: 'CLIENT',
      timestamp: this.clientStartUs,
      duration: Math.max(1, Math.round((performance.now() - this.clientT0) * 1000)),
      localEndpoint: endpoint(this.downstream.local, this.tracer.serviceName),
      tags: this.tags(status),
    };
    if (host) {
      span.remoteEndpoint = endpoint(host.address);
      span.tags['peer.address'] = host.label;
    }
    this.reporter.report(span);
  }

  /** The downstream exchange is over: ends the client span if still open, then the server span. */
  end(status: number): void {
    if (this.done) return;
    this.done = true;
    this.endUpstream(0, null);
    if (!this.sampled) return;
    const span: ZipkinSpan = {
      traceId: this.traceId,
      id: this.serverId,
      name: this.name(),
      kind: 'SERVER',
      timestamp: this.startUs,
      duration: Math.max(1, Math.round((performance.now() - this.t0) * 1000)),
      localEndpoint: endpoint(this.downstream.local, this.tracer.serviceName),
      remoteEndpoint: endpoint(this.downstream.remote),
      tags: this.tags(status),
    };
    if (this.parentId) span.parentId = this.parentId;
    this.reporter.report(span);
  }
}
