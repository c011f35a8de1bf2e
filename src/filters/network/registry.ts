import type { NetworkFilterFactory } from './types.js';
import { dubboProxyFactory, rpcProxyFactory } from './rpc_proxy/config.js';
import { httpConnectionManagerFactory } from './http_connection_manager/config.js';
import { tcpProxyFactory } from './tcp_proxy/config.js';
import { networkRbacFactory } from './rbac/config.js';
import { networkLocalRateLimitFactory } from './local_ratelimit/config.js';

/** Every network filter Strait implements. One line here is how a filter plugs in. */
const FACTORIES: readonly NetworkFilterFactory<any>[] = [tcpProxyFactory, rpcProxyFactory, dubboProxyFactory, httpConnectionManagerFactory, networkLocalRateLimitFactory, networkRbacFactory];

const byName = new Map<string, NetworkFilterFactory<any>>();
const byType = new Map<string, NetworkFilterFactory<any>>();
for (const f of FACTORIES) {
  if (byName.has(f.name)) throw new Error(`network filter ${f.name} registered twice`);
  byName.set(f.name, f);
  for (const t of f.typeUrls) byType.set(t, f);
}

/** Envoy resolves a filter by its typed_config's type URL first and by name only without one. */
export function findNetworkFilter(name: string, typeUrl: string | undefined): NetworkFilterFactory<any> | undefined {
  return typeUrl ? byType.get(typeUrl) : byName.get(name);
}

export function networkFilterNames(): string[] {
  return [...byName.keys()];
}
