import net from 'node:net';
import type { PeerAddress } from '../io/engine.js';
import { log } from '../log.js';
import type { Counter, Scope, StatsOf } from '../observability/stats.js';
import { Host } from './host.js';
import { OriginalDstHosts } from './original_dst.js';
import type { LbConfig } from './lb/types.js';
import type { LbContext } from './lb/context.js';
import { createLb, loadLbPolicy } from './lb/lazy.js';
import type { MaglevLb } from './lb/maglev.js';
import type { RingHashLb } from './lb/ring_hash.js';
import type { HealthChecker } from './health/checker.js';
import type { HealthCheckConfig } from './health/config.js';
import type { OutlierDetector } from './outlier/detector.js';
import type { OutlierConfig } from './outlier/config.js';
import { DEFAULT_PRIORITY_OPTIONS, PrioritySet, type PriorityOptions } from './priority_set.js';
import type { SubsetConfig } from './subset/config.js';
import type { SubsetLb } from './subset/subset_lb.js';
import { circuitBreakersOf, type CircuitBreakers } from './circuit_breakers.js';
import { CLUSTER_STATS, MAGLEV_LB_STATS, RING_HASH_LB_STATS } from './stats.js';
import type { TlsContextSpec } from '../tls/context.js';
import { TlsContextProvider } from '../tls/provider.js';
import { SSL_STATS } from '../tls/stats.js';
import type { UpstreamTls } from '../tls/upstream.js';

export type DnsLookupFamily = 'AUTO' | 'V4_ONLY' | 'V6_ONLY' | 'V4_PREFERRED' | 'ALL';

/** One configured endpoint before resolution. */
export interface EndpointSpec {
  readonly address: PeerAddress | { readonly family: 'dns'; readonly address: string; readonly port: number };
  readonly weight: number;
  readonly priority: number;
  readonly healthy: boolean;
  readonly hostname: string;
  readonly metadata: unknown;
}

/** A validated, frozen cluster definition: what config turns into before anything runs. */
export interface ClusterSpec {
  readonly name: string;
  /** `alt_stat_name`: the name in the cluster's stats (`cluster.<statName>.*`); the name when unset. */
  readonly statName?: string;
  readonly type: 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST';
  /** ORIGINAL_DST: `original_dst_lb_config.upstream_port_override` (0: keep the original port). */
  readonly originalDstPortOverride?: number;
  /** ORIGINAL_DST: `cleanup_interval`; a destination not picked for that long is dropped. */
  readonly originalDstCleanupMs?: number;
  /** EDS: the ClusterLoadAssignment name (eds_cluster_config.service_name, else the cluster name). */
  readonly edsServiceName?: string;
  readonly connectTimeoutMs: number;
  /** `lb_policy` and the settings of that policy. */
  readonly lb: LbConfig;
  readonly endpoints: readonly EndpointSpec[];
  readonly dnsLookupFamily: DnsLookupFamily;
  readonly dnsRefreshRateMs: number;
  readonly perConnectionBufferLimitBytes: number;
  /** The UpstreamTlsContext of `transport_socket`; absent or null = plaintext. */
  readonly tls?: TlsContextSpec | null;
  /** `health_checks[0]`; absent or null = no active health checking. */
  readonly healthCheck?: HealthCheckConfig | null;
  /** `outlier_detection`; absent or null = no passive health checking. */
  readonly outlier?: OutlierConfig | null;
  /** `lb_subset_config`; absent or null = one balancer over the whole cluster. */
  readonly subset?: SubsetConfig | null;
  /** Overprovisioning factor and panic threshold; Envoy's defaults when absent. */
  readonly priority?: PriorityOptions;
  /** The normalized config as given, for /config_dump. */
  readonly source: unknown;
}

export type Resolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

/**
 * Connection pools holding connections to a cluster's hosts (HTTP/1.1, HTTP/2, RPC). The cluster
 * tells them when hosts leave its membership, or when the whole cluster is replaced or removed,
 * so those connections drain instead of lingering until an idle timeout.
 */
