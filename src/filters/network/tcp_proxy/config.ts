import { durationMs } from '../../../config/values.js';
import { parseAccessLogs, type AccessLogSpec } from '../../../observability/access_log/config.js';
import { compileClusterSpecifier, type ClusterPicker } from '../../../router/cluster_specifier.js';
import { MetadataMatch } from '../../../upstream/subset/metadata_match.js';
import type { FactoryContext, NetworkFilterFactory } from '../types.js';
import { TcpProxyFilter } from './filter.js';

export const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

/** Envoy's default when idle_timeout is unset: one hour. `0s` disables it. */
const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;

export interface TcpProxyConfig {
  readonly statPrefix: string;
  /** `cluster` or `weighted_clusters`, compiled by the shared router code. */
  readonly clusters: ClusterPicker;
  readonly idleTimeoutMs: number;
  /** null when the filter has no access_log. */
  readonly accessLogs: readonly AccessLogSpec[] | null;
  readonly maxConnectAttempts: number;
  /** `metadata_match` for `envoy.lb`: the subset of clusters with lb_subset_config; null = none. */
  readonly metadataMatch: MetadataMatch | null;
  /** `hash_policy: [{ source_ip: {} }]`: RING_HASH / MAGLEV clusters keep one client IP on one host. */
  readonly hashSourceIp: boolean;
  readonly maxDownstreamConnectionDurationMs: number;
}

type Obj = Record<string, any>;

/** Fields that change traffic and that Strait does not implement yet: refuse rather than ignore. */
const UNSUPPORTED = ['tunneling_config', 'on_demand'] as const;

/** Envoy's type.v3.HashPolicy for tcp_proxy: at most one, and only source_ip (filter_state needs state Strait does not keep). */
function parseHashPolicy(list: unknown, path: string, ctx: FactoryContext): boolean {
  const items = (list ?? []) as Obj[];
  if (!Array.isArray(items) || items.length === 0) return false;
  if (items.length > 1) ctx.errors.push({ path, message: 'takes at most one policy' });
  const p = items[0] ?? {};
  if (p.filter_state !== undefined && p.filter_state !== null) ctx.errors.push({ path: `${path}[0].filter_state`, message: 'is not supported (Strait keeps no filter state)' });
  else if (p.source_ip === undefined || p.source_ip === null) ctx.errors.push({ path: `${path}[0]`, message: 'needs source_ip' });
  return true;
}

function parse(tc: Obj, path: string, ctx: FactoryContext): TcpProxyConfig | null {
  const start = ctx.errors.length;
  for (const f of UNSUPPORTED) {
    if (tc[f] !== undefined) ctx.errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  const accessLogs = parseAccessLogs(tc.access_log, `${path}.access_log`, ctx.errors, ctx.warnings);
  const clusters = compileClusterSpecifier(tc, path, ctx.clusterNames, ctx.errors);
  const hashSourceIp = parseHashPolicy(tc.hash_policy, `${path}.hash_policy`, ctx);
  if (ctx.errors.length > start) return null;
  return Object.freeze({
    statPrefix: String(tc.stat_prefix),
    clusters: clusters!,
    accessLogs,
    idleTimeoutMs: tc.idle_timeout === undefined ? DEFAULT_IDLE_TIMEOUT_MS : durationMs(tc.idle_timeout)!,
    maxConnectAttempts: tc.max_connect_attempts === undefined ? 1 : Number(tc.max_connect_attempts),
    metadataMatch: MetadataMatch.fromMetadata(tc.metadata_match),
    hashSourceIp,
    maxDownstreamConnectionDurationMs:
      tc.max_downstream_connection_duration === undefined ? 0 : durationMs(tc.max_downstream_connection_duration)!,
  });
}

export const tcpProxyFactory = {
  name: 'envoy.filters.network.tcp_proxy',
  typeUrls: [TCP_PROXY_TYPE],
  terminal: true,
  parse,
  create: (config, rt) => new TcpProxyFilter(config, rt),
} satisfies NetworkFilterFactory<TcpProxyConfig>;
