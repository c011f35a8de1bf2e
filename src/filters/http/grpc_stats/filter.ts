import type { Counter, Histogram, Scope } from '../../../observability/stats.js';
import type { Cluster } from '../../../upstream/cluster.js';
import { observeExchange, type ExchangeObserver, type FilterVerdict, type HttpFilter, type HttpFilterRequest } from '../types.js';
import { FrameCounter } from './frames.js';

export interface GrpcStatsConfig {
  /** Kept per call (GrpcCall's counters); nothing in Strait reads filter state yet. */
  readonly emitFilterState: boolean;
  readonly statsForAllMethods: boolean;
  /** `individual_method_stats_allowlist`: service → its methods; null without one. */
  readonly allowlist: ReadonlyMap<string, ReadonlySet<string>> | null;
  readonly enableUpstreamStats: boolean;
  /** With statsForAllMethods only, as in Envoy. */
  readonly replaceDots: boolean;
}

/**
 * The stats of one cluster's `grpc` scope, or of one service/method under it
 * (`cluster.<name>.grpc[.<service>.<method>].<stat>`). Each stat is made when first charged, as
 * Envoy makes them, so a method never called shows none.
 */
class CallStats {
  private success: Counter | null = null;
  private failure: Counter | null = null;
  private total: Counter | null = null;
  private reqMessages: Counter | null = null;
  private respMessages: Counter | null = null;
  private rqTime: Histogram | null = null;
  /** By grpc-status value: Envoy's `<status code>` counters. */
  private readonly codes = new Map<string, Counter>();

  constructor(private readonly scope: Scope) {}

  status(code: string): void {
    // Envoy names a counter after any grpc-status text; only codes are taken here, so a broken
    // upstream cannot mint stat names (the call still counts as a failure).
    if (DIGITS.test(code)) {
      let c = this.codes.get(code);
      if (!c) this.codes.set(code, (c = this.scope.counter(code)));
      c.value++;
    }
    if (code === '0') (this.success ??= this.scope.counter('success')).value++;
    else (this.failure ??= this.scope.counter('failure')).value++;
    (this.total ??= this.scope.counter('total')).value++;
  }

  requestMessages(n: number): void {
    (this.reqMessages ??= this.scope.counter('request_message_count')).value += n;
  }

  responseMessages(n: number): void {
    (this.respMessages ??= this.scope.counter('response_message_count')).value += n;
  }

  upstreamTime(ms: number): void {
    (this.rqTime ??= this.scope.histogram('upstream_rq_time')).record(ms);
  }
}

const DIGITS = /^\d{1,3}$/;

/** One cluster's gRPC stats: the unnamed set and one set per service/method. */
class ClusterGrpcStats {
  readonly all: CallStats;
  private readonly methods = new Map<string, CallStats>();

  constructor(private readonly scope: Scope) {
    this.all = new CallStats(scope);
  }

  of(service: string, method: string): CallStats {
    const key = `${service}/${method}`;
    let s = this.methods.get(key);
    if (!s) this.methods.set(key, (s = new CallStats(this.scope.scope(service).scope(method))));
    return s;
  }
}

/**
 * envoy.filters.http.grpc_stats: counts gRPC calls (by grpc-status) and their messages under
 * the cluster each call is routed to. It changes nothing: a gRPC request gets an observer
 * (HttpFilterRequest.observer) and the connection manager tells it what passes; every other
 * request costs one flag check.
 */
export class GrpcStatsFilter implements HttpFilter {
  private readonly clusters = new WeakMap<Cluster, ClusterGrpcStats>();
  private lastOf: Cluster | null = null;
  private last: ClusterGrpcStats | null = null;

  constructor(
    readonly config: GrpcStatsConfig,
    private readonly root: Scope,
  ) {}

