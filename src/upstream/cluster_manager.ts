import type { Scope, StatsOf } from '../observability/stats.js';
import { Cluster, loadClusterFeatures, type ClusterSpec, type Resolver } from './cluster.js';
import { CLUSTER_MANAGER_STATS } from './stats.js';

/** One cluster manager for every protocol: TCP, HTTP and RPC routes all resolve clusters here. */
export class ClusterManager {
  private readonly clusters = new Map<string, Cluster>();
  /**
   * Per name with a warm-up in flight: the latest update or remove asked for, so a slower, older
   * warm-up cannot win. Dropped when the name's last warm-up ends.
   */
  private readonly warming = new Map<string, { latest: number; pending: number }>();
  private nextGen = 0;
  readonly stats: StatsOf<typeof CLUSTER_MANAGER_STATS>;

  /** `resolver` replaces the system resolver for STRICT_DNS clusters (embedding, tests). */
  constructor(
    private readonly scope: Scope,
    private readonly resolver?: Resolver,
  ) {
    this.stats = scope.scope('cluster_manager').table(CLUSTER_MANAGER_STATS);
  }

  /** Adds clusters and waits for their first membership (DNS), as Envoy's init manager does. */
  async addAll(specs: readonly ClusterSpec[]): Promise<void> {
    await Promise.all(specs.map(loadClusterFeatures));
    const added = specs.map((spec) => {
      const c = new Cluster(spec, this.scope.scope('cluster').scope(spec.statName ?? spec.name, 'envoy_cluster_name'), this.resolver);
      this.clusters.set(spec.name, c);
      this.lastName = null;
      this.stats.cluster_added.value++;
      return c;
    });
    this.stats.warming_clusters.value += added.length;
    await Promise.all(added.map((c) => c.initialize()));
    this.stats.warming_clusters.value -= added.length;
    this.stats.active_clusters.value = this.clusters.size;
  }

  /**
   * Adds or replaces one cluster (CDS). The new Cluster is initialized before it is swapped in,
   * so lookups never see a half-built one; requests already holding the old object finish on it,
   * and the old one's pools drain (idle connections close now, busy ones after their request).
   *
   * Updates of one name finish warming in any order (a health-checked or DNS cluster takes longer
   * than a static one): the last one asked for wins. One overtaken by a later update or a remove
   * is closed instead of swapped in, and null is returned.
   */
  async addOrUpdate(spec: ClusterSpec): Promise<Cluster | null> {
    const gen = ++this.nextGen;
    const w = this.warming.get(spec.name);
    if (w) {
      w.latest = gen;
      w.pending++;
    } else this.warming.set(spec.name, { latest: gen, pending: 1 });
    this.stats.warming_clusters.value++;
    let c: Cluster | null = null;
    let overtaken: boolean;
    try {
      // A policy or feature no cluster used so far loads here, before anything is swapped.
      const loading = loadClusterFeatures(spec);
      if (loading) await loading;
      c = new Cluster(spec, this.scope.scope('cluster').scope(spec.statName ?? spec.name, 'envoy_cluster_name'), this.resolver);
      await c.initialize();
    } catch (err) {
      c?.close();
      throw err;
    } finally {
      this.stats.warming_clusters.value--;
      const entry = this.warming.get(spec.name)!;
      overtaken = entry.latest !== gen;
      if (--entry.pending === 0) this.warming.delete(spec.name);
    }
    if (overtaken) {
      c.close();
      return null;
    }
    const old = this.clusters.get(spec.name);
    this.clusters.set(spec.name, c);
    this.lastName = null;
    if (old) {
      old.close();
      this.stats.cluster_modified.value++;
      this.stats.cluster_updated.value++;
    } else this.stats.cluster_added.value++;
    this.stats.active_clusters.value = this.clusters.size;
    return c;
  }

  /**
   * Removes a cluster (CDS): new lookups miss it, health checks stop, and its pooled connections
   * drain — idle ones close at once, busy ones when their last request completes.
   */
  remove(name: string): boolean {
    // A version of it still warming must not come back when it finishes.
    const w = this.warming.get(name);
    if (w) w.latest = ++this.nextGen;
    const c = this.clusters.get(name);
    if (!c) return false;
    this.clusters.delete(name);
    this.lastName = null;
    c.close();
    this.stats.cluster_removed.value++;
    this.stats.active_clusters.value = this.clusters.size;
    return true;
  }

  /**
   * Called when a lookup misses (xDS on-demand clusters subscribe the name); null when unused,
   * so the hit path pays one comparison at most.
   */
  missHook: ((name: string) => void) | null = null;

  /**
   * The name get() found last and its cluster: a route names the same cluster request after
   * request, and a Map lookup hashes the name each time (~150 instructions). Forgotten on every
   * change to the clusters.
   */
  private lastName: string | null = null;
  private lastCluster: Cluster | undefined = undefined;

  get(name: string): Cluster | undefined {
    if (name === this.lastName) return this.lastCluster;
    const c = this.clusters.get(name);
    if (c === undefined) {
      if (this.missHook !== null && name) this.missHook(name);
      return c;
    }
    this.lastName = name;
    this.lastCluster = c;
    return c;
  }

  /** Whether a cluster exists, without counting as a lookup (control-plane checks). */
  has(name: string): boolean {
    return this.clusters.has(name);
  }

  all(): IterableIterator<Cluster> {
    return this.clusters.values();
  }

  close(): void {
    for (const c of this.clusters.values()) c.close();
  }
}