export interface ClusterConnPools {
  /** Drain connections to `hosts`, or to every host of `cluster` when null (the cluster is retired). */
  drainHosts(cluster: Cluster, hosts: readonly Host[] | null): void;
}

// node:dns (and c-ares' binding) loaded by the first DNS cluster's first resolution, not by every
// proxy: a config of STATIC clusters never resolves a name.
const defaultResolver: Resolver = async (hostname) => (await import('node:dns')).promises.lookup(hostname, { all: true, verbatim: true });

function pickFamilies(addrs: Array<{ address: string; family: number }>, policy: DnsLookupFamily): string[] {
  const v4 = addrs.filter((a) => a.family === 4).map((a) => a.address);
  const v6 = addrs.filter((a) => a.family === 6).map((a) => a.address);
  switch (policy) {
    case 'V4_ONLY':
      return v4;
    case 'V6_ONLY':
      return v6;
    case 'V4_PREFERRED':
      return v4.length ? v4 : v6;
    case 'AUTO':
      // Envoy's AUTO prefers IPv6 and falls back to IPv4.
      return v6.length ? v6 : v4;
    case 'ALL':
      return [...v4, ...v6];
  }
}

/**
 * LOGICAL_DNS: the one endpoint's name stands for a single host, the first address the lookup
 * returns (after the family policy), as Envoy does for names that front many servers. null when
 * the lookup returned none of the wanted family.
 */
export function logicalDnsAddress(addrs: Array<{ address: string; family: number }>, policy: DnsLookupFamily): string | null {
  return pickFamilies(addrs, policy)[0] ?? null;
}

// The modules of optional cluster features, imported when a cluster first names the feature: a
// sidecar pays idle memory for every module it loads, and most clusters use none of these.
let healthModule: typeof import('./health/checker.js') | null = null;
let outlierModule: typeof import('./outlier/detector.js') | null = null;
let subsetModule: typeof import('./subset/subset_lb.js') | null = null;

/**
 * Loads what `spec` needs beyond a plain round-robin cluster (its LB policy, health checker,
 * outlier detector, subset balancer); null when all of it is loaded already, so the caller builds
 * the cluster in the same turn as before. The cluster manager awaits it before building a
 * Cluster: a CDS update naming a feature not used so far swaps in only a complete cluster.
 */
export function loadClusterFeatures(spec: ClusterSpec): Promise<unknown> | null {
  const pending: Array<Promise<unknown>> = [];
  const lb = loadLbPolicy(spec.lb.policy);
  if (lb) pending.push(lb);
  if (spec.healthCheck && !healthModule) pending.push(import('./health/checker.js').then((m) => (healthModule = m)));
  if (spec.outlier && !outlierModule) pending.push(import('./outlier/detector.js').then((m) => (outlierModule = m)));
  if (spec.subset && !subsetModule) pending.push(import('./subset/subset_lb.js').then((m) => (subsetModule = m)));
  return pending.length ? Promise.all(pending) : null;
}

function loaded<M>(m: M | null, what: string): M {
  // A path that builds a cluster without loadClusterFeatures: a bug, not a config error.
  if (!m) throw new Error(`${what} is used before its module was loaded (loadClusterFeatures)`);
  return m;
}

/** A running cluster: membership, load balancing and stats. Shared by every protocol. */
export class Cluster {
  readonly stats: StatsOf<typeof CLUSTER_STATS>;
  /** TLS to this cluster's hosts (UpstreamTlsContext); null = plaintext. */
  readonly tls: UpstreamTls | null = null;
  readonly breakers: CircuitBreakers;
  /** Requests and retries in flight, for the circuit breakers (request-level protocols). */
  rqActive = 0;
  retriesActive = 0;
  private hosts: Host[] = [];
  /** Priorities, health and panic over the whole cluster; null when subsets balance instead. */
  private readonly prioritySet: PrioritySet | null = null;
  private readonly subsetLb: SubsetLb | null = null;
  readonly healthChecker: HealthChecker | null = null;
  readonly outlierDetector: OutlierDetector | null = null;
  /** Hosts of the first membership are not "new" for slow start; later ones are. */
  private hasMembership = false;
  /** `lb_healthy_panic`: picks made over every host because too few were healthy. */
  private readonly lbHealthyPanic: Counter;
  private readonly ringHashStats: StatsOf<typeof RING_HASH_LB_STATS> | null = null;
  private readonly maglevStats: StatsOf<typeof MAGLEV_LB_STATS> | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private cleanupTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly originalDst: OriginalDstHosts | null;
  /** Pools with connections to this cluster's hosts; told to drain on host removal and close. */
  private readonly connPools = new Set<ClusterConnPools>();
  /** Hosts that left the membership: a connection opened to one late is not kept in a pool. */
  private readonly retiredHosts = new WeakSet<Host>();

