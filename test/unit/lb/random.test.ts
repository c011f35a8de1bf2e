import { describe, expect, it } from 'vitest';
import { RandomLb } from '../../../src/upstream/lb/index.js';
import { fastRandom } from '../../../src/upstream/lb/util.js';
import { hosts, seeded, tally } from './helpers.js';

describe('RANDOM', () => {
  it('honours weights within statistical tolerance', () => {
    const lb = new RandomLb(seeded(11));
    const hs = hosts([1, 3, 6]);
    lb.update(hs);
    const n = 100_000;
    const c = tally(() => lb.pick(), n);
    // σ of a share p over n draws is √(p(1-p)/n) ≤ 0.0016 here; 0.01 is over 6σ.
    [0.1, 0.3, 0.6].forEach((p, i) => expect(Math.abs(c.get(hs[i]!)! / n - p)).toBeLessThan(0.01));
  });

  it('equal weights: uniform', () => {
    const lb = new RandomLb(seeded(12));
    const hs = hosts([2, 2, 2, 2]);
    lb.update(hs);
    const c = tally(() => lb.pick(), 40_000);
    for (const h of hs) expect(Math.abs(c.get(h)! / 40_000 - 0.25)).toBeLessThan(0.015);
  });
});

describe('the default random source', () => {
  it('is uniform on [0, 1)', () => {
    const buckets = new Array<number>(16).fill(0);
    const n = 160_000;
    for (let i = 0; i < n; i++) {
      const r = fastRandom();
      expect(r >= 0 && r < 1).toBe(true);
      buckets[Math.floor(r * 16)]!++;
    }
    // χ² with 15 degrees of freedom: 60 is beyond the 1-in-a-million tail.
    const chi2 = buckets.reduce((s, c) => s + (c - n / 16) ** 2 / (n / 16), 0);
    expect(chi2).toBeLessThan(60);
  });

  it('balancers built without one still spread (RANDOM over 4 hosts)', () => {
    const lb = new RandomLb();
    const hs = hosts([1, 1, 1, 1]);
    lb.update(hs);
    const c = tally(() => lb.pick(), 40_000);
    for (const h of hs) expect(Math.abs(c.get(h)! / 40_000 - 0.25)).toBeLessThan(0.02);
  });
});
