import type { Host } from '../host.js';
import type { LoadBalancer, Random } from './types.js';

/** Weighted random: a uniform draw over the cumulative weights, found by binary search. */
export class RandomLb implements LoadBalancer {
  private hosts: readonly Host[] = [];
  private cumulative = new Float64Array(0);

  constructor(private readonly random: Random = Math.random) {}

  update(hosts: readonly Host[]): void {
    this.hosts = hosts;
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