  constructor(
    readonly spec: ClusterSpec,
    scope: Scope,
    private readonly resolver: Resolver = defaultResolver,
  ) {
    this.stats = scope.table(CLUSTER_STATS);
    if (spec.tls) {
      // `cluster.<name>.ssl.*`; the provider follows certificate rotation on disk.
      const ssl = scope.scope('ssl').table(SSL_STATS);
      const provider = new TlsContextProvider(spec.tls, ssl);
      provider.watch();
      this.tls = { provider, stats: ssl };
    }
    this.breakers = circuitBreakersOf(spec.source as Record<string, any> | undefined, scope);
    const options = spec.priority ?? DEFAULT_PRIORITY_OPTIONS;
    const makeSet = () => new PrioritySet(() => createLb(spec.lb), options);
    if (spec.subset) this.subsetLb = new (loaded(subsetModule, 'lb_subset_config').SubsetLb)(spec.subset, makeSet, scope);
    else this.prioritySet = makeSet();
    this.lbHealthyPanic = scope.counter('lb_healthy_panic');
    this.originalDst = spec.type === 'ORIGINAL_DST' ? new OriginalDstHosts(spec.originalDstPortOverride ?? 0) : null;
    if (this.originalDst) {
      // Destinations come and go with the app's traffic: forget those not used for an interval
      // and drain their pooled connections, or both would grow with every address ever seen.
      const od = this.originalDst;
      this.cleanupTimer = setInterval(() => this.drainGone(od.expire()), spec.originalDstCleanupMs ?? 5000);
      this.cleanupTimer.unref();
    }
    if (spec.lb.policy === 'RING_HASH') this.ringHashStats = scope.scope('ring_hash_lb').table(RING_HASH_LB_STATS);
    if (spec.lb.policy === 'MAGLEV') this.maglevStats = scope.scope('maglev_lb').table(MAGLEV_LB_STATS);
    if (spec.outlier && !this.originalDst) this.outlierDetector = new (loaded(outlierModule, 'outlier_detection').OutlierDetector)(spec.outlier, scope, () => this.rebuild());
    if (spec.healthCheck && !this.originalDst) {
      const stats = this.stats;
      this.healthChecker = new (loaded(healthModule, 'health_checks').HealthChecker)(spec.healthCheck, {
        name: spec.name,
        hadTraffic: () => stats.upstream_cx_total.value > 0 || stats.upstream_rq_total.value > 0,
        onHealthChange: () => this.rebuild(),
        onHealthCheckPass: (h) => this.outlierDetector?.healthCheckPassed(h),
      }, scope);
    }
  }

  get name(): string {
    return this.spec.name;
  }

  /** Registers pools to be drained with this cluster's hosts (once per pool set). */
  addConnPools(p: ClusterConnPools): void {
    if (this.closed) p.drainHosts(this, null);
    else this.connPools.add(p);
  }

  /** Forgets pools whose owner is gone (a retired rpc_proxy filter). */
  removeConnPools(p: ClusterConnPools): void {
    this.connPools.delete(p);
  }

  /** Whether connections to `host` must not be pooled: the host left, or the cluster is retired. */
  isRetired(host: Host): boolean {
    return this.closed || this.retiredHosts.has(host);
  }

  /** Every host, all priorities. */
  get allHosts(): readonly Host[] {
    return this.originalDst ? this.originalDst.all : this.hosts;
  }

