import type { Scope, StatsOf } from '../observability/stats.js';
import { Cluster, type ClusterSpec, type Resolver } from './cluster.js';
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

  get(name: string): Cluster | undefined {
    return this.clusters.get(name);
  }

  all(): IterableIterator<Cluster> {
    return this.clusters.values();
  }

  close(): void {
    for (const c of this.clusters.values()) c.close();
  }
}
