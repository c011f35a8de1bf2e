import { durationMs } from '../config/values.js';
import type { FieldError } from '../errors.js';
import type { ClusterSpec } from '../upstream/cluster.js';

type Obj = Record<string, any>;

/** How this process reaches its control plane and what it asks for: from `dynamic_resources`. */
export interface XdsBootstrap {
  readonly delta: boolean;
  /** A gRPC target (`ipv4:127.0.0.1:18000`, `unix:/tmp/XDS`, `dns:host:port`). */
  readonly target: string;
  /** What the bootstrap named it by, for logs: the cluster name or the target URI. */
  readonly via: string;
  readonly node: Obj;
  readonly lds: boolean;
  readonly cds: boolean;
  /** How long start-up waits for the first configuration (0 = no limit), as Envoy's initial_fetch_timeout. */
  readonly initialFetchTimeoutMs: number;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  /** On-demand clusters (`node.metadata.STRAIT_ON_DEMAND_CLUSTERS`): CDS by name, not wildcard. */
  readonly onDemand: boolean;
}

/**
 * The node metadata key that turns on on-demand cluster subscriptions. Node metadata is where
 * Istio carries per-proxy behaviour flags, it is free-form in the bootstrap (strict parsing
 * accepts it), and the control plane sees it too.
 */
export const ON_DEMAND_KEY = 'STRAIT_ON_DEMAND_CLUSTERS';

/** Envoy's defaults: 15 s initial fetch, 500 ms .. 30 s reconnect backoff. */
const DEFAULT_INITIAL_FETCH_MS = 15_000;
const DEFAULT_BACKOFF = { baseMs: 500, maxMs: 30_000 };

const ADS_TYPES = new Set(['GRPC', 'DELTA_GRPC', 'AGGREGATED_GRPC', 'AGGREGATED_DELTA_GRPC']);

/** An endpoint of a static cluster as a gRPC target. */
function targetOf(c: ClusterSpec): string | null {
  const e = c.endpoints[0];
  if (!e) return null;
  const a = e.address;
  if (a.family === 'unix') return `unix:${a.address}`;
  if (a.family === 'dns') return `dns:${a.address}:${a.port}`;
  return a.family === 'IPv6' ? `ipv6:[${a.address}]:${a.port}` : `ipv4:${a.address}:${a.port}`;
}

/** A ConfigSource that Strait follows: `ads: {}` only (other sources are reported). */
function checkSource(src: Obj | undefined, path: string, errors: FieldError[]): boolean {
  if (!src) return false;
  if (src.ads !== undefined) {
    if (src.resource_api_version && src.resource_api_version !== 'V3') errors.push({ path: `${path}.resource_api_version`, message: 'only V3 is supported' });
    return true;
  }
  const kind = src.path !== undefined || src.path_config_source !== undefined ? 'filesystem config sources' : src.api_config_source !== undefined ? 'non-aggregated api_config_source' : 'this config source';
  errors.push({ path, message: `${kind} are not supported yet; use ads: {} with dynamic_resources.ads_config` });
  return false;
}

/**
 * Validates `dynamic_resources` and resolves the control plane's address against the static
 * clusters. Returns null when there is nothing dynamic (or on errors, which are reported).
 */
