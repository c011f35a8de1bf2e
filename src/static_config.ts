import { ConfigError, type FieldError } from './errors.js';
import type { FactoryContext } from './filters/network/types.js';
import type { ListenAddress } from './io/engine.js';
import { buildListenerSpec, listenAddress, type ListenerSpec } from './listener/listener_config.js';
import type { ClusterSpec } from './upstream/cluster.js';
import { parseSecrets } from './tls/context.js';
import { buildClusterSpec } from './upstream/cluster_config.js';
import { buildXdsBootstrap, type SourceCheckMode, type XdsBootstrap } from './xds/bootstrap.js';
import { RdsRouteTable } from './filters/network/http_connection_manager/rds_table.js';
import { durationMs } from './config/values.js';
import { buildStatsSettings, type StatsSettings } from './observability/stats_config.js';
import { buildStatsSinks, type StatsSinksSpec } from './observability/stats_sinks.js';

type Obj = Record<string, any>;

export interface AdminSpec {
  readonly address: ListenAddress;
}

/** Everything a Bootstrap turns into before anything binds: validated, frozen, complete. */
export interface StaticConfig {
  readonly listeners: readonly ListenerSpec[];
  readonly clusters: readonly ClusterSpec[];
  readonly admin: AdminSpec | null;
  readonly warnings: readonly FieldError[];
  /** `dynamic_resources` (and EDS clusters' sources): the ADS stream and the files to follow; null for static-only. */
  readonly dynamic?: XdsBootstrap | null;
  /** Route tables static listeners take over ADS (`rds.config_source.ads`), by route_config_name. */
  readonly staticRoutes?: ReadonlyMap<string, RdsRouteTable>;
  /** `stats_config`: the stats matcher, tag extraction and buckets; null when absent or a no-op. */
  readonly stats?: StatsSettings | null;
  /** `stats_sinks` Strait runs (statsd, DogStatsD) and `stats_flush_interval`; null without any. */
  readonly statsSinks?: StatsSinksSpec | null;
}

/** Bootstrap parts that would change behaviour and are not implemented yet: refused, not ignored. */
const UNSUPPORTED_BOOTSTRAP = ['hds_config', 'cluster_manager.load_stats_config'] as const;
/** Bootstrap parts that do not change traffic: accepted with a warning. */
const IGNORED_BOOTSTRAP = ['layered_runtime', 'tracing', 'overload_manager', 'watchdogs', 'bootstrap_extensions', 'fatal_actions', 'default_socket_interface', 'inline_headers'] as const;

function get(o: Obj, dotted: string): unknown {
  return dotted.split('.').reduce<any>((v, k) => (v == null ? undefined : v[k]), o);
}

/**
 * Semantic validation of a decoded Bootstrap (the proto-level checks already passed): every
 * reference resolves, names are unique, every filter and cluster type is one Strait runs.
 * Collects every problem, then throws one ConfigError.
 */
