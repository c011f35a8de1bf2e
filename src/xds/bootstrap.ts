import fs from 'node:fs';
import nodePath from 'node:path';
import { durationMs } from '../config/values.js';
import type { FieldError } from '../errors.js';
import type { ClusterSpec } from '../upstream/cluster.js';
import type { SdsRef } from '../tls/context.js';

type Obj = Record<string, any>;

/**
 * Where one type of resource comes from: the ADS stream, or a file in Envoy's filesystem-xDS form
 * (a DiscoveryResponse: `version_info` and `resources`), re-read when a file is moved into place.
 */
export type ConfigSourceSpec = { readonly kind: 'ads' } | FileSourceSpec;

export interface FileSourceSpec {
  readonly kind: 'file';
  /** Absolute path of the DiscoveryResponse file. */
  readonly path: string;
  /** `path_config_source.watched_directory`: any move into it reloads `path`; null = watch `path` itself. */
  readonly watchDir: string | null;
}

/** The control plane: from `dynamic_resources.ads_config`. */
export interface AdsSpec {
  readonly delta: boolean;
  /** A gRPC target (`ipv4:127.0.0.1:18000`, `unix:/tmp/XDS`, `dns:host:port`). */
  readonly target: string;
  /** What the bootstrap named it by, for logs: the cluster name or the target URI. */
  readonly via: string;
}

/** What `dynamic_resources` (and EDS clusters' eds_config) ask this process to follow. */
export interface XdsBootstrap {
  /** The ADS stream; null when every source is a file (no control plane at all). */
  readonly ads: AdsSpec | null;
  readonly node: Obj;
  /** `lds_config` / `cds_config`; null when absent. */
  readonly lds: ConfigSourceSpec | null;
  readonly cds: ConfigSourceSpec | null;
  /** How long start-up waits for the first configuration (0 = no limit), as Envoy's initial_fetch_timeout. */
  readonly initialFetchTimeoutMs: number;
  /** Reconnect backoff of gRPC xDS streams (ADS, stand-alone SDS). */
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  /** On-demand clusters (`node.metadata.STRAIT_ON_DEMAND_CLUSTERS`): CDS by name, not wildcard. */
  readonly onDemand: boolean;
  /**
   * SDS references of static listeners and clusters to a control plane (ADS or a gRPC SDS
   * service, as Istio's own metrics listener and SPIRE's Envoy configs have): subscribed with the
   * xDS side's, and waited for at start-up up to initial_fetch_timeout, as Envoy does.
   */
  readonly staticSds?: readonly SdsRef[];
}

/**
 * How file sources are checked. `serve`: as Envoy at start-up, the file (and a watched
 * directory) must exist. `validate`: a config is often checked away from the host it runs on,
 * so a missing file or directory is a warning there, not an error.
 */
export type SourceCheckMode = 'serve' | 'validate';

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

/**
 * Parses a ConfigSource Strait follows: `ads: {}`, or a file (`path_config_source`, or the
 * deprecated `path`). Other sources are reported. Null when absent or refused.
 */
