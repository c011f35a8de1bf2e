import type { Host } from '../host.js';
import { EdfScheduler } from './edf.js';
import { fastRandom, random32, weightsEqual } from './util.js';
import type { LoadBalancer, Random } from './types.js';
import { slowStartWeight, type SlowStartConfig } from './slow_start.js';

/**
 * Round robin as Envoy does it: equal weights take a plain rotating index; unequal weights take
 * an EDF schedule (each host due again 1/weight after its pick), which honours the weights
 * exactly over every full cycle and interleaves hosts instead of sending bursts to one. Both
 * start at a random point so a fleet of sidecars does not visit hosts in lockstep.
 */
export class RoundRobinLb implements LoadBalancer {
  private hosts: readonly Host[] = [];
  private weighted = false;
  private next = 0;
  private readonly edf = new EdfScheduler((i) => this.hostWeight(this.hosts[i]!));
  /** Fixed for the balancer's life, as Envoy's seed: a membership change does not reshuffle. */
  private readonly seed: number;

  constructor(
    random: Random = fastRandom,
    /** With slow start, weights change with time, so the EDF schedule is used even for equal weights. */
    private readonly slowStart: SlowStartConfig | null = null,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.seed = random32(random);
  }

  private hostWeight(h: Host): number {
    return this.slowStart ? slowStartWeight(h, this.slowStart, this.now()) : h.weight;
  }

  update(hosts: readonly Host[]): void {
    this.hosts = hosts;
    const n = hosts.length;
    this.weighted = n > 1 && (this.slowStart !== null || !weightsEqual(hosts));
    if (this.weighted) this.edf.reset(n, this.seed);
    else this.next = n ? this.seed % n : 0;
  }

  pick(): Host | null {
    const hosts = this.hosts;
    const n = hosts.length;
    if (n === 0) return null;
    if (this.weighted) return hosts[this.edf.pick()]!;
    const h = hosts[this.next]!;
    this.next = this.next + 1 === n ? 0 : this.next + 1;
    return h;
  }
}
