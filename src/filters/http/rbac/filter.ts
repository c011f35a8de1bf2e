import type { Scope } from '../../../observability/stats.js';
import { DenialLog, evaluate, type RbacConfig, type RbacStats } from '../../../rbac/engine.js';
import { PER_ROUTE_DISABLED, perRouteConfig, type FilterVerdict, type HttpFilter, type HttpFilterRequest } from '../types.js';
import { httpRbacStats } from './stats.js';

/** Envoy's local reply for a denied request: 403 with this body, PERMISSION_DENIED for gRPC. */
const DENIED: FilterVerdict = Object.freeze({ delayMs: 0, reply: Object.freeze({ status: 403, body: 'RBAC: access denied', grpcStatus: 7 }) });

/**
 * Envoy's HTTP RBAC filter: shadow rules are evaluated and counted, enforced rules answer a
 * denied request with 403 before it is routed. Pseudo-headers (`:method`, `:path`,
 * `:authority`) are visible to header rules, as in Envoy.
 */
export class HttpRbacFilter implements HttpFilter {
  readonly stats: RbacStats;
  private readonly denials = new DenialLog('envoy.filters.http.rbac');

  constructor(
    private readonly config: RbacConfig,
    scope: Scope,
    /** Its name in the chain: where its routes' RBACPerRoute overrides are. */
    private readonly name = 'envoy.filters.http.rbac',
  ) {
    this.stats = httpRbacStats(scope, config);
  }

  onRequest(req: HttpFilterRequest): FilterVerdict | null {
    const d = req.downstream;
    // Without a connection (an in-memory caller) there is nothing to judge the client by.
    if (!d) return null;
    // A route's RBACPerRoute replaces the policy, or turns the filter off for the route. Its
    // decisions count in the filter's own stats.
    const pr = perRouteConfig<RbacConfig>(req, this.name);
    if (pr === PER_ROUTE_DISABLED) return null;
    const config = pr ?? this.config;
    const q = req.path.indexOf('?');
    const path = q < 0 ? req.path : req.path.slice(0, q);
    const header = (n: string): string | undefined => {
      if (n.charCodeAt(0) !== 58 /* ':' */) return req.header(n);
      if (n === ':method') return req.method;
      if (n === ':path') return req.path;
      if (n === ':authority') return req.header('host') ?? req.header(':authority');
      return req.header(n);
    };
    const r = evaluate(config, this.stats, this.denials, { downstream: d, method: req.method, path, header });
    return r.allowed ? null : DENIED;
  }
}
