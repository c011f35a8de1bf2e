/**
 * HTTP filters that leave every request as it is in the configurations Strait accepts, so they
 * are checked and then left out of the chain (no per-request cost). Istio puts them in its
 * connection managers; refusing them refused every Istio listener. (The cors filter Istio also
 * puts everywhere used to be here while CORS policies were refused; it acts now: ../cors/.)
 * - `envoy.filters.http.grpc_stats`: counts gRPC calls and messages; it never changes traffic.
 *   Its statistics and filter state are not produced yet, which the warning says.
 * - `envoy.filters.http.compressor`: Istio's bootstrap puts three (brotli, zstd, gzip) on its
 *   Prometheus listener (15090), so refusing it refused Istio's bootstrap. Strait does not
 *   compress yet: responses go out as the upstream sent them, which is always a valid answer to
 *   Accept-Encoding (RFC 9110 §12.5.3: identity stays acceptable unless the client refuses it
 *   with q=0). The warning says so; the library must still be one Envoy names.
 */
import { INERT_FILTER, type HttpFilterFactory, type HttpFilterParseContext } from '../types.js';

export const GRPC_STATS_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig';
export const COMPRESSOR_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor';
export const COMPRESSOR_PER_ROUTE_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute';

/** compressor_library types, by the encoding each would produce. */
const COMPRESSOR_LIBRARIES: Record<string, string> = {
  'type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip': 'gzip',
  'type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli': 'br',
  'type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd': 'zstd',
};

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

export const compressorFactory = {
  name: 'envoy.filters.http.compressor',
  typeUrls: [COMPRESSOR_TYPE],
  parse(tc: Obj, path: string, ctx: HttpFilterParseContext) {
    const url = tc.compressor_library?.typed_config?.['@type'];
    const encoding = typeof url === 'string' ? COMPRESSOR_LIBRARIES[url] : undefined;
    if (encoding === undefined) {
      const known = Object.keys(COMPRESSOR_LIBRARIES).join(', ');
      ctx.errors.push({ path: `${path}.compressor_library.typed_config`, message: url ? `unknown compressor library ${url} (known: ${known})` : `is required (one of ${known})` });
      return null;
    }
    ctx.warnings.push({ path, message: `compression is not performed yet: responses pass uncompressed (no "${encoding}" content-encoding), which every client accepts` });
    return INERT_FILTER;
  },
  create: never,
  perRoute: {
    typeUrls: [COMPRESSOR_PER_ROUTE_TYPE],
    // Per-route settings only turn compression off or tune it: with none performed, nothing to do.
    parse: () => INERT_FILTER,
  },
} satisfies HttpFilterFactory<typeof INERT_FILTER>;
