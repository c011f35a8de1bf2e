import { createHash } from 'node:crypto';
import type { FieldError } from '../../errors.js';
import type { FactoryContext } from '../../filters/network/types.js';
import { buildListenerSpec, type ListenerSpec } from '../../listener/listener_config.js';
import type { ListenerManager } from '../../listener/listener_manager.js';
import { log } from '../../log.js';
import type { ClusterSpec } from '../../upstream/cluster.js';
import { buildClusterSpec } from '../../upstream/cluster_config.js';
import type { ClusterManager } from '../../upstream/cluster_manager.js';
import { edsSourceOf, ON_DEMAND_KEY, parseConfigSource, type ConfigSourceSpec, type FileSourceSpec, type SourceCheckMode, type XdsBootstrap } from '../bootstrap.js';
import { defineStats, type Scope, type StatsOf } from '../../observability/stats.js';
import { FileSubscription, type FileUpdateSink } from './file_subscription.js';
import { RdsRouteTable } from '../../filters/network/http_connection_manager/rds.js';
import { HttpRouteTable } from '../../router/http_route_table.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, shortType, type AnyMsg } from '../proto.js';
import { decodeAny } from '../resources.js';
import { SECRET_TYPE } from '../proto.js';
import type { SdsRef, SdsSource, TlsContextSpec } from '../../tls/context.js';
import { sdsKey, secretStore } from '../../tls/sds.js';
import { applySecrets, GrpcSdsSources } from './sds_sources.js';
import { AdsClient, type AdsHandler, type ReceivedResource, type ResourceUpdate, type UpdateResult } from './ads_client.js';
import { buildEndpoints } from './endpoints.js';
import { stripPrivateExtensions } from './extensions.js';
import { defaultSnapshotPath, encodeSnapshot, loadSnapshot, saveSnapshot, snapshotAny, type PersistedSnapshot } from './snapshot_store.js';

type Obj = Record<string, any>;

/** Caps on on-demand names from the admin API and from request misses (a bad header must not subscribe without end). */
const MAX_ON_DEMAND_NAMES = 1024;
const MAX_CLUSTER_NAME = 256;

/** What the dynamic configuration drives: the same managers static config fills. */
export interface DynamicHost {
  readonly clusters: ClusterManager;
  readonly listeners: ListenerManager;
  readonly drainTimeMs: number;
  readonly staticClusterNames: ReadonlySet<string>;
  readonly staticListenerNames: ReadonlySet<string>;
  /** Route tables static listeners take over ADS: subscribed for as long as the process runs. */
  readonly staticRoutes?: ReadonlyMap<string, RdsRouteTable>;
  /** The root scope: `listener_manager.lds.*` and `cluster_manager.cds.*` live under it. */
  readonly stats?: Scope;
}

/**
 * Envoy's subscription stats (`listener_manager.lds.*`, `cluster_manager.cds.*`), the same for
 * ADS and file sources. `version` is a hash of the last accepted version_info (Envoy's is
 * xxHash64; this one is the first 48 bits of SHA-256, which fits a JavaScript number).
 */
export const SUBSCRIPTION_STATS = defineStats({
  counters: ['update_attempt', 'update_success', 'update_rejected', 'update_failure'],
  gauges: ['version'],
});

const ADS_SOURCE: ConfigSourceSpec = { kind: 'ads' };

/** Where an EDS cluster's endpoints come from (validated when the cluster was built). */
export function edsSource(cluster: Obj): ConfigSourceSpec {
  const src = edsSourceOf(cluster);
  if (!src || src.ads !== undefined) return ADS_SOURCE;
  const pcs = src.path_config_source as Obj | undefined;
  const wd = pcs?.watched_directory?.path;
  return { kind: 'file', path: String(pcs ? pcs.path : src.path), watchDir: typeof wd === 'string' && wd ? wd : null };
}

function fileKey(s: FileSourceSpec): string {
  return `${s.path}\0${s.watchDir ?? ''}`;
}

function versionHash(v: string): number {
  return parseInt(createHash('sha256').update(v).digest('hex').slice(0, 12), 16);
}

interface Accepted<S> {
  readonly name: string;
  readonly version: string;
  readonly value: Obj;
  readonly any: AnyMsg;
  readonly spec: S;
  readonly lastUpdated: string;
}

type ClusterEntry = Accepted<ClusterSpec> & { readonly isStatic: boolean };
type ListenerEntry = Accepted<ListenerSpec> & { readonly clusters: readonly string[]; readonly routes: readonly string[]; readonly since: number };
type RouteEntry = Accepted<HttpRouteTable>;
type AssignmentEntry = Accepted<ReturnType<typeof buildEndpoints>>;

/**
 * Records the cluster names a filter's config refers to, and accepts them all: a listener from
 * a control plane may name a cluster that arrives later (or never). The filter then behaves as
 * it does for a missing cluster at run time (tcp_proxy: no_route; HTTP: 503), never fails to load.
 */
class ReferencedClusters implements ReadonlySet<string> {
  private readonly seen = new Set<string>();
  has(name: string): boolean {
    this.seen.add(name);
    return true;
  }
  get size(): number {
    return this.seen.size;
  }
  forEach(cb: (value: string, key: string, set: ReadonlySet<string>) => void): void {
    this.seen.forEach((v) => cb(v, v, this));
  }
  entries(): SetIterator<[string, string]> {
    return this.seen.entries();
  }
  keys(): SetIterator<string> {
    return this.seen.keys();
  }
  values(): SetIterator<string> {
    return this.seen.values();
  }
  [Symbol.iterator](): SetIterator<string> {
    return this.seen.values();
  }
}

/** A CDS cluster (over ADS or from a file), checked as a static one is; `hasAds`: the bootstrap has ADS. */
export function buildDynamicCluster(c: Obj, hasAds: boolean, errors: FieldError[], warnings: FieldError[], mode: SourceCheckMode = 'serve'): ClusterSpec | null {
  // Same handling as static config: buildClusterSpec validates TLS (SDS references are
  // resolved when their secrets arrive; the cluster warms until then), health checks,
  // outlier detection and subsets; upstream_connection_options is advisory.
  for (const f of ['upstream_connection_options'] as const) {
    const v = c[f];
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) warnings.push({ path: f, message: 'is not enforced yet; ignored' });
  }
  if (c.type === 'EDS') {
    const src = edsSourceOf(c);
    const spec = src ? parseConfigSource(src, 'eds_cluster_config.eds_config', errors, warnings, mode) : ADS_SOURCE;
    if (spec?.kind === 'ads' && !hasAds) errors.push({ path: 'eds_cluster_config.eds_config', message: 'uses ads, but the bootstrap has no dynamic_resources.ads_config' });
  }
  const spec = buildClusterSpec(c, '', errors, warnings);
  if (spec && !hasAds) refuseSdsOverAds(spec.tls, errors);
  return spec;
}

/**
 * Without an ADS stream a secret whose sds_config says `ads` would never come, and its listener
 * or cluster would warm forever: refused instead, by the reference's field path.
 */
function refuseSdsOverAds(tls: TlsContextSpec | null | undefined, errors: FieldError[]): void {
  for (const r of tls?.sds?.refs ?? []) {
    if (r.source.kind === 'ads') errors.push({ path: `${r.field}.sds_config.ads`, message: 'SDS over ads, but the bootstrap has no dynamic_resources.ads_config' });
  }
}

/**
 * An LDS listener (over ADS or from a file): private extensions stripped, the clusters and route
 * configurations it names collected (it warms until they exist). `rds`: the table an HCM's rds
 * over ADS fills, undefined without ADS (the HCM then refuses rds over ads itself; a file source
 * still works).
 */
