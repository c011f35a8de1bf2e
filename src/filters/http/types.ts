import type { FieldError } from '../../errors.js';
import type { Scope } from '../../observability/stats.js';
import type { HeaderLookup } from '../../router/header_matcher.js';

/** What an HTTP filter sees of a request, whatever the codec. `header` takes lower-case names. */
export interface HttpFilterRequest {
  readonly method: string;
  /**
   * The request target. A filter may replace it before the request goes on (ext_authz's query
   * parameter edits): later filters, the route's rewrites, hash policies and the upstream see
   * the new one; the route stays the one chosen by the old (Envoy's clear_route_cache off).
   */
  path: string;
  readonly header: HeaderLookup;
  /** content-type application/grpc*: a local reply must be a gRPC status. */
  readonly grpc: boolean;
  /** The connection the request came on (addresses, TLS peer), for filters that judge the client. */
  readonly downstream?: import('../../io/engine.js').Downstream;
  /** The matched route's RoutingPriority (0 DEFAULT, 1 HIGH); 0 without a forwarding route. */
  readonly routePriority?: number;
  /**
   * The matched route's `typed_per_filter_config`, compiled with the route table and merged
   * (route over virtual host over route configuration), keyed by the filter's name in the chain.
   * A value is what the filter's `perRoute.parse` returned, or PER_ROUTE_DISABLED.
   */
  readonly perRoute?: ReadonlyMap<string, unknown> | null;
  /**
   * Every request header, lower-case names, in arrival order (HTTP/2 pseudo-headers included),
   * for filters that send the whole request elsewhere (ext_authz). Built only when called.
   */
  readonly headers?: () => Array<[string, string]>;
  /** `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`. */
  readonly protocol?: string;
  /**
   * Per-request dynamic metadata, by filter namespace then key, shared by the filters of one
   * request (RBAC shadow results for ext_authz's filter_enabled_metadata, an authorization
   * service's metadata) and read by the access log's %DYNAMIC_METADATA%. Created by the first
   * filter that writes; absent when none did.
   */
  dynamicMetadata?: Map<string, Map<string, MetadataValue>>;
  /**
   * Request header edits a filter decided (ext_authz's ok response): the connection manager
   * applies them to the upstream request before the route's own request_headers_to_add. The
   * route was already chosen: they do not change routing (Envoy's clear_route_cache off).
   */
  upstreamHeaders?: import('../../router/http_route_table.js').HeaderMutation | null;
  /**
   * Response header edits a filter decided (cors's allow-origin, ext_authz's ok
   * response_headers_to_add): the connection manager applies them to whatever response head this
   * request gets after its filters ran — the upstream's, a direct response or redirect, or a
   * local reply (a later filter's, or the router's after tries) — after the route's own
   * response_headers_to_add, as Envoy's encoder filters run after the router's. Set it with
   * addResponseHeaders; left unset, it costs the connection manager one null check.
   */
  responseHeaders?: import('../../router/http_route_table.js').HeaderMutation | null;
  /**
   * A response body transform a filter set up for this request (the compressor), one per request
   * (the compressor filters of a chain share one, see ../compressor/negotiate.ts). Set, it makes
   * the connection manager take its generic response path for the upstream's response — header
   * object, body chunk by chunk, no flat or whole-response fast paths — and hand the head to
   * `onResponseHeaders`. Local replies, direct responses and redirects do not go through it.
   * Left unset (the usual case), it costs the connection manager one null check.
   */
  responseBody?: ResponseBodyFilter | null;
  /**
   * Watches this request's exchange without changing it (grpc_stats): set by a filter's
   * onRequest with observeExchange. Left unset (the usual case), it costs the connection manager
   * one null check per event.
   */
  observer?: ExchangeObserver | null;
  /**
   * The request body the connection manager held for a filter whose verdict asked for it
   * (FilterVerdict.needBody), set before that filter's `wait` runs: complete, or the first
   * `maxBytes` when allowPartial cut it short.
   */
  body?: Buffer | null;
}

/**
 * A response body transform, asked once per upstream response (each try's, when retries or
 * hedges bring several).
 */
export interface ResponseBodyFilter {
  /**
   * The upstream's final response head: `headers` is its header object (lower-case names,
   * `:status` among them), which it may edit in place (content-encoding, vary, content-length).
   * `endStream`: no body follows. Returns the stream the body goes through (its output is what
   * the client gets), or null to leave the body as it came. The connection manager writes to it
   * with backpressure, ends it at the end of the response and destroys it on a reset or abort.
   */
  onResponseHeaders(status: number, headers: Record<string, string | string[] | undefined>, endStream: boolean): import('node:stream').Transform | null;
}

/**
 * What a filter that only watches a request is told of its exchange, in order, by the connection
 * manager: the cluster the request is routed to, the request body as it comes from the client,
 * and the response the client gets (the answering try's, or a local reply). Chunks are the
 * connection manager's own buffers: read them, never keep or change them.
 */
