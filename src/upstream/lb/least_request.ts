import type { Host } from '../host.js';
import { EdfScheduler } from './edf.js';
import type { LeastRequestConfig, LoadBalancer, Random } from './types.js';
import { fastRandom, random32, weightsEqual } from './util.js';
import { slowStartWeight, type SlowStartConfig } from './slow_start.js';
import { DEFAULT_LEAST_REQUEST } from './defaults.js';

export { DEFAULT_LEAST_REQUEST };

/**
 * Least request as Envoy does it.
 * - Equal weights: power of `choiceCount` choices — sample hosts uniformly, keep the one with
 *   the fewest active requests. Sampling avoids the herd a global minimum causes when many
 *   proxies see the same counts.
 * - Unequal weights (or an explicit `active_request_bias`): an EDF schedule in which a host's
 *   weight is `weight / (active + 1)^bias`, taken when the host is queued — so busy hosts come
 *   round less often without ever being drained completely.
 */
export class LeastRequestLb implements LoadBalancer {
  private hosts: readonly Host[] = [];
  private weighted = false;
  private readonly edf = new EdfScheduler((i) => this.hostWeight(this.hosts[i]!));
  private readonly seed: number;
  private readonly choiceCount: number;
  private readonly bias: number;
  private readonly alwaysWeighted: boolean;

  constructor(
    config: Partial<LeastRequestConfig> | number = DEFAULT_LEAST_REQUEST,
    private readonly random: Random = fastRandom,
    /** With slow start, weights change with time, so the EDF schedule is used even for equal weights. */
    private readonly slowStart: SlowStartConfig | null = null,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    const c = typeof config === 'number' ? { choiceCount: config } : config;
    this.choiceCount = c.choiceCount ?? DEFAULT_LEAST_REQUEST.choiceCount;
    this.bias = c.activeRequestBias ?? DEFAULT_LEAST_REQUEST.activeRequestBias;
    this.alwaysWeighted = c.activeRequestBiasSet ?? false;
    this.seed = random32(random);
  }

  update(hosts: readonly Host[]): void {
    this.hosts = hosts;
    const n = hosts.length;
    this.weighted = n > 1 && (this.alwaysWeighted || this.slowStart !== null || !weightsEqual(hosts));
    if (this.weighted) this.edf.reset(n, this.seed);
  }

  pick(): Host | null {
    const hosts = this.hosts;
    const n = hosts.length;
    if (n === 0) return null;
    if (this.weighted) return hosts[this.edf.pick()]!;
    let best = hosts[Math.floor(this.random() * n)]!;
    for (let i = 1; i < this.choiceCount; i++) {
      const c = hosts[Math.floor(this.random() * n)]!;
      if (c.load < best.load) best = c;
    }
    return best;
  }

  private hostWeight(h: Host): number {
    const bias = this.bias;
    const w = this.slowStart ? slowStartWeight(h, this.slowStart, this.now()) : h.weight;
    if (bias === 1) return w / (h.load + 1);
    if (bias === 0) return w;
    return w / Math.pow(h.load + 1, bias);
  }
}