export function buildDynamicListener(
  raw: Obj,
  rds: ((name: string) => RdsRouteTable) | undefined,
  errors: FieldError[],
  warnings: FieldError[],
): { spec: ListenerSpec; clusters: string[]; routes: string[] } | null {
  const value = stripPrivateExtensions(raw, warnings);
  const referenced = new ReferencedClusters();
  const routes = new Set<string>();
  const named =
    rds &&
    ((name: string): RdsRouteTable => {
      routes.add(name);
      return rds(name);
    });
  const ctx: FactoryContext = { clusterNames: referenced, errors, warnings, rds: named };
  const spec = buildListenerSpec(value, '', ctx);
  if (spec && !rds) for (const chain of [...spec.chains, spec.defaultChain]) refuseSdsOverAds(chain?.tls, errors);
  if (!spec || errors.length) return null;
  return { spec, clusters: [...referenced], routes: [...routes] };
}

/** Field paths come back from the builders as `.a.b` when the resource is the root. */
export function resourceProblem(typeUrl: string, name: string, e: FieldError): string {
  const p = e.path.replace(/^\./, '');
  return `${shortType(typeUrl)} "${name}": ${p ? `${p}: ` : ''}${e.message}`;
}

function sameValue(a: Obj, b: Obj): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The xDS side of the server: receives LDS, RDS, CDS and EDS updates from the ADS client,
 * validates each resource with the same builders as static config, and applies them with Envoy's
 * warming rules — an EDS cluster is used only once its endpoints arrived, a listener only once the
 * clusters and route configurations it names exist (each up to initial_fetch_timeout). RDS
 * updates swap the shared route table in place; the listener itself is untouched. Keeps the last accepted
 * configuration on disk and serves it at start-up when the control plane cannot be reached.
 */
export class DynamicConfig implements AdsHandler, FileUpdateSink {
  private readonly clusters = new Map<string, ClusterEntry>();
  private readonly warmingClusters = new Map<string, ClusterEntry & { timer: NodeJS.Timeout | null }>();
  private readonly assignments = new Map<string, AssignmentEntry>();
  private readonly listeners = new Map<string, ListenerEntry>();
  private readonly warmingListeners = new Map<string, ListenerEntry & { timer: NodeJS.Timeout | null }>();
  /** Accepted RouteConfigurations by name. */
  private readonly routes = new Map<string, RouteEntry>();
  /** Clusters each accepted RouteConfiguration names (on-demand subscriptions follow them). */
  private readonly routeClusters = new Map<string, readonly string[]>();
  /** On-demand: clusters the app declared through the admin API. */
  private readonly declared = new Set<string>();
  /** On-demand: clusters a request looked up and missed (cluster_header routes, late names). */
  private readonly missed = new Set<string>();
  /** On-demand: route tables waiting for the clusters they add, by route_config_name. */
  private readonly warmingRoutes = new Map<string, { table: HttpRouteTable; clusters: readonly string[]; timer: NodeJS.Timeout | null }>();
  /** On-demand: the CDS names currently subscribed. */
  private wanted: ReadonlySet<string> = new Set();
  /** The live tables HCMs hold, by route_config_name; swapped in place when RDS updates them. */
  private readonly rdsTables = new Map<string, RdsRouteTable>();
  private readonly versionInfo = new Map<string, string>();
  /** Resources whose last update was refused, by type then name: Envoy's error_state in /config_dump. */
  private readonly failures = new Map<string, Map<string, { details: string; version: string; at: string; value: Obj }>>();
  private readonly received = new Set<string>();
  /** The ADS stream; null when every source is a file. */
  private readonly client: AdsClient | null;
  /** LDS and CDS from files, by type. */
  private readonly typeFiles = new Map<string, FileSubscription>();
  /** EDS from files, by file (several clusters may share one). */
  private readonly edsFiles = new Map<string, FileSubscription>();
  /** Updates are applied one at a time, whichever source they come from. */
  private applying: Promise<unknown> = Promise.resolve();
  private readonly subStats = new Map<string, StatsOf<typeof SUBSCRIPTION_STATS>>();
  private initDone: () => void = () => {};
  private readonly initPromise: Promise<void>;
  private initTimer: NodeJS.Timeout | null = null;
  private initialized = false;
  private saveTimer: NodeJS.Timeout | null = null;
  private everUpdated = false;
  private pendingSnapshot: PersistedSnapshot | null = null;
  /** Set while the configuration in use came from the persisted snapshot, not the control plane. */
  servingSnapshot: { file: string; savedAt: string } | null = null;
  connected = false;
  lastError = '';

  constructor(
    private readonly host: DynamicHost,
    private readonly boot: XdsBootstrap,
    readonly snapshotFile: string,
  ) {
    this.initPromise = new Promise((r) => (this.initDone = r));
    for (const [n, t] of host.staticRoutes ?? []) this.rdsTables.set(n, t);
    const nodeId = String(boot.node.id ?? '');
    // The snapshot stands in for an unreachable control plane; files are their own last good copy.
    if (boot.ads) {
      try {
        this.pendingSnapshot = loadSnapshot(snapshotFile, nodeId);
      } catch (err) {
        log.warn({ file: snapshotFile, err: (err as Error).message }, 'xds: persisted snapshot not usable; ignored');
      }
    }
    this.client = boot.ads ? new AdsClient({ target: boot.ads.target, delta: boot.ads.delta, node: boot.node, backoff: boot.backoff }, this) : null;
    if (host.stats) {
      // Envoy's scopes: the listener manager's LDS and the cluster manager's CDS subscriptions.
      if (boot.lds) this.subStats.set(LISTENER_TYPE, host.stats.scope('listener_manager').scope('lds').table(SUBSCRIPTION_STATS));
      if (boot.cds) this.subStats.set(CLUSTER_TYPE, host.stats.scope('cluster_manager').scope('cds').table(SUBSCRIPTION_STATS));
    }
    if (boot.onDemand) host.clusters.missHook = (name) => this.onMiss(name);
  }

  /** The ADS client, once per type: only types whose source is ADS are asked for on the stream. */
  private adsWatch(typeUrl: string, names: '*' | ReadonlySet<string>): void {
    this.client?.watch(typeUrl, names);
  }

  static snapshotPathFor(boot: XdsBootstrap, given: string | undefined): string {
    return given || defaultSnapshotPath(String(boot.node.id ?? ''));
  }

  /** Subscribes and connects; static EDS clusters start warming at once. */
  start(staticEds: readonly ClusterSpec[]): void {
    const now = new Date().toISOString();
    for (const spec of staticEds) {
      const e: ClusterEntry = { name: spec.name, version: '', value: spec.source as Obj, any: { type_url: CLUSTER_TYPE, value: new Uint8Array() }, spec, lastUpdated: now, isStatic: true };
      void this.applyCluster(e);
    }
    if (this.boot.cds?.kind === 'ads') this.adsWatch(CLUSTER_TYPE, this.boot.onDemand ? this.wantedClusters() : '*');
    if (this.boot.lds?.kind === 'ads') this.adsWatch(LISTENER_TYPE, '*');
    if (this.host.staticRoutes?.size) this.adsWatch(ROUTE_TYPE, new Set(this.host.staticRoutes.keys()));
    // Clusters first, so that the listeners that follow find them (the ADS push order).
    for (const [type, src] of [[CLUSTER_TYPE, this.boot.cds], [LISTENER_TYPE, this.boot.lds]] as const) {
      if (src?.kind !== 'file') continue;
      const sub = new FileSubscription(type, src, this);
      this.typeFiles.set(type, sub);
      log.info({ type: shortType(type), file: src.path, watchedDirectory: src.watchDir }, 'xds: following a file');
      void sub.start();
    }
    this.updateEdsWatch();
    if (this.boot.initialFetchTimeoutMs > 0) {
      this.initTimer = setTimeout(() => {
        // The control plane did not answer in time: go on with what there is (or the snapshot).
        if (!this.everUpdated && this.pendingSnapshot) void this.restoreSnapshot('no response within initial_fetch_timeout');
        this.finishInit('initial_fetch_timeout');
      }, this.boot.initialFetchTimeoutMs);
      this.initTimer.unref();
    }
    this.client?.start();
    this.checkInit();
  }

