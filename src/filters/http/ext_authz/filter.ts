import { log } from '../../../log.js';
import type { Scope, StatsOf } from '../../../observability/stats.js';
import { peerIdentity } from '../../../rbac/identity.js';
import type { HeaderAdd } from '../../../router/http_route_table.js';
import type { ClusterManager } from '../../../upstream/cluster_manager.js';
import { addResponseHeaders, addUpstreamHeaders, PER_ROUTE_DISABLED, perRouteConfig, setDynamicMetadata, type FilterDoneHook, type FilterReply, type FilterResume, type FilterVerdict, type HttpFilter, type HttpFilterRequest } from '../types.js';
import { editQuery, GrpcCheck, headerAllowed, HttpCheck, type CheckInput, type CheckOutcome, type CheckTransport, type DynamicMetadata } from './check.js';
import type { ExtAuthzConfig, ExtAuthzPerRoute } from './config.js';
import { EXT_AUTHZ_STATS } from './stats.js';
import { grpcStatusOfHttp } from '../../../protocols/http2/grpc_status.js';

/** Where Envoy's ext_authz publishes a service's dynamic metadata. */
const METADATA_NAMESPACE = 'envoy.filters.http.ext_authz';

const FAILURE_MODE_HEADER: HeaderAdd = Object.freeze({ name: 'x-envoy-auth-failure-mode-allowed', value: 'true', action: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmpty: false });

const enum S {
  IDLE,
  ASKING,
  OVER,
}

/**
 * One request's check: started when the connection manager waits on it (after any fault
 * delay before it), answered once, cancelled when the exchange ends first. It is the verdict's
 * `done` hook, so a client that leaves mid-check cancels the call.
 */
class Check implements FilterDoneHook {
  private state = S.IDLE;
  private cancel: (() => void) | null = null;

  constructor(
    private readonly filter: ExtAuthzFilter,
    private readonly req: HttpFilterRequest,
    private readonly input: CheckInput,
  ) {}

  readonly wait = (resume: FilterResume): void => {
    if (this.state !== S.IDLE) return;
    this.state = S.ASKING;
    const f = this.filter;
    if (this.req.body) this.input.body = this.req.body;
    const started = performance.now();
    const call = f.transport.start(this.input, f.config.timeoutMs, (o) => {
      if (this.state !== S.ASKING) return;
      this.state = S.OVER;
      this.cancel = null;
      resume(f.decide(o, this.req, performance.now() - started));
    });
    if (this.state === S.ASKING) this.cancel = call.cancel;
  };

  onDone(): void {
    const c = this.cancel;
    this.state = S.OVER;
    this.cancel = null;
    c?.();
  }
}

/**
 * Envoy's `envoy.filters.http.ext_authz`: each request (the filter enabled for it) is held
 * while an authorization service decides — a gRPC Check or a plain HTTP request — then goes on
 * with the service's header edits, or is answered with its denial, or, when the service fails,
 * with status_on_error (or let through under failure_mode_allow).
 */
export class ExtAuthzFilter implements HttpFilter {
  readonly stats: StatsOf<typeof EXT_AUTHZ_STATS>;
  readonly transport: CheckTransport;
  private readonly errorReply: FilterReply;
  private readonly disabledReply: FilterVerdict;
  private readonly http: boolean;

  constructor(
    readonly config: ExtAuthzConfig,
    scope: Scope,
    /** Its name in the chain: where its routes' ExtAuthzPerRoute are. */
    private readonly name = 'envoy.filters.http.ext_authz',
    clusters: ClusterManager | null = null,
  ) {
    let s = scope.scope('ext_authz');
    if (config.statPrefix) s = s.scope(config.statPrefix);
    this.stats = s.table(EXT_AUTHZ_STATS);
    const svc = config.service;
    this.http = svc.kind === 'http';
    this.transport = svc.kind === 'grpc' ? new GrpcCheck(svc, clusters) : new HttpCheck(svc, clusters);
    // UAEX: Envoy's response flag for a request the external authorization service refused.
    this.errorReply = Object.freeze({ status: config.statusOnError, body: '', grpcStatus: grpcStatusOfHttp(config.statusOnError), flag: 'UAEX' });
    this.disabledReply = Object.freeze({ delayMs: 0, reply: this.errorReply });
  }

  private enabled(req: HttpFilterRequest): boolean {
    const c = this.config;
    if (c.enabledFraction < 1 && !(Math.random() < c.enabledFraction)) return false;
    const m = c.enabledMetadata;
    return m === null || m.test(req.dynamicMetadata?.get(m.ns)?.get(m.key));
  }