export interface ExchangeObserver {
  /**
   * The request was routed to `cluster`: before its first try, or before a filter's reply on a
   * forwarding route (the cluster it would have gone to, as Envoy's filters know it from the
   * start). Never told without one (no route, a direct response or redirect, an unknown cluster).
   */
  routed(cluster: import('../../upstream/cluster.js').Cluster): void;
  /** A chunk of the request body from the client, each once (a retry's resent copies are not told). */
  requestData(chunk: Buffer): void;
  /**
   * The response head the client gets (the answering upstream's or a local reply), with its
   * content-type and grpc-status (a trailers-only response carries it here); `endStream`: no
   * body or trailers follow.
   */
  responseHead(status: number, contentType: string | undefined, grpcStatus: string | undefined, endStream: boolean): void;
  responseData(chunk: Buffer): void;
  /**
   * The upstream's response ended (after its head when that ended it): `grpcStatus` from its
   * trailers (undefined without), `upstreamMs` the answering try's time from its start.
   */
  responseEnd(grpcStatus: string | undefined, upstreamMs: number): void;
}

/** Adds an observer to a request (HttpFilterRequest.observer); a second one is told after the first. */
export function observeExchange(req: HttpFilterRequest, o: ExchangeObserver): void {
  const prev = req.observer;
  req.observer = prev ? new BothObservers(prev, o) : o;
}

class BothObservers implements ExchangeObserver {
  constructor(
    private readonly a: ExchangeObserver,
    private readonly b: ExchangeObserver,
  ) {}
  routed(c: import('../../upstream/cluster.js').Cluster): void {
    this.a.routed(c);
    this.b.routed(c);
  }
  requestData(chunk: Buffer): void {
    this.a.requestData(chunk);
    this.b.requestData(chunk);
  }
  responseHead(status: number, contentType: string | undefined, grpcStatus: string | undefined, endStream: boolean): void {
    this.a.responseHead(status, contentType, grpcStatus, endStream);
    this.b.responseHead(status, contentType, grpcStatus, endStream);
  }
  responseData(chunk: Buffer): void {
    this.a.responseData(chunk);
    this.b.responseData(chunk);
  }
  responseEnd(grpcStatus: string | undefined, upstreamMs: number): void {
    this.a.responseEnd(grpcStatus, upstreamMs);
    this.b.responseEnd(grpcStatus, upstreamMs);
  }
}

/** A filter that must see the request body before deciding (ext_authz with_request_body). */
export interface BodyNeed {
  readonly maxBytes: number;
  /** A longer body is cut to maxBytes for the filter (the rest still goes upstream); false: 413. */
  readonly allowPartial: boolean;
}

/**
 * Adds response header edits for this request (HttpFilterRequest.responseHeaders). Edits from a
 * filter later in the chain go first: Envoy encodes a response through the filters in reverse
 * order, so an earlier filter's edits land last (cors after ext_authz).
 */
export function addResponseHeaders(req: HttpFilterRequest, m: import('../../router/http_route_table.js').HeaderMutation): void {
  const prev = req.responseHeaders;
  req.responseHeaders = prev ? Object.freeze({ add: [...m.add, ...prev.add], remove: [...m.remove, ...prev.remove] }) : m;
}

/**
 * Adds request header edits for the upstream request (HttpFilterRequest.upstreamHeaders), after
 * those an earlier filter decided: each filter edits the request the one before it passed on.
 */
export function addUpstreamHeaders(req: HttpFilterRequest, m: import('../../router/http_route_table.js').HeaderMutation): void {
  const prev = req.upstreamHeaders;
  req.upstreamHeaders = prev ? Object.freeze({ add: [...prev.add, ...m.add], remove: [...prev.remove, ...m.remove] }) : m;
}

/**
 * A per-route config that combines with the less specific levels' instead of replacing them, as
 * CORS policies do (each setting from the most specific level that sets it). The route table
 * calls `over` from the least specific level up, once per route at compile time.
 */
export interface LayeredPerRoute {
  over(lessSpecific: unknown): unknown;
}

export function isLayeredPerRoute(v: unknown): v is LayeredPerRoute {
  return typeof v === 'object' && v !== null && typeof (v as Partial<LayeredPerRoute>).over === 'function';
}

/** A dynamic metadata value: a google.protobuf.Value as plain JSON (most are strings). */
export type MetadataValue = string | number | boolean | null | readonly MetadataValue[] | { readonly [k: string]: MetadataValue };

/** Sets one key of a request's dynamic metadata under `ns` (a filter's name). */
export function setDynamicMetadata(req: HttpFilterRequest, ns: string, key: string, value: MetadataValue): void {
  const all = (req.dynamicMetadata ??= new Map());
  let m = all.get(ns);
  if (!m) all.set(ns, (m = new Map()));
  m.set(key, value);
}

/**
 * What `parse` returns for a filter that is valid and does nothing to any request with this
 * configuration (a compressor whose only library is zstd): the connection manager leaves it out of the chain.
 */
export const INERT_FILTER: unique symbol = Symbol('inert HTTP filter');

