import { parseRbacConfig, type RbacConfig } from '../../../rbac/engine.js';
import { PER_ROUTE_DISABLED, type HttpFilterFactory, type HttpFilterParseContext } from '../types.js';
import { HttpRbacFilter } from './filter.js';

export const HTTP_RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
export const HTTP_RBAC_PER_ROUTE_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute';

type Obj = Record<string, any>;

function parse(tc: Obj, path: string, ctx: HttpFilterParseContext): RbacConfig | null {
  const start = ctx.errors.length;
  if (tc.track_per_rule_stats === true) ctx.errors.push({ path: `${path}.track_per_rule_stats`, message: 'is not supported yet' });
  const c = parseRbacConfig(tc, path, ctx.errors, ctx.warnings);
  // RPC call metadata never exists on an HTTP request: such a rule can only mislead.
  if (c?.usesRpc) ctx.errors.push({ path, message: 'RPC metadata matchers belong in envoy.filters.network.rbac in front of an RPC proxy' });
  return ctx.errors.length > start ? null : c;
}

/** RBACPerRoute: `rbac` replaces the filter's policy for the route; without it the filter is off there (Envoy's rule). */
function parsePerRoute(tc: Obj, path: string, ctx: HttpFilterParseContext): RbacConfig | typeof PER_ROUTE_DISABLED | null {
  if (tc.rbac === undefined || tc.rbac === null) return PER_ROUTE_DISABLED;
  if (typeof tc.rbac !== 'object') {
    ctx.errors.push({ path: `${path}.rbac`, message: 'must be an RBAC message' });
    return null;
  }
  return parse(tc.rbac as Obj, `${path}.rbac`, ctx);
}

export const httpRbacFactory = {
  name: 'envoy.filters.http.rbac',
  typeUrls: [HTTP_RBAC_TYPE],
  parse,
  create: (config, scope, _root, name) => new HttpRbacFilter(config, scope, name),
  perRoute: { typeUrls: [HTTP_RBAC_PER_ROUTE_TYPE], parse: parsePerRoute },
} satisfies HttpFilterFactory<RbacConfig>;
