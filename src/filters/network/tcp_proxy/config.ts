import { durationMs } from '../../../config/values.js';
import type { FactoryContext, NetworkFilterFactory } from '../types.js';
import { TcpProxyFilter } from './filter.js';

export const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

/** Envoy's default when idle_timeout is unset: one hour. `0s` disables it. */
const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;

export interface WeightedTarget {
  readonly cluster: string;
  /** Cumulative weight up to and including this entry, for a binary-search pick. */
  readonly upTo: number;
}

export interface TcpProxyConfig {
  readonly statPrefix: string;
  /** One entry for `cluster`, several for `weighted_clusters`. */
  readonly targets: readonly WeightedTarget[];
  readonly totalWeight: number;
  readonly idleTimeoutMs: number;
  readonly maxConnectAttempts: number;
  readonly maxDownstreamConnectionDurationMs: number;
}

type Obj = Record<string, any>;

/** Fields that change traffic and that Strait does not implement yet: refuse rather than ignore. */
const UNSUPPORTED = ['tunneling_config', 'on_demand', 'hash_policy', 'metadata_match'] as const;

function parse(tc: Obj, path: string, ctx: FactoryContext): TcpProxyConfig | null {
  const start = ctx.errors.length;
  for (const f of UNSUPPORTED) {
    if (tc[f] !== undefined) ctx.errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  if (tc.access_log !== undefined) {
    ctx.warnings.push({ path: `${path}.access_log`, message: 'access logs are not written yet; ignored' });
  }
  const targets: WeightedTarget[] = [];
  let total = 0;
  const check = (name: string, p: string) => {
    if (!ctx.clusterNames.has(name)) ctx.errors.push({ path: p, message: `unknown cluster "${name}"` });
  };
  if (typeof tc.cluster === 'string') {
    check(tc.cluster, `${path}.cluster`);
    targets.push({ cluster: tc.cluster, upTo: 1 });
    total = 1;
  } else if (tc.weighted_clusters) {
    (tc.weighted_clusters.clusters ?? []).forEach((wc: Obj, i: number) => {
      const p = `${path}.weighted_clusters.clusters[${i}]`;
      check(String(wc.name), `${p}.name`);
      if (wc.metadata_match !== undefined) ctx.errors.push({ path: `${p}.metadata_match`, message: 'is not supported yet' });
      const w = Number(wc.weight ?? 0);
      if (w <= 0) return; // Envoy skips zero-weight entries.
      total += w;
      targets.push({ cluster: String(wc.name), upTo: total });
    });
    if (total === 0) ctx.errors.push({ path: `${path}.weighted_clusters.clusters`, message: 'needs at least one cluster with a positive weight' });
  }
  if (ctx.errors.length > start) return null;
  return Object.freeze({
    statPrefix: String(tc.stat_prefix),
    targets: Object.freeze(targets),
    totalWeight: total,
    idleTimeoutMs: tc.idle_timeout === undefined ? DEFAULT_IDLE_TIMEOUT_MS : durationMs(tc.idle_timeout)!,
    maxConnectAttempts: tc.max_connect_attempts === undefined ? 1 : Number(tc.max_connect_attempts),
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