  onRequest(req: HttpFilterRequest): FilterVerdict | null {
    // req.grpc is any application/grpc* (gRPC-Web too): the exact test only for those.
    if (!req.grpc || !isGrpcContentType(req.header('content-type'))) return null;
    const names = serviceAndMethod(req.path);
    // Envoy tracks only paths that name a service and a method.
    if (names === null) return null;
    const cfg = this.config;
    let [service, method] = names;
    let named = true;
    if (cfg.statsForAllMethods) {
      if (cfg.replaceDots) service = service.replaceAll('.', '_');
    } else named = cfg.allowlist?.get(service)?.has(method) ?? false;
    observeExchange(req, new GrpcCall(this, named ? service : null, method));
    return null;
  }

  /** @internal the stats a call routed to `cluster` charges. */
  statsFor(cluster: Cluster, service: string | null, method: string): CallStats {
    let c = cluster === this.lastOf ? this.last : this.clusters.get(cluster);
    if (!c) this.clusters.set(cluster, (c = new ClusterGrpcStats(this.root.scope('cluster').scope(cluster.spec.statName ?? cluster.name, 'envoy_cluster_name').scope('grpc'))));
    // Calls of a route go to one cluster: the WeakMap is asked only when it changes.
    this.lastOf = cluster;
    this.last = c;
    return service === null ? c.all : c.of(service, method);
  }
}

/** One gRPC call as grpc_stats watches it. */
class GrpcCall implements ExchangeObserver {
  private stats: CallStats | null = null;
  /** The message counts (Envoy's filter state object, request_message_count and response_message_count). */
  readonly requests = new FrameCounter();
  readonly responses = new FrameCounter();
  /** The response head said gRPC: its body is counted. */
  private grpcResponse = false;
  private headEnded = false;

  constructor(
    private readonly filter: GrpcStatsFilter,
    private readonly service: string | null,
    private readonly method: string,
  ) {}

  routed(cluster: Cluster): void {
    const s = (this.stats = this.filter.statsFor(cluster, this.service, this.method));
    // Request messages that came while a filter held the request.
    if (this.requests.count > 0) s.requestMessages(this.requests.count);
  }

  requestData(chunk: Buffer): void {
    const n = this.requests.inspect(chunk);
    if (n > 0 && this.stats !== null) this.stats.requestMessages(n);
  }

  responseHead(status: number, contentType: string | undefined, grpcStatus: string | undefined, endStream: boolean): void {
    // A trailers-only response is gRPC by its grpc-status; any other by :status 200 and its content-type (Envoy's test).
    this.grpcResponse = endStream ? grpcStatus !== undefined : status === 200 && isGrpcContentType(contentType);
    this.headEnded = endStream;
    if (this.stats !== null && grpcStatus !== undefined) this.stats.status(grpcStatus);
  }

  responseData(chunk: Buffer): void {
    if (!this.grpcResponse) return;
    const n = this.responses.inspect(chunk);
    if (n > 0 && this.stats !== null) this.stats.responseMessages(n);
  }

  responseEnd(grpcStatus: string | undefined, upstreamMs: number): void {
    const s = this.stats;
    if (s === null) return;
    if (grpcStatus !== undefined) s.status(grpcStatus);
    // Envoy records it with the trailers, or with a head that ended the response.
    if (this.filter.config.enableUpstreamStats && (grpcStatus !== undefined || this.headEnded)) s.upstreamTime(upstreamMs);
  }
}

/** `application/grpc`, `application/grpc+proto`, `application/grpc;...` — not gRPC-Web. */
export function isGrpcContentType(ct: string | undefined): boolean {
  if (ct === undefined || !ct.startsWith('application/grpc')) return false;
  const c = ct.charCodeAt(16);
  return ct.length === 16 || c === 0x2b || c === 0x3b;
}

/** `/pkg.Service/Method` (query aside, empty segments skipped as Envoy's split does) → [service, method]. */
export function serviceAndMethod(path: string): [string, string] | null {
  const q = path.indexOf('?');
  const parts = (q < 0 ? path : path.slice(0, q)).split('/').filter((p) => p !== '');
  return parts.length === 2 ? [parts[0]!, parts[1]!] : null;
}
