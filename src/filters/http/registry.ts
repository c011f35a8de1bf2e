import { LazyRegistry } from '../lazy_registry.js';
import type { HttpFilterFactory } from './types.js';

const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const LOCAL_RATELIMIT = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/**
 * Every HTTP filter Strait implements besides the router (which the connection manager is), by
 * name, type URL and per-route type URL; a filter's module is imported only when a config names
 * it (see LazyRegistry).
 */
export const httpFilters = new LazyRegistry<HttpFilterFactory<any>>('HTTP filter', [
  {
    name: 'envoy.filters.http.buffer',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer'],
    load: async () => (await import('./buffer/config.js')).bufferFactory,
  },
  {
    name: 'envoy.filters.http.fault',
    typeUrls: [FAULT],
    perRouteTypeUrls: [FAULT],
    load: async () => (await import('./fault/config.js')).faultFactory,
  },
  {
    name: 'envoy.filters.http.local_ratelimit',
    typeUrls: [LOCAL_RATELIMIT],
    perRouteTypeUrls: [LOCAL_RATELIMIT],
    load: async () => (await import('./local_ratelimit/config.js')).localRateLimitFactory,
  },
  {
    name: 'envoy.filters.http.rbac',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC'],
    perRouteTypeUrls: ['type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute'],
    load: async () => (await import('./rbac/config.js')).httpRbacFactory,
  },
  {
    name: 'envoy.filters.http.ext_authz',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz'],
    perRouteTypeUrls: ['type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute'],
    load: async () => (await import('./ext_authz/config.js')).extAuthzFactory,
  },
  {
    name: 'envoy.filters.http.cors',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors'],
    perRouteTypeUrls: ['type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy'],
    load: async () => (await import('./cors/config.js')).corsFactory,
  },
  {
    name: 'envoy.filters.http.grpc_stats',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig'],
    load: async () => (await import('./grpc_stats/config.js')).grpcStatsFactory,
  },
  {
    name: 'envoy.filters.http.compressor',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor'],
    perRouteTypeUrls: ['type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute'],
    load: async () => (await import('./compressor/config.js')).compressorFactory,
  },
  {
    name: 'strait.filters.http.priority_ratelimit',
    typeUrls: ['type.googleapis.com/strait.priority_ratelimit.v1.PriorityRateLimit'],
    load: async () => (await import('./priority_ratelimit/config.js')).priorityRateLimitFactory,
  },
]);

/** The filter whose per-route config has this type URL (HTTPFault, LocalRateLimit, RBACPerRoute). */
export function findPerRouteFilter(typeUrl: string): HttpFilterFactory<any> | undefined {
  return httpFilters.findPerRoute(typeUrl);
}

/** By type URL first, by name without one (Envoy's order). */
export function findHttpFilter(name: string, typeUrl: string | undefined): HttpFilterFactory<any> | undefined {
  return httpFilters.find(name, typeUrl);
}
