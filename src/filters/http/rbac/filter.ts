import type { Scope } from '../../../observability/stats.js';
import { DenialLog, evaluate, type RbacConfig, type RbacStats } from '../../../rbac/engine.js';
import { PER_ROUTE_DISABLED, perRouteConfig, setDynamicMetadata, type FilterVerdict, type HttpFilter, type HttpFilterRequest } from '../types.js';
import { httpRbacStats } from './stats.js';

/** Envoy's local reply for a denied request: 403 with this body, PERMISSION_DENIED for gRPC. */
const DENIED: FilterVerdict = Object.freeze({ delayMs: 0, reply: Object.freeze({ status: 403, body: 'RBAC: access denied', grpcStatus: 7 }) });

/** The namespace of the RBAC filter's dynamic metadata (Envoy's canonical filter name). */
export const RBAC_METADATA = 'envoy.filters.http.rbac';

const ENFORCED = new WeakMap<RbacConfig, RbacConfig>();

/** The config without its shadow rules (made once per config): the filter runs those itself. */
function enforcedOnly(c: RbacConfig): RbacConfig {
  if (!c.shadow) return c;
  let e = ENFORCED.get(c);
  if (!e) ENFORCED.set(c, (e = Object.freeze({ ...c, shadow: null })));
  return e;
}

/**
 * Envoy's HTTP RBAC filter: shadow rules are evaluated and counted, enforced rules answer a
 * denied request with 403 before it is routed. Pseudo-headers (`:method`, `:path`,
 * `:authority`) are visible to header rules, as in Envoy. The shadow verdict is published as
 * dynamic metadata under `envoy.filters.http.rbac`: `<shadow_rules_stat_prefix>shadow_engine_result`
 * (allowed / denied) and, when a policy matched, `<shadow_rules_stat_prefix>shadow_effective_policy_id`.
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
    const facts = { downstream: d, method: req.method, path, header };
    if (config.shadow) {
      // Envoy publishes the shadow engine's verdict as dynamic metadata for the filters after
      // it (Istio's CUSTOM action enables ext_authz by the shadow policy id): run the shadow
      // rules here, counting as evaluate() does, and let it judge only the enforced ones.
      const m = config.shadow.match(facts);
      const allowed = config.shadow.allows(m);
      if (allowed) this.stats.shadow_allowed.value++;
      else {
        this.stats.shadow_denied.value++;
        this.denials.note(true, m, facts);
      }
      const p = config.shadowStatPrefix;
      if (m !== null) setDynamicMetadata(req, RBAC_METADATA, `${p}shadow_effective_policy_id`, m);
      setDynamicMetadata(req, RBAC_METADATA, `${p}shadow_engine_result`, allowed ? 'allowed' : 'denied');
    }
    const r = evaluate(enforcedOnly(config), this.stats, this.denials, facts);
    return r.allowed ? null : DENIED;
  }
}
