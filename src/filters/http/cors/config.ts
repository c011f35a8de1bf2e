import type { Scope } from '../../../observability/stats.js';
import type { HttpFilterFactory, HttpFilterParseContext } from '../types.js';
import { CorsFilter } from './filter.js';
import { parseCorsPolicy, type CorsPolicy } from './policy.js';

export const CORS_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors';
export const CORS_POLICY_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';

type Obj = Record<string, any>;

/** The filter's own message (`Cors`) has no fields: everything is in the routes' policies. */
export interface CorsConfig {
  readonly kind: 'cors';
}

const CONFIG: CorsConfig = Object.freeze({ kind: 'cors' });

export const corsFactory = {
  name: 'envoy.filters.http.cors',
  typeUrls: [CORS_TYPE],
  parse: () => CONFIG,
  create: (_config: CorsConfig, scope: Scope, _root: Scope, name?: string) => new CorsFilter(scope, name ?? 'envoy.filters.http.cors'),
  perRoute: {
    typeUrls: [CORS_POLICY_TYPE],
    parse: (tc: Obj, path: string, ctx: HttpFilterParseContext): CorsPolicy | null => parseCorsPolicy(tc, path, ctx.errors),
  },
} satisfies HttpFilterFactory<CorsConfig>;
