import { LazyRegistry } from '../lazy_registry.js';
import type { NetworkFilterFactory } from './types.js';

/**
 * Every network filter Strait implements, by name and type URL; a filter's module is imported
 * only when a config names it (see LazyRegistry). One entry here is how a filter plugs in.
 */
export const networkFilters = new LazyRegistry<NetworkFilterFactory<any>>('network filter', [
  {
    name: 'envoy.filters.network.tcp_proxy',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy'],
    load: async () => (await import('./tcp_proxy/config.js')).tcpProxyFactory,
  },
  {
    name: 'strait.filters.network.rpc_proxy',
    typeUrls: ['type.googleapis.com/strait.rpc_proxy.v1.RpcProxy'],
    load: async () => (await import('./rpc_proxy/config.js')).rpcProxyFactory,
  },
  {
    name: 'envoy.filters.network.dubbo_proxy',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy'],
    load: async () => (await import('./rpc_proxy/config.js')).dubboProxyFactory,
  },
  {
    name: 'envoy.filters.network.thrift_proxy',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy'],
    load: async () => (await import('./thrift_proxy/config.js')).thriftProxyFactory,
  },
  {
    name: 'envoy.filters.network.http_connection_manager',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'],
    load: async () => (await import('./http_connection_manager/config.js')).httpConnectionManagerFactory,
  },
  {
    name: 'envoy.filters.network.local_ratelimit',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit'],
    load: async () => (await import('./local_ratelimit/config.js')).networkLocalRateLimitFactory,
  },
  {
    // istio-proxy's; Istio names it `istio_authn` in its chains, but resolution goes by type URL.
    name: 'io.istio.network.authn',
    typeUrls: ['type.googleapis.com/io.istio.network.authn.Config'],
    load: async () => (await import('./istio_authn/config.js')).istioAuthnFactory,
  },
  {
    name: 'envoy.filters.network.rbac',
    typeUrls: ['type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC'],
    load: async () => (await import('./rbac/config.js')).networkRbacFactory,
  },
]);

/** Envoy resolves a filter by its typed_config's type URL first and by name only without one. */
export function findNetworkFilter(name: string, typeUrl: string | undefined): NetworkFilterFactory<any> | undefined {
  return networkFilters.find(name, typeUrl);
}

export function networkFilterNames(): string[] {
  return networkFilters.names();
}
