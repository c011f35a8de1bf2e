import { parseRbacConfig, type RbacConfig } from '../../../rbac/engine.js';
import type { HttpFilterFactory, HttpFilterParseContext } from '../types.js';
import { HttpRbacFilter } from './filter.js';

export const HTTP_RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';

type Obj = Record<string, any>;

function parse(tc: Obj, path: string, ctx: HttpFilterParseContext): RbacConfig | null {
  const start = ctx.errors.length;
  if (tc.track_per_rule_stats === true) ctx.errors.push({ path: `${path}.track_per_rule_stats`, message: 'is not supported yet' });
  const c = parseRbacConfig(tc, path, ctx.errors, ctx.warnings);
  // RPC call metadata never exists on an HTTP request: such a rule can only mislead.
  if (c?.usesRpc) ctx.errors.push({ path, message: 'RPC metadata matchers belong in envoy.filters.network.rbac in front of an RPC proxy' });
  return ctx.errors.length > start ? null : c;
}

export const httpRbacFactory = {
  name: 'envoy.filters.http.rbac',
  typeUrls: [HTTP_RBAC_TYPE],
  parse,
  create: (config, scope) => new HttpRbacFilter(config, scope),
} satisfies HttpFilterFactory<RbacConfig>;
