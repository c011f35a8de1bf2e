/**
 * HTTP filters that leave every request as it is in the configurations Strait accepts, so they
 * are checked and then left out of the chain (no per-request cost). Istio puts both in every
 * connection manager; refusing them refused every Istio listener.
 * - `envoy.filters.http.cors`: acts only through CORS policies on virtual hosts and routes. Those
 *   are refused (the `CorsPolicy` per-route config here, the older `cors` fields by the route
 *   table), so with the filter accepted no request is ever changed — as in Envoy without them.
 * - `envoy.filters.http.grpc_stats`: counts gRPC calls and messages; it never changes traffic.
 *   Its statistics and filter state are not produced yet, which the warning says.
 */
import { INERT_FILTER, type HttpFilterFactory, type HttpFilterParseContext } from '../types.js';

export const CORS_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors';
export const CORS_POLICY_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';
export const GRPC_STATS_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig';

type Obj = Record<string, any>;

const never = (): never => {
  throw new Error('an inert HTTP filter is never created');
};

export const corsFactory = {
  name: 'envoy.filters.http.cors',
  typeUrls: [CORS_TYPE],
  // The v3 message has no fields: the policies are all there is to it.
  parse: () => INERT_FILTER,
  create: never,
  perRoute: {
    typeUrls: [CORS_POLICY_TYPE],
    parse(_tc: Obj, path: string, ctx: HttpFilterParseContext): null {
      ctx.errors.push({ path, message: 'CORS policies are not supported yet (the cors filter is accepted only while no route has one)' });
      return null;
    },
  },
} satisfies HttpFilterFactory<typeof INERT_FILTER>;

export const grpcStatsFactory = {
  name: 'envoy.filters.http.grpc_stats',
  typeUrls: [GRPC_STATS_TYPE],
  parse(_tc: Obj, path: string, ctx: HttpFilterParseContext) {
    ctx.warnings.push({ path, message: 'grpc_stats statistics and filter state are not produced yet; requests pass untouched' });
    return INERT_FILTER;
  },
  create: never,
} satisfies HttpFilterFactory<typeof INERT_FILTER>;