  onRequest(req: HttpFilterRequest): FilterVerdict | null {
    const pr = perRouteConfig<ExtAuthzPerRoute>(req, this.name);
    // A route that turns the filter off is neither checked nor denied (deny_at_disable aside).
    if (pr === PER_ROUTE_DISABLED) return null;
    if (!this.enabled(req)) {
      this.stats.disabled.value++;
      return this.config.denyAtDisable ? this.disabledReply : null;
    }
    const d = req.downstream;
    // An in-memory caller has no connection: there is nothing to tell the service about the client.
    if (!d) return null;
    const c = this.config;
    const headers = new Map<string, string>();
    const host = req.header('host') ?? req.header(':authority') ?? '';
    const scheme = d.tls ? 'https' : 'http';
    if (!this.http) {
      // Envoy's header map has the pseudo-headers whatever the client spoke.
      for (const [k, v] of [[':authority', host], [':method', req.method], [':path', req.path], [':scheme', scheme]] as const) {
        if (headerAllowed(k, false, c.allowedHeaders, c.disallowedHeaders)) headers.set(k, v);
      }
    }
    for (const [k, v] of req.headers?.() ?? []) {
      if (k.charCodeAt(0) === 58 || k === 'host') continue;
      if (!headerAllowed(k, this.http, c.allowedHeaders, c.disallowedHeaders)) continue;
      const prev = headers.get(k);
      headers.set(k, prev === undefined ? v : `${prev},${v}`);
    }
    const peer = peerIdentity(d);
    const input: CheckInput = {
      method: req.method,
      path: req.path,
      host,
      scheme,
      protocol: req.protocol ?? 'HTTP/1.1',
      requestId: req.header('x-request-id') ?? '',
      headers,
      source: d.remote,
      sourcePrincipal: peer ? (peer.uriSans[0] ?? peer.subject) : '',
      destination: d.local,
      destinationPrincipal: d.tls?.localUriSans?.[0] ?? '',
      contextExtensions: pr?.contextExtensions ?? [],
      body: null,
      packAsBytes: c.withBody?.packAsBytes ?? false,
    };
    const check = new Check(this, req, input);
    // with_request_body: the connection manager holds the request until the body is in (needBody).
    const needBody = c.withBody !== null && !pr?.noBody ? c.withBody : null;
    return { delayMs: 0, reply: null, done: check, wait: check.wait, needBody };
  }

  /**
   * The service's answer (after `tookMs`) → how the request goes on (null) or the reply it gets.
   * Its dynamic metadata is published first, an allowed or a denied request's alike, as Envoy does.
   */
  decide(o: CheckOutcome, req: HttpFilterRequest, tookMs = 0): FilterReply | null {
    const s = this.stats;
    if (o.kind !== 'error' && o.meta) this.publish(o.meta, req, o.kind === 'ok' ? tookMs : -1);
    if (o.kind === 'ok') {
      s.ok.value++;
      if (o.headers.length || o.remove.length) addUpstreamHeaders(req, Object.freeze({ add: o.headers, remove: o.remove }));
      if (o.respHeaders) addResponseHeaders(req, Object.freeze({ add: o.respHeaders, remove: [] }));
      // The route stays chosen (clear_route_cache is off): the new query reaches later filters, the route's rewrites and the upstream.
      if (o.query) req.path = editQuery(req.path, o.query);
      return null;
    }
    if (o.kind === 'denied') {
      s.denied.value++;
      return { status: o.status, body: o.body, headers: o.headers, grpcStatus: grpcStatusOfHttp(o.status), flag: 'UAEX' };
    }
    s.error.value++;
    log.debug({ filter: 'ext_authz', why: o.why }, 'ext_authz: authorization service failed');
    if (!this.config.failureModeAllow) return this.errorReply;
    s.failure_mode_allowed.value++;
    if (this.config.failureModeAllowHeaderAdd) addUpstreamHeaders(req, Object.freeze({ add: [FAILURE_MODE_HEADER], remove: [] }));
    return null;
  }

  /**
   * The service's dynamic metadata under Envoy's fixed namespace (whatever this filter is named
   * in the chain), for the filters after it and the access log; an allowed request's also gets
   * `ext_authz_duration`, the check's milliseconds (`tookMs` < 0: none).
   */
  private publish(meta: DynamicMetadata, req: HttpFilterRequest, tookMs: number): void {
    if (!this.config.ingestMetadata) {
      this.stats.ignored_dynamic_metadata.value++;
      return;
    }
    for (const [k, v] of meta) setDynamicMetadata(req, METADATA_NAMESPACE, k, v);
    if (tookMs >= 0) setDynamicMetadata(req, METADATA_NAMESPACE, 'ext_authz_duration', Math.floor(tookMs));
  }
}
