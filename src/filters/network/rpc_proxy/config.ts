import { getCodec, protocolNames } from '../../../protocols/index.js';
import { parseRateLimitSpec, type RateLimitSpec } from '../../../ratelimit/config.js';
import { durationMs } from '../../../config/values.js';
import { parseAccessLogs, type AccessLogSpec } from '../../../observability/access_log/config.js';
import { RpcRouteTable, type RpcRouter } from '../../../router/rpc_route_table.js';
import { parseTracing, type TracingConfig } from '../../../observability/tracing/config.js';
import type { FactoryContext, NetworkFilterFactory } from '../types.js';
import type { RpcExtensionFactory } from './extension.js';
import { RpcProxyFilter } from './filter.js';

export const RPC_PROXY_TYPE = 'type.googleapis.com/strait.rpc_proxy.v1.RpcProxy';
export const DUBBO_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy';

const DEFAULT_MAX_FRAME = 8 * 1024 * 1024;

export interface RpcProxyConfig {
  /** `rpc` for Strait's filter, `dubbo`/`thrift` for Envoy's dubbo_proxy/thrift_proxy (their stats keep Envoy's prefix). */
  readonly statScope: 'rpc' | 'dubbo' | 'thrift';
  readonly statPrefix: string;
  /** The codec's registered name; null = detect per connection (AUTO). */
  readonly codec: string | null;
  readonly routes: RpcRouter;
  readonly maxFrameBytes: number;
  /** `rate_limit`; null = none. */
  readonly rateLimit: RpcRateLimit | null;
  /** Idle upstream connections get a heartbeat this often; 0 = never. */
  readonly upstreamHeartbeatMs: number;
  /** null when the filter has no access_log. */
  readonly accessLogs: readonly AccessLogSpec[] | null;
  /** `tracing`: a span per call; null = none (calls then build no trace state at all). */
  readonly tracing: TracingConfig | null;
  /** A protocol filter's additions to the engine (thrift_proxy); null for rpc_proxy and dubbo_proxy. */
  readonly extension?: RpcExtensionFactory | null;
  /** Calls one client connection may make before it is closed (thrift_proxy); 0 or absent = no limit. */
  readonly maxRequestsPerConnection?: number;
}

const DEFAULT_UPSTREAM_HEARTBEAT_MS = 30_000;

/** `rate_limit`: the same block the HTTP priority_ratelimit filter takes (src/ratelimit/config.ts). */
export type RpcRateLimit = RateLimitSpec;

function parseRateLimit(rl: Obj | undefined, path: string, ctx: FactoryContext): RpcRateLimit | null {
  return rl ? parseRateLimitSpec(rl, path, ctx.errors) : null;
}

type Obj = Record<string, any>;

function parseRpcProxy(tc: Obj, path: string, ctx: FactoryContext): RpcProxyConfig | null {
  const start = ctx.errors.length;
  const protocol = String(tc.protocol ?? 'AUTO');
  const codec = tc.codec ? String(tc.codec) : protocol === 'AUTO' ? null : protocol.toLowerCase();
  if (codec && !getCodec(codec)) ctx.errors.push({ path: `${path}.codec`, message: `unknown codec "${codec}" (registered: ${protocolNames().join(', ')})` });
  const routes = RpcRouteTable.compile((tc.route_config ?? []) as Obj[], `${path}.route_config`, ctx.clusterNames, ctx.errors);
  const accessLogs = parseAccessLogs(tc.access_log, `${path}.access_log`, ctx.errors, ctx.warnings);
  const rateLimit = parseRateLimit(tc.rate_limit as Obj | undefined, `${path}.rate_limit`, ctx);
  const tracing = parseTracing(tc.tracing as Obj | undefined, `${path}.tracing`, ctx.clusterNames, ctx.errors, ctx.warnings);
  if (ctx.errors.length > start) return null;
  return Object.freeze({
    accessLogs,
    tracing,
    statScope: 'rpc' as const,
    statPrefix: String(tc.stat_prefix),
    codec,
    routes,
    maxFrameBytes: tc.max_frame_bytes === undefined ? DEFAULT_MAX_FRAME : Number(tc.max_frame_bytes),
    upstreamHeartbeatMs: durationMs(tc.upstream_heartbeat_interval) ?? DEFAULT_UPSTREAM_HEARTBEAT_MS,
    rateLimit,
  });
}

/** Envoy's dubbo_proxy maps onto the same engine: its route_config has the same shape. */
function parseDubboProxy(tc: Obj, path: string, ctx: FactoryContext): RpcProxyConfig | null {
  const start = ctx.errors.length;
  if (tc.protocol_type && tc.protocol_type !== 'Dubbo') ctx.errors.push({ path: `${path}.protocol_type`, message: `${tc.protocol_type} is not supported` });
  if (tc.serialization_type && tc.serialization_type !== 'Hessian2') ctx.errors.push({ path: `${path}.serialization_type`, message: `${tc.serialization_type} is not supported` });
  if (tc.drds) ctx.errors.push({ path: `${path}.drds`, message: 'route discovery (drds) is not supported yet' });
  // multiple_route_config is the newer spelling of the same list (route_config is deprecated); not both, as in Envoy.
  const multiple = (tc.multiple_route_config ?? null) as Obj | null;
  const legacy = (tc.route_config ?? []) as Obj[];
  if (multiple !== null && legacy.length) ctx.errors.push({ path: `${path}.multiple_route_config`, message: 'cannot be combined with route_config' });
  ((tc.dubbo_filters ?? []) as Obj[]).forEach((f, i) => {
    // The router is implied; any other dubbo filter would change behaviour.
    if (f.name !== 'envoy.filters.dubbo.router') ctx.errors.push({ path: `${path}.dubbo_filters[${i}]`, message: `dubbo filter "${f.name}" is not supported` });
  });
  const routes =
    multiple !== null
      ? RpcRouteTable.compile((multiple.route_config ?? []) as Obj[], `${path}.multiple_route_config.route_config`, ctx.clusterNames, ctx.errors)
      : RpcRouteTable.compile(legacy, `${path}.route_config`, ctx.clusterNames, ctx.errors);
  if (ctx.errors.length > start) return null;
  return Object.freeze({ accessLogs: null, tracing: null, statScope: 'dubbo' as const, statPrefix: String(tc.stat_prefix), codec: 'dubbo', routes, maxFrameBytes: DEFAULT_MAX_FRAME, upstreamHeartbeatMs: DEFAULT_UPSTREAM_HEARTBEAT_MS, rateLimit: null });
}

export const rpcProxyFactory = {
  name: 'strait.filters.network.rpc_proxy',
  typeUrls: [RPC_PROXY_TYPE],
  terminal: true,
  parse: parseRpcProxy,
  create: (config, rt) => new RpcProxyFilter(config, rt),
} satisfies NetworkFilterFactory<RpcProxyConfig>;

export const dubboProxyFactory = {
  name: 'envoy.filters.network.dubbo_proxy',
  typeUrls: [DUBBO_PROXY_TYPE],
  terminal: true,
  parse: parseDubboProxy,
  create: (config, rt) => new RpcProxyFilter(config, rt),
} satisfies NetworkFilterFactory<RpcProxyConfig>;
