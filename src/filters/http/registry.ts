import { bufferFactory } from './buffer/config.js';
import { faultFactory } from './fault/config.js';
import { localRateLimitFactory } from './local_ratelimit/config.js';
import { httpRbacFactory } from './rbac/config.js';
import { priorityRateLimitFactory } from './priority_ratelimit/config.js';
import type { HttpFilterFactory } from './types.js';

/** Every HTTP filter Strait implements besides the router (which the connection manager is). */
const FACTORIES: readonly HttpFilterFactory<any>[] = [bufferFactory, faultFactory, localRateLimitFactory, httpRbacFactory, priorityRateLimitFactory];

const byType = new Map<string, HttpFilterFactory<any>>();
const byName = new Map<string, HttpFilterFactory<any>>();
for (const f of FACTORIES) {
  byName.set(f.name, f);
  for (const t of f.typeUrls) byType.set(t, f);
}

const byPerRouteType = new Map<string, HttpFilterFactory<any>>();
for (const f of FACTORIES) for (const t of f.perRoute?.typeUrls ?? []) byPerRouteType.set(t, f);

/** The filter whose per-route config has this type URL (HTTPFault, LocalRateLimit, RBACPerRoute). */
export function findPerRouteFilter(typeUrl: string): HttpFilterFactory<any> | undefined {
  return byPerRouteType.get(typeUrl);
}

/** By type URL first, by name without one (Envoy's order). */
export function findHttpFilter(name: string, typeUrl: string | undefined): HttpFilterFactory<any> | undefined {
  return typeUrl ? byType.get(typeUrl) : byName.get(name);
}