export function buildXdsBootstrap(bootstrap: Obj, staticClusters: readonly ClusterSpec[], errors: FieldError[], warnings: FieldError[]): XdsBootstrap | null {
  const dr = bootstrap.dynamic_resources as Obj | undefined;
  const p = 'dynamic_resources';
  const start = errors.length;
  const edsClusters = staticClusters.filter((c) => c.type === 'EDS');
  if (!dr) {
    edsClusters.forEach((c) => errors.push({ path: `static_resources.clusters(${c.name}).type`, message: 'an EDS cluster needs dynamic_resources.ads_config' }));
    return null;
  }
  const lds = checkSource(dr.lds_config, `${p}.lds_config`, errors);
  const cds = checkSource(dr.cds_config, `${p}.cds_config`, errors);
  if (dr.lds_resources_locator || dr.cds_resources_locator) errors.push({ path: p, message: 'xdstp resource locators are not supported yet' });
  if (dr.default_config_source) warnings.push({ path: `${p}.default_config_source`, message: 'is not used (ADS only); ignored' });
  const ads = dr.ads_config as Obj | undefined;
  if (!ads) {
    if (lds || cds || edsClusters.length) errors.push({ path: `${p}.ads_config`, message: 'is required: lds_config/cds_config/eds_config use ads' });
    return null;
  }
  const apiType = String(ads.api_type ?? 'UNSUPPORTED_REST_LEGACY');
  if (!ADS_TYPES.has(apiType)) errors.push({ path: `${p}.ads_config.api_type`, message: `${apiType} is not supported (GRPC or DELTA_GRPC)` });
  if (ads.transport_api_version && ads.transport_api_version !== 'V3') errors.push({ path: `${p}.ads_config.transport_api_version`, message: 'only V3 is supported' });
  const services = (ads.grpc_services ?? []) as Obj[];
  if (services.length !== 1) errors.push({ path: `${p}.ads_config.grpc_services`, message: `needs exactly one gRPC service, got ${services.length}` });
  let target: string | null = null;
  let via = '';
  const gs = services[0];
  if (gs?.envoy_grpc) {
    via = String(gs.envoy_grpc.cluster_name ?? '');
    const c = staticClusters.find((x) => x.name === via);
    if (!c) errors.push({ path: `${p}.ads_config.grpc_services[0].envoy_grpc.cluster_name`, message: `"${via}" is not a static cluster (the control plane must be reachable before any xDS arrives)` });
    else if (c.type === 'EDS') errors.push({ path: `${p}.ads_config.grpc_services[0].envoy_grpc.cluster_name`, message: `"${via}" is an EDS cluster; the xDS cluster must be STATIC or STRICT_DNS` });
    else {
      target = targetOf(c);
      if (!target) errors.push({ path: `${p}.ads_config.grpc_services[0].envoy_grpc.cluster_name`, message: `cluster "${via}" has no endpoint` });
    }
  } else if (gs?.google_grpc) {
    via = String(gs.google_grpc.target_uri ?? '');
    target = via;
    if (gs.google_grpc.channel_credentials || gs.google_grpc.call_credentials?.length) {
      errors.push({ path: `${p}.ads_config.grpc_services[0].google_grpc`, message: 'channel and call credentials (TLS to the control plane) are not supported yet' });
    }
  } else if (gs) errors.push({ path: `${p}.ads_config.grpc_services[0]`, message: 'needs envoy_grpc or google_grpc' });
  if (gs?.initial_metadata?.length) warnings.push({ path: `${p}.ads_config.grpc_services[0].initial_metadata`, message: 'is not sent yet; ignored' });

  edsClusters.forEach((c) => {
    const src = (c.source as Obj).eds_cluster_config?.eds_config as Obj | undefined;
    if (src) checkSource(src, `static_resources.clusters(${c.name}).eds_cluster_config.eds_config`, errors);
  });

  // envoy_grpc.retry_policy is Envoy's xDS reconnect setting; an unset max is ten times the base.
  const rb = (gs?.envoy_grpc?.retry_policy ?? gs?.retry_policy)?.retry_back_off as Obj | undefined;
  const base = durationMs(rb?.base_interval);
  const backoff = {
    baseMs: base ?? DEFAULT_BACKOFF.baseMs,
    maxMs: durationMs(rb?.max_interval) ?? (base !== undefined ? base * 10 : DEFAULT_BACKOFF.maxMs),
  };
  const ift = durationMs(dr.lds_config?.initial_fetch_timeout ?? dr.cds_config?.initial_fetch_timeout);
  if (!lds && !cds && !edsClusters.length) warnings.push({ path: p, message: 'ads_config is set but neither lds_config, cds_config nor an EDS cluster uses it' });
  const od = (bootstrap.node?.metadata as Obj | undefined)?.[ON_DEMAND_KEY];
  // Istio writes metadata flags as strings; accept "true"/"false" as well as booleans.
  const onDemand = od === true || od === 'true';
  if (od !== undefined && !onDemand && od !== false && od !== 'false') errors.push({ path: `node.metadata.${ON_DEMAND_KEY}`, message: `must be true or false, got ${JSON.stringify(od)}` });
  if (onDemand && !apiType.includes('DELTA')) errors.push({ path: `node.metadata.${ON_DEMAND_KEY}`, message: 'on-demand clusters need dynamic_resources.ads_config.api_type DELTA_GRPC' });
  if (onDemand && !cds) errors.push({ path: `node.metadata.${ON_DEMAND_KEY}`, message: 'on-demand clusters need dynamic_resources.cds_config' });
  if (errors.length > start || !target) return null;
  const node = { ...((bootstrap.node ?? {}) as Obj), user_agent_name: 'strait' };
  return {
    delta: apiType.includes('DELTA'),
    target,
    via,
    node,
    lds,
    cds,
    initialFetchTimeoutMs: ift ?? DEFAULT_INITIAL_FETCH_MS,
    backoff,
    onDemand,
  };
}