export function buildStaticConfig(
  bootstrap: Obj,
  source: string,
  inheritedWarnings: readonly FieldError[] = [],
  decodeErrors: readonly FieldError[] = [],
  /** `validate`: files that filesystem config sources name may be missing here (a warning). */
  sourceMode: SourceCheckMode = 'serve',
): StaticConfig {
  const errors: FieldError[] = [...decodeErrors];
  const warnings: FieldError[] = [...inheritedWarnings];

  for (const f of UNSUPPORTED_BOOTSTRAP) {
    if (get(bootstrap, f) !== undefined) errors.push({ path: f, message: 'is not supported yet (static_resources only)' });
  }
  for (const f of IGNORED_BOOTSTRAP) {
    if (bootstrap[f] !== undefined) warnings.push({ path: f, message: 'is not implemented; ignored' });
  }

  const stats = buildStatsSettings(bootstrap.stats_config, 'stats_config', errors);
  const statsSinks = buildStatsSinks(bootstrap, errors, warnings, durationMs);

  const sr = (bootstrap.static_resources ?? {}) as Obj;
  // Static SDS: transport sockets refer to these by name (tls_certificate_sds_secret_configs).
  const secrets = parseSecrets(sr.secrets, 'static_resources.secrets', errors, warnings);

  const clusters: ClusterSpec[] = [];
  const clusterIndex = new Map<string, number>();
  ((sr.clusters ?? []) as Obj[]).forEach((c, i) => {
    const path = `static_resources.clusters[${i}]`;
    const name = String(c.name ?? '');
    const prev = clusterIndex.get(name);
    if (name && prev !== undefined) {
      errors.push({ path: `${path}.name`, message: `duplicate cluster name "${name}" (also static_resources.clusters[${prev}])` });
      return;
    }
    if (name) clusterIndex.set(name, i);
    for (const f of ['upstream_connection_options'] as const) {
      const v = c[f];
      if (v !== undefined && !(Array.isArray(v) && v.length === 0)) warnings.push({ path: `${path}.${f}`, message: 'is not enforced yet; ignored' });
    }
    const spec = buildClusterSpec(c, path, errors, warnings, secrets);
    if (spec) clusters.push(spec);
  });

  // With ADS configured, a static listener's HCM may take its routes over it (RDS): the xDS side
  // subscribes to these names and fills the tables.
  const staticRoutes = new Map<string, RdsRouteTable>();
  const rds = bootstrap.dynamic_resources?.ads_config
    ? (name: string): RdsRouteTable => {
        let t = staticRoutes.get(name);
        if (!t) staticRoutes.set(name, (t = new RdsRouteTable(name)));
        return t;
      }
    : undefined;
  const ctx: FactoryContext = { clusterNames: new Set(clusterIndex.keys()), errors, warnings, secrets, rds };
  const listeners: ListenerSpec[] = [];
  const listenerIndex = new Map<string, number>();
  const addressIndex = new Map<string, number>();
  const given = new Set(((sr.listeners ?? []) as Obj[]).map((l) => String(l?.name ?? '')).filter(Boolean));
  ((sr.listeners ?? []) as Obj[]).forEach((l, i) => {
    const path = `static_resources.listeners[${i}]`;
    if (!l?.name) l = { ...l, name: generatedListenerName(l, i, given) };
    const name = String(l.name ?? '');
    const prev = listenerIndex.get(name);
    if (name && prev !== undefined) {
      errors.push({ path: `${path}.name`, message: `duplicate listener name "${name}" (also static_resources.listeners[${prev}])` });
      return;
    }
    if (name) listenerIndex.set(name, i);
    const spec = buildListenerSpec(l, path, ctx);
    if (!spec) return;
    const a = spec.address;
    // Port 0 asks the kernel for a fresh port each time, so only fixed addresses can clash.
    if (a.kind === 'unix' || a.port !== 0) {
      const key = a.kind === 'unix' ? `unix:${a.path}` : `${a.host}:${a.port}`;
      const other = addressIndex.get(key);
      if (other !== undefined) errors.push({ path: `${path}.address`, message: `address ${key} is already used by static_resources.listeners[${other}]` });
      addressIndex.set(key, i);
    }
    listeners.push(spec);
  });

  let admin: AdminSpec | null = null;
  if (bootstrap.admin?.address) {
    const address = listenAddress(bootstrap.admin.address, 'admin.address', errors);
    if (address) admin = { address };
  }

  // Static TLS contexts may take their secrets from a control plane (SDS over ADS or gRPC).
  const staticSds = [...clusters.map((c) => c.tls), ...listeners.flatMap((l) => [...l.chains.map((c) => c.tls), l.defaultChain?.tls])].flatMap((t) => t?.sds?.refs ?? []);
  const dynamic = buildXdsBootstrap(bootstrap, clusters, errors, warnings, sourceMode, staticSds);

  if (errors.length) throw new ConfigError(errors, source);
  return { listeners, clusters, admin, warnings, dynamic, staticRoutes, stats, statsSinks };
}

/**
 * A name for a static listener that has none. Envoy allows that (it picks a UUID; only LDS
 * listeners need a name). A random name would differ between hot-restart epochs, which hand
 * listeners over by name, so this one is derived from the address (as Envoy's listener stats
 * scope is, `0.0.0.0_10000`), with the index added only when a given name already has it.
 */
function generatedListenerName(l: Obj, i: number, given: Set<string>): string {
  const sa = l?.address?.socket_address as Obj | undefined;
  const pipe = l?.address?.pipe?.path as string | undefined;
  let name = sa ? `${sa.address ?? ''}_${sa.port_value ?? 0}` : pipe ? `pipe_${pipe}` : `listener_${i}`;
  if (given.has(name)) name = `${name}#${i}`;
  given.add(name);
  return name;
}