/** A route's FilterConfig `disabled: true`: the named filter does nothing for that route. */
export const PER_ROUTE_DISABLED: unique symbol = Symbol('per-route disabled');

/**
 * A route's FilterConfig with an empty `config`: the filter is on for that route (it matters for
 * a filter the chain marks `disabled: true`, off unless a route turns it on), with its own config.
 */
export const PER_ROUTE_ENABLED: unique symbol = Symbol('per-route enabled');

/** The filter's per-route override for this request, if the route has one (not a mere on/off mark). */
export function perRouteConfig<T>(req: HttpFilterRequest, name: string): T | typeof PER_ROUTE_DISABLED | undefined {
  const v = req.perRoute?.get(name);
  return v === PER_ROUTE_ENABLED ? undefined : (v as T | typeof PER_ROUTE_DISABLED | undefined);
}

/** A response the filter wants the connection manager to send instead of routing. */
export interface FilterReply {
  readonly status: number;
  readonly body: string;
  /** For gRPC requests: the grpc-status to send (HTTP 200); derived from `status` when absent. */
  readonly grpcStatus?: number;
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  /** Envoy's response flag for the access log (RL for a rate-limited request). */
  readonly flag?: string;
}

/** Told when the exchange a verdict was given for is over (answered, reset or refused). */
export interface FilterDoneHook {
  onDone?(): void;
}

/** Resumes a held request once: a reply to send, or null to go on (to later filters, then routing). */
export type FilterResume = (reply: FilterReply | null) => void;

/** null = carry on untouched. `delayMs` comes first, then `wait` (if any), then `reply` or routing. */
export interface FilterVerdict {
  readonly delayMs: number;
  readonly reply: FilterReply | null;
  /**
   * Per-request state to tell instead of the filter's own onDone (a permit to give back, a
   * queue entry to withdraw). Absent: the filter's onDone is called.
   */
  readonly done?: FilterDoneHook | null;
  /**
   * The decision comes later (a request queued for a permit): the connection manager holds the
   * request, body included, and calls `wait` once; `resume` may run synchronously or later, and
   * never after `done` was told the exchange is over. `reply` is ignored when this is set.
   */
  readonly wait?: ((resume: FilterResume) => void) | null;
  /**
   * With `wait`: hold the request until its body is complete (or maxBytes, see BodyNeed), put it
   * in the request's `body`, then call `wait`.
   */
  readonly needBody?: BodyNeed | null;
}

/**
 * A configured HTTP filter, shared by every request of its connection manager. Each request
 * gets one decision before the route's action runs: at once (fault, local rate limit, rbac) or,
 * through `FilterVerdict.wait`, later (priority rate limit queues).
 */
export interface HttpFilter extends FilterDoneHook {
  onRequest(req: HttpFilterRequest): FilterVerdict | null;
  /**
   * Set by filters that need the whole request body before routing (the buffer filter): the
   * connection manager holds the request until its body is complete, answering 413 once the
   * body passes this many bytes.
   */
  readonly maxRequestBytes?: number;
}

export interface HttpFilterParseContext {
  readonly errors: FieldError[];
  readonly warnings: FieldError[];
  /** The configured clusters' names (under xDS: records a reference and accepts it); absent in-memory. */
  readonly clusterNames?: ReadonlySet<string>;
}

/** Run-time services a filter may call on (ext_authz reaches its authorization cluster). */
export interface HttpFilterServices {
  readonly clusters: import('../../upstream/cluster_manager.js').ClusterManager;
}

/** Registered by Envoy name and type URL, like network filters; `parse` validates once, `create` binds stats. */
export interface HttpFilterFactory<Config = unknown> {
  readonly name: string;
  readonly typeUrls: readonly string[];
  parse(typedConfig: Record<string, any>, path: string, ctx: HttpFilterParseContext): Config | null;
  /** `scope` is the connection manager's `http.<stat_prefix>` scope; `root` the store's root. */
  /**
   * `name` is the filter's name in the chain: the key its routes' per-route configs are under.
   * Absent for in-memory callers.
   */
  create(config: Config, scope: Scope, root: Scope, name?: string, services?: HttpFilterServices): HttpFilter;
  /**
   * Virtual host / route overrides (`typed_per_filter_config`), compiled once with the route
   * table by type URL, as Envoy finds a per-route factory. Absent: the filter takes none.
   */
  readonly perRoute?: {
    readonly typeUrls: readonly string[];
    parse(typedConfig: Record<string, any>, path: string, ctx: HttpFilterParseContext): unknown | null;
  };
}

/** Envoy's FractionalPercent as a probability in [0, 1]. Unset means 0, as in Envoy. */
export function fraction(p: Record<string, any> | undefined | null): number {
  if (!p) return 0;
  const d = p.denominator === 'TEN_THOUSAND' ? 10_000 : p.denominator === 'MILLION' ? 1_000_000 : 100;
  return Math.min(1, Number(p.numerator ?? 0) / d);
}
