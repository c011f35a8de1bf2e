import type { Host } from '../host.js';
import type { LoadBalancer, Random } from './types.js';
import { fastRandom, weightsEqual } from './util.js';

/**
 * Weighted random: a uniform draw over the cumulative weights, found by binary search; a plain
 * uniform index when weights are equal. (Envoy's RANDOM ignores weights; honouring them is what
 * someone who set `load_balancing_weight` asks for, and equal weights behave the same.)
 */
export class RandomLb implements LoadBalancer {
  private hosts: readonly Host[] = [];
  private cumulative = new Float64Array(0);
  private weighted = false;

  constructor(private readonly random: Random = fastRandom) {}

  update(hosts: readonly Host[]): void {
    this.hosts = hosts;
    this.weighted = !weightsEqual(hosts);
    this.cumulative = new Float64Array(hosts.length);
    let sum = 0;
    hosts.forEach((h, i) => {
      sum += h.weight;
      this.cumulative[i] = sum;
    });
  }

  pick(): Host | null {
    const n = this.hosts.length;
    if (n === 0) return null;
    if (!this.weighted) return this.hosts[Math.floor(this.random() * n)]!;
    const target = this.random() * this.cumulative[n - 1]!;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cumulative[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    return this.hosts[lo]!;
  }
}