  /** Resolves once the first membership is known (after the first DNS round for STRICT_DNS). */
  async initialize(): Promise<void> {
    if (this.originalDst) return; // hosts appear with connections (pickHost)
    await this.healthChecker?.prepare();
    this.outlierDetector?.start();
    // EDS clusters start from the endpoints they warmed with; later ones come through setEndpoints().
    // With health checks, warming waits for every host's first check, as Envoy's does.
    if (this.spec.type === 'STATIC' || this.spec.type === 'EDS') {
      await this.setHosts(
        this.spec.endpoints.map((e) => new Host(e.address as PeerAddress, e.weight, e.priority, e.hostname, e.metadata)),
        this.spec.endpoints.map((e) => e.healthy),
      );
      return;
    }
    await this.resolve();
    this.scheduleRefresh();
  }

  private scheduleRefresh(): void {
    if (this.closed) return;
    this.refreshTimer = setTimeout(() => {
      void this.resolve().finally(() => this.scheduleRefresh());
    }, this.spec.dnsRefreshRateMs);
    this.refreshTimer.unref();
  }

  private async resolve(): Promise<void> {
    this.stats.update_attempt.value++;
    const next: Host[] = [];
    const health: boolean[] = [];
    let failed = false;
    await Promise.all(
      this.spec.endpoints.map(async (e) => {
        if (e.address.family !== 'dns') {
          next.push(new Host(e.address, e.weight, e.priority, e.hostname, e.metadata));
          health.push(e.healthy);
          return;
        }
        try {
          const resolved = await this.resolver(e.address.address);
          let addrs: string[];
          if (this.spec.type === 'LOGICAL_DNS') {
            const first = logicalDnsAddress(resolved, this.spec.dnsLookupFamily);
            addrs = first === null ? [] : [first];
          } else addrs = pickFamilies(resolved, this.spec.dnsLookupFamily);
          for (const a of addrs) {
            next.push(
              new Host(
                { family: net.isIPv6(a) ? 'IPv6' : 'IPv4', address: a, port: e.address.port },
                e.weight,
                e.priority,
                e.address.address,
                e.metadata,
              ),
            );
            health.push(e.healthy);
          }
        } catch (err) {
          failed = true;
          log.warn({ cluster: this.name, host: e.address.address, err: (err as Error).message }, 'DNS resolution failed');
        }
      }),
    );
    if (this.closed) return;
    if (failed) {
      // Keep the last good membership on a failed lookup, as Envoy does.
      this.stats.update_failure.value++;
      if (this.hosts.length) return;
    } else this.stats.update_success.value++;
    if (next.length === 0) this.stats.update_empty.value++;
    // Reuse existing Host objects for unchanged addresses so counters and load survive refreshes.
    const byKey = new Map(this.hosts.map((h) => [`${h.label}/${h.priority}`, h]));
    const merged = next.map((h) => byKey.get(`${h.label}/${h.priority}`) ?? h);
    const changed = merged.length !== this.hosts.length || merged.some((h, i) => h !== this.hosts[i]);
    if (changed) await this.setHosts(merged, health);
  }

  /**
   * A new endpoint set from EDS. Hosts whose address and priority are unchanged are kept, so
   * their pooled connections, counters and in-flight load carry over; a changed weight or
   * metadata is applied to the kept host, as Envoy does, and the balancers and subsets are
   * rebuilt at once from the new values.
   */
  setEndpoints(endpoints: readonly EndpointSpec[]): void {
    this.stats.update_attempt.value++;
    this.stats.update_success.value++;
    if (endpoints.length === 0) this.stats.update_empty.value++;
    // The hostname stays part of the identity: it is what SNI and auto host rewrite use.
    const key = (h: Host) => `${h.label}/${h.priority}/${h.hostname}`;
    const byKey = new Map(this.hosts.map((h) => [key(h), h]));
    const next = endpoints.map((e) => {
      const h = new Host(e.address as PeerAddress, e.weight, e.priority, e.hostname, e.metadata);
      const kept = byKey.get(key(h));
      if (!kept) return h;
      // An endpoint listed twice in one update is two hosts, as before.
      byKey.delete(key(h));
      kept.weight = h.weight;
      kept.metadata = h.metadata;
      return kept;
    });
    void this.setHosts(next, endpoints.map((e) => e.healthy));
  }

