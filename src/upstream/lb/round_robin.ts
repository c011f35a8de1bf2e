import type { Host } from '../host.js';
import type { LoadBalancer } from './types.js';

/**
 * Weighted round robin. Equal weights take a plain rotating index; unequal weights use the
 * smooth weighted scheme (each pick adds every weight to its host's credit, takes the highest,
 * and charges it the total), which interleaves hosts instead of sending bursts to one.
 */
export class RoundRobinLb implements LoadBalancer {
  private hosts: readonly Host[] = [];
  private credit = new Float64Array(0);
  private total = 0;
  private weighted = false;
  private next = 0;

  update(hosts: readonly Host[]): void {
    this.hosts = hosts;
    this.credit = new Float64Array(hosts.length);
    this.total = hosts.reduce((s, h) => s + h.weight, 0);
    this.weighted = hosts.some((h) => h.weight !== hosts[0]!.weight);
    // Start at a random offset so a fleet of sidecars does not hit the first host in lockstep.
    this.next = hosts.length ? Math.floor(Math.random() * hosts.length) : 0;
  }

  pick(): Host | null {
    const hosts = this.hosts;
    const n = hosts.length;
    if (n === 0) return null;
    if (!this.weighted) {
      const h = hosts[this.next]!;
      this.next = this.next + 1 === n ? 0 : this.next + 1;
      return h;
    }
    let best = 0;
    const credit = this.credit;
    for (let i = 0; i < n; i++) {
      credit[i]! += hosts[i]!.weight;
      if (credit[i]! > credit[best]!) best = i;
    }
    credit[best]! -= this.total;
    return hosts[best]!;
  }
}
