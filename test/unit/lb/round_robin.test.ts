import { describe, expect, it } from 'vitest';
import { RoundRobinLb } from '../../../src/upstream/lb/index.js';
import { host, hosts, seeded, tally } from './helpers.js';

describe('ROUND_ROBIN', () => {
  it('equal weights: visits every host in turn', () => {
    const lb = new RoundRobinLb(seeded(1));
    const hs = hosts([1, 1, 1]);
    lb.update(hs);
    const seq = Array.from({ length: 9 }, () => hs.indexOf(lb.pick()!));
    // Whatever the random start, the order is the list order, rotated.
    const s = seq[0]!;
    expect(seq).toEqual(Array.from({ length: 9 }, (_, i) => (s + i) % 3));
  });

  it('unequal weights: every run of full cycles serves each host exactly its weight, from any start', () => {
    for (const w of [
      [1, 2, 3, 4],
      [3, 2, 1],
      [5, 1, 1, 2],
    ]) {
      const total = w.reduce((a, b) => a + b, 0);
      for (let seed = 0; seed < 200; seed++) {
        const hs = hosts(w);
        const lb = new RoundRobinLb(seeded(seed));
        lb.update(hs);
        for (let cycle = 0; cycle < 3; cycle++) {
          const c = tally(() => lb.pick(), total);
          expect(hs.map((h) => c.get(h) ?? 0), `weights ${w}, seed ${seed}`).toEqual(w);
        }
      }
    }
  });

  it('unequal weights interleave: 5:5:1 alternates the heavy hosts rather than bursting', () => {
    const lb = new RoundRobinLb(seeded(3));
    const hs = hosts([5, 5, 1]);
    lb.update(hs);
    const seq = Array.from({ length: 110 }, () => hs.indexOf(lb.pick()!));
    let longest = 0;
    let run = 0;
    seq.forEach((e, i) => {
      run = i > 0 && e === seq[i - 1] ? run + 1 : 1;
      longest = Math.max(longest, run);
    });
    expect(longest).toBeLessThanOrEqual(2);
  });

  it('starts at a random point, fixed per balancer, so a fleet does not move in lockstep', () => {
    const firsts = new Set<number>();
    for (let seed = 0; seed < 40; seed++) {
      const hs = hosts([1, 2, 3, 4]);
      const lb = new RoundRobinLb(seeded(seed));
      lb.update(hs);
      firsts.add(hs.indexOf(lb.pick()!));
    }
    expect(firsts.size).toBeGreaterThan(1);
    // Same seed, same sequence: the start depends on the seed alone.
    const a = new RoundRobinLb(seeded(7));
    const b = new RoundRobinLb(seeded(7));
    const hs = hosts([1, 2, 3, 4]);
    a.update(hs);
    b.update(hs);
    expect(Array.from({ length: 30 }, () => a.pick())).toEqual(Array.from({ length: 30 }, () => b.pick()));
  });

  it('follows membership changes', () => {
    const lb = new RoundRobinLb(seeded(4));
    const [a, b, c] = [host(1, 2), host(2, 1), host(3, 1)];
    lb.update([a, b]);
    const first = tally(() => lb.pick(), 300);
    expect([first.get(a), first.get(b)]).toEqual([200, 100]);
    lb.update([b, c]);
    const second = tally(() => lb.pick(), 300);
    expect([second.get(a), second.get(b), second.get(c)]).toEqual([undefined, 150, 150]);
    lb.update([]);
    expect(lb.pick()).toBeNull();
    lb.update([c]);
    expect(lb.pick()).toBe(c);
  });
});