  /** Resolves once the first configuration is applied (or initial_fetch_timeout passed). */
  whenInitialized(): Promise<void> {
    return this.initPromise;
  }

  stop(): void {
    this.client?.stop();
    for (const f of [...this.typeFiles.values(), ...this.edsFiles.values()]) f.stop();
    this.sdsSources?.stop();
    if (this.initTimer) clearTimeout(this.initTimer);
    for (const w of this.warmingClusters.values()) if (w.timer) clearTimeout(w.timer);
    for (const w of this.warmingListeners.values()) if (w.timer) clearTimeout(w.timer);
    for (const n of [...this.warmingRoutes.keys()]) this.dropWarmingRoute(n);
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.save();
    }
  }

  // ---------------------------------------------------------------- AdsHandler

  onConnection(up: boolean, detail: string): void {
    this.connected = up;
    if (!up) {
      this.lastError = detail;
      // Envoy counts a stream failure as update_failure on each subscription it carries.
      for (const [type, st] of this.subStats) if (this.sourceOf(type)?.kind === 'ads') st.update_failure.value++;
      // First failure before any configuration: the snapshot is better than nothing.
      if (!this.everUpdated && this.pendingSnapshot) void this.restoreSnapshot(detail);
    }
  }

  /** An ADS response (or a restored snapshot type); applied in turn with file updates. */
  onUpdate(u: ResourceUpdate): Promise<UpdateResult> {
    return this.serially(() => this.apply(u, this.restoring ? 'snapshot' : 'ads'));
  }

  /** A file subscription's new version: applied exactly as an ADS response is. */
  applyFileUpdate(u: ResourceUpdate, _file: string): Promise<UpdateResult> {
    return this.serially(() => this.apply(u, 'file'));
  }

  /** A file that could not be read as a DiscoveryResponse: nothing changes; counted, reported. */
  fileUpdateFailed(typeUrl: string, file: string, problems: readonly FieldError[]): void {
    const st = this.subStats.get(typeUrl);
    if (st) {
      st.update_attempt.value++;
      st.update_failure.value++;
    }
    if (typeUrl === ENDPOINT_TYPE) {
      this.countEds((e) => {
        const src = edsSource(e.value);
        return src.kind === 'file' && src.path === file;
      }, 'update_failure');
    }
    for (const p of problems) log.error({ file, type: shortType(typeUrl), field: p.path || undefined }, `xds: file update failed; the previous configuration keeps serving: ${p.message}`);
    // Like Envoy, a failed first read still ends the wait for that source: start with nothing.
    if (typeUrl === LISTENER_TYPE || typeUrl === CLUSTER_TYPE) this.received.add(typeUrl);
    this.checkInit();
  }

  private serially<T>(f: () => Promise<T>): Promise<T> {
    const p = this.applying.then(f);
    this.applying = p.catch(() => undefined);
    return p;
  }

  /** The source of a type's resources (for EDS: of the given assignment). */
  private sourceOf(typeUrl: string): ConfigSourceSpec | null {
    if (typeUrl === LISTENER_TYPE) return this.boot.lds;
    if (typeUrl === CLUSTER_TYPE) return this.boot.cds;
    return this.client ? ADS_SOURCE : null;
  }

  private async apply(u: ResourceUpdate, origin: 'ads' | 'snapshot' | 'file'): Promise<UpdateResult> {
    const live = origin === 'ads';
    if (origin !== 'file' && this.sourceOf(u.typeUrl)?.kind === 'file') {
      // This type comes from a file here: what the control plane (or an old snapshot) sends is not used.
      log.debug({ type: u.typeUrl }, 'xds: ignoring an update of a type that is read from a file');
      return { problems: [], rejected: new Set() };
    }
    let result: UpdateResult;
    switch (u.typeUrl) {
      case CLUSTER_TYPE:
        result = await this.onClusters(u);
        break;
      case ENDPOINT_TYPE:
        result = await this.onAssignments(u);
        break;
      case LISTENER_TYPE:
        result = await this.onListeners(u);
        break;
      case ROUTE_TYPE:
        result = await this.onRoutes(u);
        break;
      case SECRET_TYPE:
        result = await this.onSecrets(u);
        break;
      default:
        // ADS may push types nobody asked for; accept and ignore them rather than NACK forever.
        log.debug({ type: u.typeUrl }, 'xds: ignoring an update of a type not subscribed');
        return { problems: [], rejected: new Set() };
    }
    this.received.add(u.typeUrl);
    // version_info is the last version accepted whole, as Envoy reports it.
    if (!result.problems.length && (u.typeUrl !== ENDPOINT_TYPE || origin !== 'file')) this.versionInfo.set(u.typeUrl, u.versionInfo);
    this.recordFailures(u, result);
    const st = origin === 'snapshot' ? undefined : this.subStats.get(u.typeUrl);
    if (st) {
      st.update_attempt.value++;
      if (u.decodeProblems.length || result.problems.length) st.update_rejected.value++;
      else {
        st.update_success.value++;
        st.version.value = versionHash(u.versionInfo);
      }
    }
    if (live) {
      this.everUpdated = true;
      this.pendingSnapshot = null;
      if (this.servingSnapshot) {
        log.info({ target: this.boot.ads?.target }, 'xds: control plane is back; the persisted snapshot is no longer in use');
        this.servingSnapshot = null;
      }
      this.scheduleSave();
    }
    this.checkInit();
    return result;
  }

  private recordFailures(u: ResourceUpdate, result: UpdateResult): void {
    let m = this.failures.get(u.typeUrl);
    if (!m) this.failures.set(u.typeUrl, (m = new Map()));
    const at = new Date().toISOString();
    const prefix = (name: string) => `${shortType(u.typeUrl)} "${name}": `;
    for (const r of u.resources) if (!result.rejected.has(r.name)) m.delete(r.name);
    for (const n of u.removed) m.delete(n);
    const values = new Map(u.resources.map((r) => [r.name, r.value]));
    for (const name of result.rejected) {
      const details = [...u.decodeProblems, ...result.problems].filter((p) => p.startsWith(prefix(name))).map((p) => p.slice(prefix(name).length));
      const value = values.get(name) ?? (u.typeUrl === ENDPOINT_TYPE ? { cluster_name: name } : { name });
      m.set(name, { details: details.join('\n') || 'rejected', version: u.versionInfo, at, value });
    }
  }

  private errorState(type: string, name: string): Obj | undefined {
    const f = this.failures.get(type)?.get(name);
    return f ? { failed_configuration: { '@type': type, ...f.value }, last_update_attempt: f.at, details: f.details, version_info: f.version } : undefined;
  }

  // ---------------------------------------------------------------- clusters

  private async onClusters(u: ResourceUpdate): Promise<UpdateResult> {
    const problems: string[] = [];
    const rejected = new Set<string>(u.rejected);
    const now = new Date().toISOString();
    const changed: ClusterEntry[] = [];
    for (const r of u.resources) {
      const errors: FieldError[] = [];
      const warnings: FieldError[] = [...r.warnings];
      if (this.host.staticClusterNames.has(r.name)) {
        errors.push({ path: 'name', message: `"${r.name}" is a static cluster; CDS cannot replace it` });
      }
      const spec = errors.length ? null : this.buildCluster(r.value, errors, warnings);
      if (!spec || errors.length) {
        problems.push(...errors.map((e) => resourceProblem(u.typeUrl, r.name, e)));
        rejected.add(r.name);
        continue;
      }
      const cur = this.clusters.get(r.name) ?? this.warmingClusters.get(r.name);
      if (cur && sameValue(cur.value, r.value)) continue; // same config under a new version: nothing to do
      for (const w of warnings) log.warn({ cluster: r.name, path: w.path }, w.message);
      changed.push({ name: r.name, version: r.version, value: r.value, any: r.any, spec, lastUpdated: now, isStatic: false });
    }
    for (const e of changed) {
      const err = await this.applyCluster(e);
      if (err) {
        problems.push(resourceProblem(u.typeUrl, e.name, { path: '', message: err }));
        rejected.add(e.name);
      }
    }
    const keep = new Set(u.resources.map((r) => r.name));
    for (const n of u.rejected) keep.add(n);
    const gone = u.full ? [...this.clusters.keys(), ...this.warmingClusters.keys()].filter((n) => !keep.has(n)) : [...u.removed];
    for (const n of gone) this.removeCluster(n);
    this.updateEdsWatch();
    await this.promoteListeners();
    return { problems, rejected };
  }

  private buildCluster(c: Obj, errors: FieldError[], warnings: FieldError[]): ClusterSpec | null {
    return buildDynamicCluster(c, this.client !== null, errors, warnings);
  }

  /**
   * Parks a cluster as warming (replacing an earlier parked version and its timer); after
   * initial_fetch_timeout, `onTimeout` runs unless a newer version took its place.
   */
  private parkCluster(e: ClusterEntry, onTimeout: (w: ClusterEntry & { timer: NodeJS.Timeout | null }) => void): void {
    const prev = this.warmingClusters.get(e.name);
    if (prev?.timer) clearTimeout(prev.timer);
    const w = { ...e, timer: null as NodeJS.Timeout | null };
    if (this.boot.initialFetchTimeoutMs > 0) {
      w.timer = setTimeout(() => {
        if (this.warmingClusters.get(e.name) === w) onTimeout(w);
      }, this.boot.initialFetchTimeoutMs);
      w.timer.unref();
    }
    this.warmingClusters.set(e.name, w);
  }

  /** Activates a cluster now, or parks it until its endpoints arrive (EDS). Returns an error text on failure. */
  private async applyCluster(e: ClusterEntry): Promise<string | null> {
    let spec = e.spec;
    if (!this.tlsReady(spec.tls) && !this.sdsTimedOut.has(e.name)) {
      // Warm until the secret comes; after initial_fetch_timeout the cluster starts anyway, as
      // in Envoy, and its TLS connections fail until the secret arrives.
      this.parkCluster(e, (w) => {
        log.warn({ cluster: e.name }, 'xds: TLS secrets still missing after initial_fetch_timeout; cluster starts, its connections fail until they come');
        this.sdsTimedOut.add(e.name);
        void this.applyCluster(w).then(() => this.promoteListeners());
      });
      return null;
    }
    if (spec.type === 'EDS') {
      const cla = this.assignments.get(spec.edsServiceName!);
      if (!cla) {
        // Envoy's rule: a cluster whose endpoints never come finishes warming empty after the timeout.
        this.parkCluster(e, (w) => {
          log.warn({ cluster: e.name, service: spec.edsServiceName }, 'xds: no endpoints within initial_fetch_timeout; cluster starts empty');
          void this.activateCluster(w, { ...spec, endpoints: [] }).then(() => this.promoteListeners());
        });
        return null;
      }
      spec = { ...spec, endpoints: cla.spec };
    }
    return this.activateCluster(e, spec);
  }

  private async activateCluster(e: ClusterEntry, spec: ClusterSpec): Promise<string | null> {
    const w = this.warmingClusters.get(e.name);
    try {
      // null: a later update or a remove of this name came while this one warmed; that one decides.
      if (!(await this.host.clusters.addOrUpdate(spec))) return null;
    } catch (err) {
      return `cannot start: ${(err as Error).message}`;
    }
    if (w?.timer) clearTimeout(w.timer);
    this.warmingClusters.delete(e.name);
    this.clusters.set(e.name, e);
    log.info({ cluster: e.name, type: spec.type, endpoints: spec.endpoints.length }, 'xds: cluster active');
    this.checkInit();
    return null;
  }

  private removeCluster(name: string): void {
    this.sdsTimedOut.delete(name);
    const w = this.warmingClusters.get(name);
    if (w?.isStatic || this.clusters.get(name)?.isStatic) return;
    if (w?.timer) clearTimeout(w.timer);
    this.warmingClusters.delete(name);
    if (this.clusters.delete(name)) {
      this.host.clusters.remove(name);
      log.info({ cluster: name }, 'xds: cluster removed');
    }
  }

  // ---------------------------------------------------------------- on-demand clusters

  /** What on-demand CDS asks for: clusters listeners and routes name, declared ones, missed lookups. */
  private wantedClusters(): Set<string> {
    const names = new Set<string>([...this.declared, ...this.missed]);
    for (const e of [...this.listeners.values(), ...this.warmingListeners.values()]) for (const n of e.clusters) names.add(n);
    for (const [route, clusters] of this.routeClusters) if (this.rdsTables.has(route)) for (const n of clusters) names.add(n);
    for (const w of this.warmingRoutes.values()) for (const n of w.clusters) names.add(n);
    for (const n of this.host.staticClusterNames) names.delete(n);
    return names;
  }

  /**
   * On demand: subscribes CDS to exactly the wanted names and drops held clusters nothing uses
   * any more (requests already holding one finish on it, as with a CDS removal).
   */
  private updateCdsWatch(): void {
    // A snapshot being restored names its clusters only once its routes are in: judge it whole.
    if (!this.boot.onDemand || this.restoring) return;
    const wanted = this.wantedClusters();
    this.wanted = wanted;
    this.adsWatch(CLUSTER_TYPE, wanted);
    let dropped = 0;
    for (const n of [...this.clusters.keys(), ...this.warmingClusters.keys()]) {
      if (wanted.has(n) || this.clusters.get(n)?.isStatic || this.warmingClusters.get(n)?.isStatic) continue;
      this.removeCluster(n);
      dropped++;
    }
    if (dropped) {
      log.info({ dropped, subscribed: wanted.size }, 'xds: on-demand clusters no longer used were dropped');
      this.updateEdsWatch();
      // Their endpoints go too: a mesh-sized sidecar must not keep what it stopped watching.
      const services = new Set<string>();
      for (const e of [...this.clusters.values(), ...this.warmingClusters.values()]) if (e.spec.type === 'EDS') services.add(e.spec.edsServiceName!);
      for (const n of [...this.assignments.keys()]) if (!services.has(n)) this.assignments.delete(n);
      // The persisted snapshot follows: it was rewritten only on the control plane's next update,
      // so a restart during an outage could bring a withdrawn cluster back.
      this.scheduleSave();
    }
  }

  /** A request looked up a cluster that is not here: subscribe it (this request already got its 503). */
  private onMiss(name: string): void {
    if (this.wanted.has(name) || this.host.staticClusterNames.has(name)) return;
    if (this.missed.size >= MAX_ON_DEMAND_NAMES || name.length > MAX_CLUSTER_NAME) {
      if (!this.missFull) log.warn({ cluster: name.slice(0, MAX_CLUSTER_NAME), limit: MAX_ON_DEMAND_NAMES }, 'xds: too many on-demand clusters learned from requests; not subscribing more');
      this.missFull = true;
      return;
    }
    this.missed.add(name);
    // Subscribe only: nothing is dropped from inside a request's cluster lookup.
    this.wanted = new Set([...this.wanted, name]);
    this.adsWatch(CLUSTER_TYPE, this.wanted);
    log.info({ cluster: name }, 'xds: on-demand cluster requested by traffic');
  }

  private missFull = false;

  /** Admin: clusters the app declares it calls (`remove`: it no longer does). Throws on bad input. */
  declareClusters(names: readonly string[], remove: boolean): void {
    if (!this.boot.onDemand) throw new Error(`on-demand clusters are off (set node.metadata.${ON_DEMAND_KEY}: true)`);
    if (!names.length) throw new Error('name: at least one cluster name is required');
    for (const n of names) {
      if (!n || n.length > MAX_CLUSTER_NAME) throw new Error(`name: "${n.slice(0, 64)}" is not a cluster name (1..${MAX_CLUSTER_NAME} characters)`);
      if (this.host.staticClusterNames.has(n)) throw new Error(`name: "${n}" is a static cluster`);
    }
    if (!remove && this.declared.size + names.length > MAX_ON_DEMAND_NAMES) throw new Error(`name: at most ${MAX_ON_DEMAND_NAMES} declared clusters`);
    for (const n of names) {
      if (remove) {
        this.declared.delete(n);
        this.missed.delete(n);
      } else this.declared.add(n);
    }
    this.updateCdsWatch();
  }

  /** Admin: what on-demand CDS holds and why. */
  onDemandStatus(): Obj {
    return {
      enabled: this.boot.onDemand,
      subscribed: [...this.wanted].sort().map((name) => ({ name, present: this.host.clusters.has(name) })),
      declared: [...this.declared].sort(),
      learned_from_requests: [...this.missed].sort(),
    };
  }

  /**
   * EDS asks for exactly the assignments the EDS clusters (active or warming) name: over ADS, or
   * from the files their eds_config names (one subscription per file, however many clusters).
   */
  private updateEdsWatch(): void {
    const names = new Set<string>();
    const files = new Map<string, FileSourceSpec>();
    for (const e of [...this.clusters.values(), ...this.warmingClusters.values()]) {
      if (e.spec.type !== 'EDS') continue;
      const src = edsSource(e.value);
      if (src.kind === 'file') files.set(fileKey(src), src);
      else names.add(e.spec.edsServiceName!);
    }
    this.adsWatch(ENDPOINT_TYPE, names);
    for (const [key, sub] of [...this.edsFiles]) {
      if (files.has(key)) continue;
      sub.stop();
      this.edsFiles.delete(key);
    }
    for (const [key, src] of files) {
      if (this.edsFiles.has(key)) continue;
      const sub = new FileSubscription(ENDPOINT_TYPE, src, this);
      this.edsFiles.set(key, sub);
      log.info({ type: shortType(ENDPOINT_TYPE), file: src.path, watchedDirectory: src.watchDir }, 'xds: following a file');
      // Not awaited: the first read is queued behind the update that is being applied now.
      void sub.start();
    }
    this.updateSdsWatch();
  }

  // ---------------------------------------------------------------- endpoints

  private async onAssignments(u: ResourceUpdate): Promise<UpdateResult> {
    const problems: string[] = [];
    const rejected = new Set<string>(u.rejected);
    const now = new Date().toISOString();
    const touched = new Set<string>();
    for (const r of u.resources) {
      const errors: FieldError[] = [];
      const warnings: FieldError[] = [...r.warnings];
      const endpoints = buildEndpoints(r.value, errors, warnings);
      if (errors.length) {
        problems.push(...errors.map((e) => resourceProblem(u.typeUrl, r.name, e)));
        rejected.add(r.name);
        continue;
      }
      for (const w of warnings) log.warn({ assignment: r.name, path: w.path }, w.message);
      this.assignments.set(r.name, { name: r.name, version: r.version, value: r.value, any: r.any, spec: endpoints, lastUpdated: now });
      touched.add(r.name);
    }
    for (const n of u.removed) {
      // A removed assignment leaves its clusters with no endpoints, as in Envoy.
      this.assignments.set(n, { name: n, version: '', value: { cluster_name: n }, any: { type_url: ENDPOINT_TYPE, value: new Uint8Array() }, spec: [], lastUpdated: now });
      touched.add(n);
    }
    for (const [name, w] of [...this.warmingClusters]) {
      if (w.spec.type === 'EDS' && touched.has(w.spec.edsServiceName!) && (this.tlsReady(w.spec.tls) || this.sdsTimedOut.has(name))) {
        const err = await this.activateCluster(w, { ...w.spec, endpoints: this.assignments.get(w.spec.edsServiceName!)!.spec });
        if (err) problems.push(resourceProblem(CLUSTER_TYPE, name, { path: '', message: err }));
      }
    }
    for (const e of this.clusters.values()) {
      if (e.spec.type !== 'EDS' || !touched.has(e.spec.edsServiceName!)) continue;
      this.host.clusters.get(e.name)?.setEndpoints(this.assignments.get(e.spec.edsServiceName!)!.spec);
    }
    for (const n of u.removed) this.assignments.delete(n);
    if (rejected.size) this.countEds((e) => rejected.has(e.spec.edsServiceName!), 'update_rejected');
    await this.promoteListeners();
    return { problems, rejected };
  }

  /**
   * Envoy keeps each EDS subscription's stats in its cluster's scope: an assignment refused, or
   * a file that could not be read, counts an attempt and its outcome on every active cluster it
   * feeds (a success is counted by Cluster.setEndpoints).
   */
  private countEds(feeds: (e: ClusterEntry) => boolean, outcome: 'update_rejected' | 'update_failure'): void {
    for (const e of this.clusters.values()) {
      if (e.spec.type !== 'EDS' || !feeds(e)) continue;
      const st = this.host.clusters.get(e.name)?.stats;
      if (!st) continue;
      st.update_attempt.value++;
      st[outcome].value++;
    }
  }

  // ---------------------------------------------------------------- secrets (SDS over ADS)

  /** Stand-alone SDS streams (api_config_source), opened on first use. */
  private sdsSources: GrpcSdsSources | null = null;
  /** Clusters that waited initial_fetch_timeout for their secrets and started without them. */
  private readonly sdsTimedOut = new Set<string>();

  /** Whether a TLS context has every control-plane secret it names (file secrets are read when it is built). */
  private tlsReady(tls: TlsContextSpec | null | undefined): boolean {
    return !tls?.sds || secretStore.remoteReady(tls.sds.refs);
  }

  private listenerSecretsReady(spec: ListenerSpec): boolean {
    return spec.chains.every((c) => this.tlsReady(c.tls)) && this.tlsReady(spec.defaultChain?.tls);
  }

  /** SDS asks for exactly the secrets the clusters and listeners (active or warming) name, on each source. */
  private updateSdsWatch(): void {
    const ads = new Set<string>();
    const grpc = new Map<string, { source: Extract<SdsSource, { kind: 'grpc' }>; names: Set<string> }>();
    const wanted = new Map<string, string>();
    const addRef = (r: SdsRef) => {
      const src = r.source;
      if (src.kind === 'file') return;
      wanted.set(sdsKey(r.name, src), r.name);
      if (src.kind === 'ads') ads.add(r.name);
      else {
        const id = `${src.cluster}|${src.delta}`;
        let g = grpc.get(id);
        if (!g) grpc.set(id, (g = { source: src, names: new Set() }));
        g.names.add(r.name);
      }
    };
    const add = (tls: TlsContextSpec | null | undefined) => {
      for (const r of tls?.sds?.refs ?? []) addRef(r);
    };
    // Static listeners' and clusters' secrets are asked for like the others, for as long as the process runs.
    for (const r of this.boot.staticSds ?? []) addRef(r);
    for (const e of [...this.clusters.values(), ...this.warmingClusters.values()]) add(e.spec.tls);
    for (const e of [...this.listeners.values(), ...this.warmingListeners.values()]) {
      for (const c of e.spec.chains) add(c.tls);
      add(e.spec.defaultChain?.tls);
    }
    secretStore.setWanted(wanted);
    this.adsWatch(SECRET_TYPE, ads);
    if (grpc.size || this.sdsSources) {
      this.sdsSources ??= new GrpcSdsSources(this.host.clusters, this.boot.node, this.boot.backoff, async () => {
        for (const p of await this.secretsArrived()) log.error(p);
      });
      this.sdsSources.sync(grpc);
    }
  }

  /**
   * A secret replaces the previous one only when usable (certificate and key parse and match);
   * the contexts using it rebuild on their own, so new handshakes get it and open connections
   * keep theirs. Resources that waited for it start.
   */
  private async onSecrets(u: ResourceUpdate): Promise<UpdateResult> {
    const r = applySecrets(u, { kind: 'ads' });
    const problems = [...r.problems];
    problems.push(...(await this.secretsArrived()));
    return { problems, rejected: r.rejected };
  }

  /** Clusters and listeners that waited for secrets start; returns problems of clusters that could not. */
  private async secretsArrived(): Promise<string[]> {
    const problems: string[] = [];
    for (const w of [...this.warmingClusters.values()]) {
      if (!w.spec.tls?.sds || !this.tlsReady(w.spec.tls)) continue;
      if (w.spec.type === 'EDS' && !this.assignments.has(w.spec.edsServiceName!)) continue;
      const err = await this.applyCluster(w);
      if (err) problems.push(resourceProblem(CLUSTER_TYPE, w.name, { path: '', message: err }));
    }
    await this.promoteListeners();
    this.checkInit();
    return problems;
  }

  // ---------------------------------------------------------------- listeners

  private buildListener(r: ReceivedResource, errors: FieldError[], warnings: FieldError[]): { spec: ListenerSpec; clusters: string[]; routes: string[] } | null {
    if (this.host.staticListenerNames.has(r.name)) {
      errors.push({ path: 'name', message: `"${r.name}" is a static listener; LDS cannot replace it` });
      return null;
    }
    const rds = (name: string): RdsRouteTable => {
      let t = this.rdsTables.get(name);
      if (!t) {
        t = new RdsRouteTable(name);
        const have = this.routes.get(name);
        if (have) t.current = have.spec;
        this.rdsTables.set(name, t);
      }
      return t;
    };
    return buildDynamicListener(r.value, this.client ? rds : undefined, errors, warnings);
  }

  private async onListeners(u: ResourceUpdate): Promise<UpdateResult> {
    const problems: string[] = [];
    const rejected = new Set<string>(u.rejected);
    const now = new Date().toISOString();
    for (const r of u.resources) {
      const errors: FieldError[] = [];
      const warnings: FieldError[] = [...r.warnings];
      const cur = this.listeners.get(r.name) ?? this.warmingListeners.get(r.name);
      if (cur && sameValue(cur.value, r.value)) continue;
      const built = this.buildListener(r, errors, warnings);
      // Warnings (skipped private filters…) are worth seeing even when the listener is refused.
      for (const w of warnings) log.warn({ listener: r.name, path: w.path.replace(/^\./, '') }, w.message);
      if (!built) {
        problems.push(...errors.map((e) => resourceProblem(u.typeUrl, r.name, e)));
        rejected.add(r.name);
        continue;
      }
      const missing = built.clusters.filter((n) => !this.host.clusters.has(n));
      if (missing.length) log.info({ listener: r.name, clusters: missing }, 'xds: listener names clusters not (yet) known');
      const e: ListenerEntry = { name: r.name, version: r.version, value: r.value, any: r.any, spec: built.spec, lastUpdated: now, clusters: built.clusters, routes: built.routes, since: Date.now() };
      const err = await this.applyListener(e);
      if (err) {
        problems.push(resourceProblem(u.typeUrl, r.name, { path: 'address', message: err }));
        rejected.add(r.name);
      }
    }
    const keep = new Set(u.resources.map((r) => r.name));
    for (const n of u.rejected) keep.add(n);
    const gone = u.full ? [...this.listeners.keys(), ...this.warmingListeners.keys()].filter((n) => !keep.has(n)) : [...u.removed];
    for (const n of gone) this.removeListener(n);
    this.updateRdsWatch();
    return { problems, rejected };
  }

  /** Envoy's rule: a listener warms until its clusters exist and its route configurations arrived. */
  private listenerReady(e: ListenerEntry): boolean {
    if (!this.listenerSecretsReady(e.spec)) return false;
    return e.clusters.every((n) => this.host.clusters.has(n)) && e.routes.every((n) => this.rdsTables.get(n)?.current);
  }

  // ---------------------------------------------------------------- routes

  /** RDS asks for exactly the route configurations the listeners (active or warming) name. */
  private updateRdsWatch(): void {
    const names = new Set<string>();
    for (const e of [...this.listeners.values(), ...this.warmingListeners.values()]) for (const n of e.routes) names.add(n);
    for (const n of this.host.staticRoutes?.keys() ?? []) names.add(n);
    for (const n of [...this.rdsTables.keys()]) if (!names.has(n)) this.rdsTables.delete(n);
    for (const n of [...this.routes.keys()]) if (!names.has(n)) this.routes.delete(n);
    for (const n of [...this.routeClusters.keys()]) if (!names.has(n)) this.routeClusters.delete(n);
    for (const n of [...this.warmingRoutes.keys()]) if (!names.has(n)) this.dropWarmingRoute(n);
    this.adsWatch(ROUTE_TYPE, names);
    this.updateSdsWatch();
    this.updateCdsWatch();
  }

  private async onRoutes(u: ResourceUpdate): Promise<UpdateResult> {
    const problems: string[] = [];
    const rejected = new Set<string>(u.rejected);
    const now = new Date().toISOString();
    for (const r of u.resources) {
      const errors: FieldError[] = [];
      const cur = this.routes.get(r.name);
      if (cur && sameValue(cur.value, r.value)) continue;
      // Clusters a route names are accepted whether or not they exist yet: a request routed to
      // a missing cluster gets the route's cluster_not_found_response_code (503), as in Envoy.
      const refs = new ReferencedClusters();
      const table = HttpRouteTable.compile(r.value, '', refs, errors);
      if (errors.length) {
        // The previous table (if any) keeps serving.
        problems.push(...errors.map((e) => resourceProblem(u.typeUrl, r.name, e)));
        rejected.add(r.name);
        continue;
      }
      for (const w of r.warnings) log.warn({ route: r.name, path: w.path }, w.message);
      this.routes.set(r.name, { name: r.name, version: r.version, value: r.value, any: r.any, spec: table, lastUpdated: now });
      const clusters = [...refs];
      const live = this.rdsTables.get(r.name);
      this.dropWarmingRoute(r.name);
      if (this.boot.onDemand && live && clusters.some((n) => !this.host.clusters.has(n) && !this.host.staticClusterNames.has(n))) {
        // On demand the clusters a new table adds are only now subscribed: the table in use
        // keeps serving until they arrive (bounded), so a route change does not answer 503s.
        this.warmRoute(r.name, table, clusters);
        continue;
      }
      this.routeClusters.set(r.name, clusters);
      if (live) live.current = table;
      log.info({ route: r.name, version: r.version }, 'xds: route configuration applied');
    }
    for (const n of u.removed) {
      // Envoy serves an empty table when a route configuration is removed: requests get 404.
      this.routes.delete(n);
      this.routeClusters.delete(n);
      this.dropWarmingRoute(n);
      const live = this.rdsTables.get(n);
      if (live?.current) live.current = HttpRouteTable.compile({ name: n }, '', new ReferencedClusters(), []);
    }
    this.updateCdsWatch();
    await this.promoteListeners();
    return { problems, rejected };
  }

  /** Holds `table` back until every cluster it names exists, or initial_fetch_timeout passes. */
  private warmRoute(name: string, table: HttpRouteTable, clusters: readonly string[]): void {
    const w = { table, clusters, timer: null as NodeJS.Timeout | null };
    if (this.boot.initialFetchTimeoutMs > 0) {
      w.timer = setTimeout(() => {
        if (this.warmingRoutes.get(name) !== w) return;
        log.warn({ route: name, clusters: clusters.filter((n) => !this.host.clusters.has(n)) }, 'xds: on-demand clusters still missing after initial_fetch_timeout; route configuration applied anyway');
        this.swapRoute(name);
        void this.promoteListeners();
      }, this.boot.initialFetchTimeoutMs);
      w.timer.unref();
    }
    this.warmingRoutes.set(name, w);
    log.info({ route: name, clusters: clusters.filter((n) => !this.host.clusters.has(n)) }, 'xds: route configuration warming until its on-demand clusters arrive');
  }

  private dropWarmingRoute(name: string): void {
    const w = this.warmingRoutes.get(name);
    if (w?.timer) clearTimeout(w.timer);
    this.warmingRoutes.delete(name);
  }

  /** Puts a warming route table in service; the clusters only the old table used can go. */
  private swapRoute(name: string): void {
    const w = this.warmingRoutes.get(name);
    if (!w) return;
    this.dropWarmingRoute(name);
    this.routeClusters.set(name, w.clusters);
    const live = this.rdsTables.get(name);
    if (live) live.current = w.table;
    log.info({ route: name }, 'xds: route configuration applied');
    this.updateCdsWatch();
  }

  private async applyListener(e: ListenerEntry): Promise<string | null> {
    const prev = this.warmingListeners.get(e.name);
    if (prev?.timer) clearTimeout(prev.timer);
    this.warmingListeners.delete(e.name);
    if (this.listenerReady(e)) return this.activateListener(e);
    const w = { ...e, timer: null as NodeJS.Timeout | null };
    if (this.boot.initialFetchTimeoutMs > 0) {
      // A cluster that never comes must not hold the listener back forever: after the timeout
      // it starts, and its filters treat the missing cluster as they would at run time.
      w.timer = setTimeout(() => {
        if (this.warmingListeners.get(e.name) !== w) return;
        // Missing clusters are survivable; a missing certificate is not: keep warming for it,
        // and look again later (the clusters may still be missing when the secret comes).
        if (!this.listenerSecretsReady(e.spec)) {
          w.timer?.refresh();
          return;
        }
        this.warmingListeners.delete(e.name);
        log.warn({ listener: e.name, clusters: e.clusters.filter((n) => !this.host.clusters.has(n)) }, 'xds: clusters still missing after initial_fetch_timeout; listener starts anyway');
        void this.activateListener(e).then((err) => err && log.error({ listener: e.name }, err));
      }, this.boot.initialFetchTimeoutMs);
      w.timer.unref();
    }
    this.warmingListeners.set(e.name, w);
    this.host.listeners.stats.total_listeners_warming.value = this.warmingListeners.size;
    return null;
  }

  private async activateListener(e: ListenerEntry): Promise<string | null> {
    try {
      await this.host.listeners.addOrUpdate(e.spec, this.host.drainTimeMs);
    } catch (err) {
      this.host.listeners.stats.total_listeners_warming.value = this.warmingListeners.size;
      return (err as Error).message;
    }
    this.listeners.set(e.name, e);
    this.host.listeners.stats.total_listeners_warming.value = this.warmingListeners.size;
    // The listener it replaced may have been the last user of some clusters.
    this.updateCdsWatch();
    const l = this.host.listeners.get(e.name);
    log.info({ listener: e.name, address: l?.address }, 'xds: listener active');
    this.checkInit();
    return null;
  }

  /** Warming listeners whose clusters now all exist start serving. */
  private async promoteListeners(): Promise<void> {
    for (const [name, w] of [...this.warmingRoutes]) if (w.clusters.every((n) => this.host.clusters.has(n) || this.host.staticClusterNames.has(n))) this.swapRoute(name);
    for (const w of [...this.warmingListeners.values()]) {
      if (!this.listenerReady(w)) continue;
      if (w.timer) clearTimeout(w.timer);
      this.warmingListeners.delete(w.name);
      const err = await this.activateListener(w);
      if (err) log.error({ listener: w.name }, err);
    }
    this.host.listeners.stats.total_listeners_warming.value = this.warmingListeners.size;
  }

  private removeListener(name: string): void {
    const w = this.warmingListeners.get(name);
    if (w?.timer) clearTimeout(w.timer);
    this.warmingListeners.delete(name);
    if (this.listeners.delete(name)) {
      this.host.listeners.remove(name, this.host.drainTimeMs);
      log.info({ listener: name, drainMs: this.host.drainTimeMs }, 'xds: listener removed; draining');
    }
    this.updateRdsWatch();
    this.host.listeners.stats.total_listeners_warming.value = this.warmingListeners.size;
  }

  // ---------------------------------------------------------------- start-up and persistence

  private checkInit(): void {
    // A snapshot being restored is judged once all of it is in (clusters alone are not ready).
    if (this.initialized || this.restoring) return;
    // On demand, CDS may have nothing to ask for; listeners still warm until their clusters come.
    const need = [...(this.boot.cds && !this.boot.onDemand ? [CLUSTER_TYPE] : []), ...(this.boot.lds ? [LISTENER_TYPE] : [])];
    const haveAll = need.every((t) => this.received.has(t)) || this.servingSnapshot !== null;
    // Static resources' SDS secrets count too: Envoy's start-up waits for them (or initial_fetch_timeout).
    const staticSecrets = secretStore.remoteReady(this.boot.staticSds ?? []);
    if (haveAll && staticSecrets && this.warmingClusters.size === 0 && this.warmingListeners.size === 0) this.finishInit('configuration received');
  }

  private finishInit(why: string): void {
    if (this.initialized) return;
    this.initialized = true;
    if (this.initTimer) clearTimeout(this.initTimer);
    log.info({ reason: why, clusters: this.clusters.size, listeners: this.listeners.size }, 'xds: initial configuration done');
    this.initDone();
  }

  private restoring = false;

  /** Applies the persisted snapshot through the normal update path, clusters first. */
  private async restoreSnapshot(reason: string): Promise<void> {
    const snap = this.pendingSnapshot;
    if (!snap || this.restoring) return;
    this.pendingSnapshot = null;
    this.restoring = true;
    log.warn({ file: this.snapshotFile, savedAt: snap.saved_at, reason }, 'xds: control plane unreachable; serving the persisted snapshot');
    this.servingSnapshot = { file: this.snapshotFile, savedAt: snap.saved_at };
    try {
      // Secrets first: TLS listeners and clusters warm until theirs are in.
      for (const type of [SECRET_TYPE, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE]) {
        const t = snap.types[type];
        if (!t) continue;
        const resources: ReceivedResource[] = [];
        for (const r of t.resources) {
          const any = snapshotAny(type, r.any);
          const d = decodeAny(any, type);
          if (d.value) resources.push({ name: r.name, version: r.version, value: d.value, any, warnings: d.warnings });
        }
        const res = await this.onUpdate({ typeUrl: type, resources, removed: [], full: false, versionInfo: t.version_info, rejected: [], decodeProblems: [] });
        if (res.problems.length) log.warn({ type: shortType(type), problems: res.problems }, 'xds: parts of the persisted snapshot were not applied');
        // A reconnect then tells the server what is held, so only changes come back (delta).
        this.client?.seed(type, t.version_info, new Map(resources.filter((r) => !res.rejected.has(r.name)).map((r) => [r.name, r.version])));
      }
    } finally {
      this.restoring = false;
    }
    this.updateCdsWatch();
    this.checkInit();
  }

  private scheduleSave(): void {
    if (this.saveTimer) return;
    // Coalesce bursts (CDS, then EDS, then LDS) into one write.
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.save();
    }, 100);
    this.saveTimer.unref();
  }

  private save(): void {
    const types = new Map<string, { versionInfo: string; resources: Array<{ name: string; version: string; any: AnyMsg }> }>();
    const pick = (type: string, entries: Iterable<Accepted<unknown>>) => {
      const resources = [...entries].filter((e) => e.any.value.length > 0).map((e) => ({ name: e.name, version: e.version, any: e.any }));
      types.set(type, { versionInfo: this.versionInfo.get(type) ?? '', resources });
    };
    // Only what came over ADS: a file is its own last good copy, and is read again at start.
    const fromFile = new Set<string>();
    for (const f of this.edsFiles.values()) for (const n of f.held()) fromFile.add(n);
    if (this.boot.cds?.kind !== 'file') pick(CLUSTER_TYPE, [...this.clusters.values(), ...this.warmingClusters.values()].filter((e) => !e.isStatic));
    pick(ENDPOINT_TYPE, [...this.assignments.values()].filter((e) => !fromFile.has(e.name)));
    if (this.boot.lds?.kind !== 'file') pick(LISTENER_TYPE, [...this.listeners.values(), ...this.warmingListeners.values()]);
    pick(ROUTE_TYPE, this.routes.values());
    // Secrets too (the file is 0600): without them a restart during an outage could not serve TLS.
    const secrets = secretStore.adsSecrets().flatMap((x) => (x.any ? [{ name: x.name, version: x.version, any: x.any }] : []));
    if (secrets.length) types.set(SECRET_TYPE, { versionInfo: this.versionInfo.get(SECRET_TYPE) ?? '', resources: secrets });
    try {
      saveSnapshot(this.snapshotFile, encodeSnapshot(String(this.boot.node.id ?? ''), types));
    } catch (err) {
      log.warn({ file: this.snapshotFile, err: (err as Error).message }, 'xds: cannot persist the snapshot');
    }
  }

  // ---------------------------------------------------------------- admin

  /** One line for /ready when the configuration is not live from the control plane. */
  readyDetail(): string | null {
    if (this.servingSnapshot) return `xds: serving the persisted snapshot ${this.servingSnapshot.file} (saved ${this.servingSnapshot.savedAt}); control plane ${this.boot.ads?.via} unreachable: ${this.lastError}`;
    if (this.boot.ads && !this.connected && this.lastError) return `xds: control plane ${this.boot.ads.via} unreachable: ${this.lastError}`;
    return null;
  }

  /** version_info for /config_dump; says where the configuration came from when not live. */
  private dumpVersion(type: string): string {
    const v = this.versionInfo.get(type) ?? '';
    return this.servingSnapshot ? `${v} (from persisted snapshot ${this.servingSnapshot.file}, saved ${this.servingSnapshot.savedAt}; control plane unreachable)` : v;
  }

  /** The dynamic parts of /config_dump, in Envoy's shapes. */
  dump(): { clusters: Obj; listeners: Obj; endpoints: Obj; routes: { dynamic_route_configs: Obj[] } } {
    const err = (type: string, name: string) => {
      const e = this.errorState(type, name);
      return e ? { error_state: e, client_status: 'NACKED' } : {};
    };
    const cluster = (e: ClusterEntry) => ({ version_info: e.version, cluster: { '@type': CLUSTER_TYPE, ...e.value }, last_updated: e.lastUpdated, ...err(CLUSTER_TYPE, e.name) });
    const listener = (e: ListenerEntry) => ({ version_info: e.version, listener: { '@type': LISTENER_TYPE, ...e.value }, last_updated: e.lastUpdated });
    const failedOnly = (type: string, has: (n: string) => boolean) => [...(this.failures.get(type)?.keys() ?? [])].filter((n) => !has(n));
    return {
      clusters: {
        version_info: this.dumpVersion(CLUSTER_TYPE),
        dynamic_active_clusters: [
          ...[...this.clusters.values()].filter((e) => !e.isStatic).map(cluster),
          // Never accepted: only the reason, as a NACKed entry without a cluster.
          ...failedOnly(CLUSTER_TYPE, (n) => this.clusters.has(n) || this.warmingClusters.has(n)).map((n) => err(CLUSTER_TYPE, n)),
        ],
        dynamic_warming_clusters: [...this.warmingClusters.values()].filter((e) => !e.isStatic).map(cluster),
      },
      listeners: {
        version_info: this.dumpVersion(LISTENER_TYPE),
        dynamic_listeners: [
          ...[...this.listeners.values()].map((e) => ({
            name: e.name,
            active_state: listener(e),
            ...(this.warmingListeners.has(e.name) ? { warming_state: listener(this.warmingListeners.get(e.name)!) } : {}),
            ...err(LISTENER_TYPE, e.name),
          })),
          ...[...this.warmingListeners.values()].filter((e) => !this.listeners.has(e.name)).map((e) => ({ name: e.name, warming_state: listener(e), ...err(LISTENER_TYPE, e.name) })),
          ...failedOnly(LISTENER_TYPE, (n) => this.listeners.has(n) || this.warmingListeners.has(n)).map((n) => ({ name: n, ...err(LISTENER_TYPE, n) })),
        ],
      },
      routes: {
        dynamic_route_configs: [
          ...[...this.routes.values()].map((e) => ({ version_info: e.version, route_config: { '@type': ROUTE_TYPE, ...e.value }, last_updated: e.lastUpdated, ...err(ROUTE_TYPE, e.name) })),
          ...failedOnly(ROUTE_TYPE, (n) => this.routes.has(n)).map((n) => err(ROUTE_TYPE, n)),
        ],
      },
      endpoints: {
        dynamic_endpoint_configs: [...this.assignments.values()].map((e) => ({ version_info: e.version, endpoint_config: { '@type': ENDPOINT_TYPE, ...e.value }, last_updated: e.lastUpdated })),
      },
    };
  }

  /** Whether a cluster came from CDS (for /clusters added_via_api). */
  isDynamicCluster(name: string): boolean {
    const e = this.clusters.get(name);
    return !!e && !e.isStatic;
  }
}
