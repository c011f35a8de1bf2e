/**
 * HTTP filters that leave every request as it is in the configurations Strait accepts, so they
 * are checked and then left out of the chain (no per-request cost). Istio puts them in its
 * connection managers; refusing them refused every Istio listener. (The cors filter Istio also
 * puts everywhere used to be here while CORS policies were refused; it acts now: ../cors/.)
 * - `envoy.filters.http.grpc_stats`: counts gRPC calls and messages; it never changes traffic.
 *   Its statistics and filter state are not produced yet, which the warning says.
 * (`envoy.filters.http.compressor` was here too while Strait did not compress: Istio's bootstrap
 * puts three on its Prometheus listener. It compresses now: ../compressor/.)
 */
import { INERT_FILTER, type HttpFilterFactory, type HttpFilterParseContext } from '../types.js';

export const GRPC_STATS_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig';

type Obj = Record<string, any>;

const never = (): never => {
  throw new Error('an inert HTTP filter is never created');
};

export const grpcStatsFactory = {
  name: 'envoy.filters.http.grpc_stats',
  typeUrls: [GRPC_STATS_TYPE],
  parse(_tc: Obj, path: string, ctx: HttpFilterParseContext) {
    ctx.warnings.push({ path, message: 'grpc_stats statistics and filter state are not produced yet; requests pass untouched' });
    return INERT_FILTER;
  },
  create: never,
} satisfies HttpFilterFactory<typeof INERT_FILTER>;