export function parseConfigSource(src: Obj | undefined, path: string, errors: FieldError[], warnings: FieldError[], mode: SourceCheckMode = 'serve'): ConfigSourceSpec | null {
  if (!src) return null;
  if (src.resource_api_version && src.resource_api_version !== 'V3') errors.push({ path: `${path}.resource_api_version`, message: 'only V3 is supported' });
  if (src.ads !== undefined) return { kind: 'ads' };
  if (src.path !== undefined || src.path_config_source !== undefined) {
    // ConfigSource's specifier is a oneof: the decoder has already refused two of them at once.
    const pcs = src.path_config_source as Obj | undefined;
    const fp = pcs ? `${path}.path_config_source.path` : `${path}.path`;
    const file = pcs ? pcs.path : src.path;
    const start = errors.length;
    if (typeof file !== 'string' || !file) errors.push({ path: fp, message: 'is required' });
    // Envoy would read a relative path against its working directory, which a sidecar's
    // supervisor decides; refuse it rather than watch a directory nobody meant.
    else if (!nodePath.isAbsolute(file)) errors.push({ path: fp, message: `"${file}" is relative; give an absolute path` });
    const wdRaw = pcs?.watched_directory?.path;
    const wp = `${path}.path_config_source.watched_directory.path`;
    let watchDir: string | null = null;
    if (pcs?.watched_directory !== undefined) {
      if (typeof wdRaw !== 'string' || !wdRaw) errors.push({ path: wp, message: 'is required' });
      else if (!nodePath.isAbsolute(wdRaw)) errors.push({ path: wp, message: `"${wdRaw}" is relative; give an absolute path` });
      else watchDir = wdRaw;
    }
    if (errors.length > start) return null;
    // Envoy refuses to start when a filesystem subscription's file or watched directory does
    // not exist (Config::Utility::checkFilesystemSubscriptionBackingPath; adding the inotify
    // watch fails). `--mode validate` only warns: the files belong to the host it runs on.
    const problems: FieldError[] = [];
    if (watchDir !== null && !isDir(watchDir)) problems.push({ path: wp, message: `directory ${watchDir} does not exist; it must exist at start-up to be watched` });
    if (!fs.existsSync(file)) problems.push({ path: fp, message: `${file} does not exist; as in Envoy, the file must exist at start-up (replace it later by moving a new file into place)` });
    (mode === 'validate' ? warnings : errors).push(...problems);
    if (mode === 'serve' && problems.length) return null;
    return { kind: 'file', path: file as string, watchDir };
  }
  const kind = src.api_config_source !== undefined ? 'non-aggregated api_config_source' : 'this config source';
  errors.push({ path, message: `${kind} are not supported yet; use ads: {} with dynamic_resources.ads_config, or a file (path_config_source)` });
  return null;
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The eds_config of an EDS cluster (Envoy's default when unset is ADS, as Strait had it). */
export function edsSourceOf(cluster: Obj): Obj | undefined {
  return cluster.eds_cluster_config?.eds_config as Obj | undefined;
}

/**
 * Validates `dynamic_resources` and the EDS clusters' sources, and resolves the control plane's
 * address against the static clusters when ADS is used. Returns null when there is nothing
 * dynamic (or on errors, which are reported). File sources need no control plane.
 */
export function buildXdsBootstrap(
  bootstrap: Obj,
  staticClusters: readonly ClusterSpec[],
  errors: FieldError[],
  warnings: FieldError[],
  mode: SourceCheckMode = 'serve',
  /** The SDS references of static listeners and clusters (file ones included; they are skipped). */
  staticSdsRefs: readonly SdsRef[] = [],
): XdsBootstrap | null {
  const dr = (bootstrap.dynamic_resources ?? undefined) as Obj | undefined;
  const p = 'dynamic_resources';
  const start = errors.length;
  const staticSds = staticSdsRefs.filter((r) => r.source.kind !== 'file');
  const sdsOverAds = staticSds.filter((r) => r.source.kind === 'ads');
  const refuseSdsOverAds = () => {
    for (const r of sdsOverAds) errors.push({ path: `${r.field}.sds_config.ads`, message: 'SDS over ads needs dynamic_resources.ads_config' });
  };
  const edsClusters = staticClusters.filter((c) => c.type === 'EDS');
  // An EDS cluster without eds_config has always meant ADS here.
  const edsSources = edsClusters.map((c) => {
    const src = edsSourceOf(c.source as Obj);
    return src ? parseConfigSource(src, `static_resources.clusters(${c.name}).eds_cluster_config.eds_config`, errors, warnings, mode) : ({ kind: 'ads' } as const);
  });
  const edsOverAds = edsClusters.filter((_, i) => edsSources[i]?.kind === 'ads');
  if (!dr) {
    edsOverAds.forEach((c) => errors.push({ path: `static_resources.clusters(${c.name}).type`, message: 'an EDS cluster needs dynamic_resources.ads_config (or eds_config with path_config_source)' }));
    refuseSdsOverAds();
    if (errors.length > start || (!edsClusters.length && !staticSds.length)) return null;
    return { ads: null, node: nodeOf(bootstrap), lds: null, cds: null, initialFetchTimeoutMs: DEFAULT_INITIAL_FETCH_MS, backoff: DEFAULT_BACKOFF, onDemand: false, staticSds };
  }
  const lds = parseConfigSource(dr.lds_config, `${p}.lds_config`, errors, warnings, mode);
  const cds = parseConfigSource(dr.cds_config, `${p}.cds_config`, errors, warnings, mode);
  if (dr.lds_resources_locator || dr.cds_resources_locator) errors.push({ path: p, message: 'xdstp resource locators are not supported yet' });
  if (dr.default_config_source) warnings.push({ path: `${p}.default_config_source`, message: 'is not used (ADS only); ignored' });
  const usesAds = lds?.kind === 'ads' || cds?.kind === 'ads' || edsOverAds.length > 0 || sdsOverAds.length > 0;
  const ads = dr.ads_config as Obj | undefined;
  const od = (bootstrap.node?.metadata as Obj | undefined)?.[ON_DEMAND_KEY];
  // Istio writes metadata flags as strings; accept "true"/"false" as well as booleans.
  const onDemand = od === true || od === 'true';
  if (od !== undefined && !onDemand && od !== false && od !== 'false') errors.push({ path: `node.metadata.${ON_DEMAND_KEY}`, message: `must be true or false, got ${JSON.stringify(od)}` });
  const ift = durationMs(dr.lds_config?.initial_fetch_timeout ?? dr.cds_config?.initial_fetch_timeout);
  if (!ads) {
    if (lds?.kind === 'ads' || cds?.kind === 'ads' || edsOverAds.length > 0) errors.push({ path: `${p}.ads_config`, message: 'is required: lds_config/cds_config/eds_config use ads' });
    refuseSdsOverAds();
    if (onDemand) errors.push({ path: `node.metadata.${ON_DEMAND_KEY}`, message: 'on-demand clusters need dynamic_resources.ads_config with api_type DELTA_GRPC' });
    if (errors.length > start || (!lds && !cds && !edsClusters.length && !staticSds.length)) return null;
    return { ads: null, node: nodeOf(bootstrap), lds, cds, initialFetchTimeoutMs: ift ?? DEFAULT_INITIAL_FETCH_MS, backoff: DEFAULT_BACKOFF, onDemand: false, staticSds };
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

  // envoy_grpc.retry_policy is Envoy's xDS reconnect setting; an unset max is ten times the base.
  const rb = (gs?.envoy_grpc?.retry_policy ?? gs?.retry_policy)?.retry_back_off as Obj | undefined;
  const base = durationMs(rb?.base_interval);
  const backoff = {
    baseMs: base ?? DEFAULT_BACKOFF.baseMs,
    maxMs: durationMs(rb?.max_interval) ?? (base !== undefined ? base * 10 : DEFAULT_BACKOFF.maxMs),
  };
  if (!usesAds) warnings.push({ path: p, message: 'ads_config is set but neither lds_config, cds_config nor an EDS cluster uses it' });
  if (onDemand && !apiType.includes('DELTA')) errors.push({ path: `node.metadata.${ON_DEMAND_KEY}`, message: 'on-demand clusters need dynamic_resources.ads_config.api_type DELTA_GRPC' });
  if (onDemand && cds?.kind !== 'ads') errors.push({ path: `node.metadata.${ON_DEMAND_KEY}`, message: cds ? 'on-demand clusters need cds_config over ads, not a file' : 'on-demand clusters need dynamic_resources.cds_config' });
  if (errors.length > start || !target) return null;
  return {
    ads: { delta: apiType.includes('DELTA'), target, via },
    node: nodeOf(bootstrap),
    lds,
    cds,
    initialFetchTimeoutMs: ift ?? DEFAULT_INITIAL_FETCH_MS,
    backoff,
    onDemand,
    staticSds,
  };
}

function nodeOf(bootstrap: Obj): Obj {
  return { ...((bootstrap.node ?? {}) as Obj), user_agent_name: 'strait' };
}
