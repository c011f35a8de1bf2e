import type { Scope, StatsOf } from '../observability/stats.js';
import { Cluster, loadClusterFeatures, type ClusterSpec, type Resolver } from './cluster.js';
import { CLUSTER_MANAGER_STATS } from './stats.js';

/** One cluster manager for every protocol: TCP, HTTP and RPC routes all resolve clusters here. */
export class ClusterManager {
  private readonly clusters = new Map<string, Cluster>();
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
      const c = new Cluster(spec, this.scope.scope('cluster').scope(spec.name, 'envoy_cluster_name'), this.resolver);
      this.clusters.set(spec.name, c);
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
   */
  async addOrUpdate(spec: ClusterSpec): Promise<Cluster> {
    this.stats.warming_clusters.value++;
    let c: Cluster;
    try {
      // A policy or feature no cluster used so far loads here, before anything is swapped.
      const loading = loadClusterFeatures(spec);
      if (loading) await loading;
      c = new Cluster(spec, this.scope.scope('cluster').scope(spec.name, 'envoy_cluster_name'), this.resolver);
      await c.initialize();
    } finally {
      this.stats.warming_clusters.value--;
    }
    const old = this.clusters.get(spec.name);
    this.clusters.set(spec.name, c);
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
    const c = this.clusters.get(name);
    if (!c) return false;
    this.clusters.delete(name);
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

  get(name: string): Cluster | undefined {
    const c = this.clusters.get(name);
    if (c === undefined && this.missHook !== null && name) this.missHook(name);
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
