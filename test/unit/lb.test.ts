import { describe, expect, it } from 'vitest';
import { Host } from '../../src/upstream/host.js';
import { LeastRequestLb, RandomLb, RoundRobinLb } from '../../src/upstream/lb/index.js';

const host = (port: number, weight = 1) => new Host({ family: 'IPv4', address: '127.0.0.1', port }, weight, 0, '', null);

function count(pick: () => Host | null, n: number): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const h = pick()!;
    m.set(h.address.port, (m.get(h.address.port) ?? 0) + 1);
  }
  return m;
}

/** A seeded generator (mulberry32) so distribution checks are repeatable. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('load balancers', () => {
  it('round robin: equal weights rotate, unequal weights interleave in proportion', () => {
    const rr = new RoundRobinLb();
    rr.update([host(1), host(2), host(3)]);
    expect([...count(() => rr.pick(), 300).values()]).toEqual([100, 100, 100]);
    rr.update([host(1, 5), host(2, 1)]);
    const seq = Array.from({ length: 12 }, () => rr.pick()!.address.port);
    expect(seq.filter((p) => p === 1)).toHaveLength(10);
    // Smooth: the light host is never starved for more than one full cycle.
    expect(seq.slice(0, 6)).toContain(2);
  });

  it('random honours weights', () => {
    const lb = new RandomLb(seeded(1));
    lb.update([host(1, 1), host(2, 3)]);
    const c = count(() => lb.pick(), 40_000);
    expect(c.get(2)! / 40_000).toBeCloseTo(0.75, 1);
  });

  it('least request prefers the least loaded of its samples', () => {
    const lb = new LeastRequestLb(2, seeded(2));
    const busy = host(1);
    const idle = host(2);
    busy.counters.rq_active = 10;
    lb.update([busy, idle]);
    const c = count(() => lb.pick(), 10_000);
    // busy wins only when both samples are busy: 1/4 of the time.
    expect(c.get(1)! / 10_000).toBeCloseTo(0.25, 1);
  });

  it('every balancer returns null for an empty host set', () => {
    for (const lb of [new RoundRobinLb(), new RandomLb(), new LeastRequestLb()]) {
      lb.update([]);
      expect(lb.pick()).toBeNull();
    }
  });
});