  /** Resolves when new hosts have had their first health check (at once without health checks). */
  private setHosts(hosts: Host[], health: boolean[]): Promise<void> {
    hosts.forEach((h, i) => (h.healthy = health[i] ?? true));
    if (this.hasMembership && this.spec.lb.slowStart) {
      // Hosts joining a running cluster warm up; the first membership starts level.
      const old = new Set(this.hosts);
      const now = performance.now();
      for (const h of hosts) if (!old.has(h)) h.slowStartFrom = now;
    }
    this.hasMembership = true;
    const prev = this.hosts;
    this.hosts = hosts;
    if (prev.length) this.retire(prev, hosts);
    this.stats.membership_change.value++;
    this.stats.membership_total.value = hosts.length;
    this.outlierDetector?.setHosts(hosts);
    const firstChecks = this.healthChecker?.setHosts(hosts) ?? Promise.resolve();
    this.rebuild();
    return firstChecks;
  }

  /**
   * Health or membership changed: recompute priority loads and rebuild the balancers of the
   * healthy sets (control path; a pick never waits for this).
   */
  private rebuild(): void {
    const hosts = this.hosts;
    let healthy = 0;
    for (const h of hosts) if (h.healthy) healthy++;
    this.stats.membership_healthy.value = healthy;
    if (this.subsetLb) this.subsetLb.update(hosts);
    else this.prioritySet!.update(hosts);
    // The policy decides the balancer's class (its module may not be loaded to test instanceof).
    const lb = this.prioritySet?.primaryLb ?? null;
    if (this.ringHashStats && lb) {
      const ring = lb as RingHashLb;
      this.ringHashStats.size.value = ring.size;
      this.ringHashStats.min_hashes_per_host.value = ring.minHashesPerHost;
      this.ringHashStats.max_hashes_per_host.value = ring.maxHashesPerHost;
    }
    if (this.maglevStats && lb) {
      const maglev = lb as MaglevLb;
      this.maglevStats.min_entries_per_host.value = maglev.minEntriesPerHost;
      this.maglevStats.max_entries_per_host.value = maglev.maxEntriesPerHost;
    }
  }

  /**
   * The data-path entry point: one host for one connection or request, or null. `ctx` carries
   * the request's hash for RING_HASH and MAGLEV (reuse one object; see LbContext); without it
   * those pick at random.
   */
  pickHost(ctx?: LbContext | null, originalDst?: PeerAddress | null): Host | null {
    // ORIGINAL_DST: the host is where the connection was going (the listener restored it).
    if (this.originalDst) return this.originalDst.pick(originalDst);
    if (this.subsetLb) return this.subsetLb.pick(ctx);
    const ps = this.prioritySet!;
    const h = ps.pick(ctx);
    if (ps.lastPickPanicked) this.lbHealthyPanic.value++;
    return h;
  }

  /** Per-priority [healthy, degraded] load percentages (tests, debugging). */
  priorityLoads(): Array<[number, number]> {
    return this.prioritySet?.loads() ?? [];
  }

  /** Hosts of `prev` missing from `next` drain their pooled connections, as Envoy does per removed host. */
  private retire(prev: readonly Host[], next: readonly Host[]): void {
    const kept = new Set(next);
    this.drainGone(prev.filter((h) => !kept.has(h)));
  }

  private drainGone(gone: readonly Host[]): void {
    if (gone.length === 0) return;
    for (const h of gone) this.retiredHosts.add(h);
    for (const p of this.connPools) p.drainHosts(this, gone);
  }

  close(): void {
    const wasOpen = !this.closed;
    this.closed = true;
    if (wasOpen) {
      // Replaced or removed: idle connections close now, busy ones after their last request.
      const pools = [...this.connPools];
      this.connPools.clear();
      for (const p of pools) p.drainHosts(this, null);
    }
    this.healthChecker?.close();
    this.outlierDetector?.close();
    this.tls?.provider.close();
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (this.cleanupTimer) clearInterval(this.cleanupTimer);
  }
}
