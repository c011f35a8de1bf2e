import type { Host } from '../host.js';
import { RandomLb } from './random.js';
import type { LoadBalancer, Random } from './types.js';

/**
 * Least request by power of `choiceCount` random choices, as Envoy does: sample hosts
 * (weighted) and keep the one with the lowest load per unit of weight. Sampling avoids the
 * herd that a global minimum causes when many proxies see the same counts.
 */
export class LeastRequestLb implements LoadBalancer {
  private hosts: readonly Host[] = [];
  private readonly sampler: RandomLb;

  constructor(
    private readonly choiceCount = 2,
    random: Random = Math.random,
  ) {
    this.sampler = new RandomLb(random);
  }

  update(hosts: readonly Host[]): void {
    this.hosts = hosts;
    this.sampler.update(hosts);
  }

  pick(): Host | null {
    if (this.hosts.length === 0) return null;
    let best = this.sampler.pick()!;
    for (let i = 1; i < this.choiceCount; i++) {
      const c = this.sampler.pick()!;
      // Compare load/weight without dividing: a.load * b.weight < b.load * a.weight.
      if ((c.load + 1) * best.weight < (best.load + 1) * c.weight) best = c;
    }
    return best;
  }
}
