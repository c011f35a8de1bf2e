import { describe, expect, it } from 'vitest';
import { LeastRequestLb } from '../../../src/upstream/lb/index.js';
import { host, hosts, seeded, tally } from './helpers.js';

describe('LEAST_REQUEST', () => {
  it('equal weights: two choices prefer the idle hosts', () => {
    const lb = new LeastRequestLb({ choiceCount: 2 }, seeded(21));
    const hs = hosts([1, 1, 1, 1]);
    hs[0]!.counters.rq_active = 5;
    hs[1]!.counters.rq_active = 5;
    lb.update(hs);
    const n = 40_000;
    const c = tally(() => lb.pick(), n);
    // A busy host wins only when both samples are busy: (2/4)² of picks, half each.
    expect(Math.abs(c.get(hs[0]!)! / n - 0.125)).toBeLessThan(0.015);
    expect(Math.abs(c.get(hs[2]!)! / n - 0.375)).toBeLessThan(0.015);
  });

  it('more choices come closer to the global minimum', () => {
    const hs = hosts([1, 1, 1, 1, 1, 1, 1, 1]);
    hs.forEach((h, i) => (h.counters.rq_active = i === 5 ? 0 : 3));
    const share = (choices: number) => {
      const lb = new LeastRequestLb({ choiceCount: choices }, seeded(22));
      lb.update(hs);
      return tally(() => lb.pick(), 20_000).get(hs[5]!)! / 20_000;
    };
    // P(idle host sampled at least once) = 1 - (7/8)^k.
    expect(Math.abs(share(2) - (1 - (7 / 8) ** 2))).toBeLessThan(0.02);
    expect(Math.abs(share(10) - (1 - (7 / 8) ** 10))).toBeLessThan(0.02);
  });

  it('unequal weights: weight / (active + 1) decides, through the EDF schedule', () => {
    const lb = new LeastRequestLb({}, seeded(23));
    const [a, b] = [host(1, 2), host(2, 1)];
    lb.update([a, b]);
    // Idle: plain weighted shares, 2:1.
    const idle = tally(() => lb.pick(), 3000);
    expect([idle.get(a), idle.get(b)]).toEqual([2000, 1000]);
    // a carries 3 requests: effective weights 2/4 vs 1/1, so b now gets twice a's share.
    a.counters.rq_active = 3;
    const busy = tally(() => lb.pick(), 3000);
    expect(Math.abs(busy.get(b)! / 3000 - 2 / 3)).toBeLessThan(0.01);
  });

  it('picks follow load as it changes: requests that never finish damp a heavy host', () => {
    const lb = new LeastRequestLb({}, seeded(24));
    const hs = hosts([3, 2, 1]);
    lb.update(hs);
    // Every pick opens a request that stays open. A host's next turn then comes (load+1)/weight
    // later, so after n picks it has used ~n²/2w of schedule time: counts grow as √weight, not
    // as weight as they would under round robin.
    for (let i = 0; i < 3000; i++) lb.pick()!.counters.rq_active++;
    const [a, b, c] = hs.map((h) => h.counters.rq_active);
    expect(a! / c!).toBeCloseTo(Math.sqrt(3), 1);
    expect(b! / c!).toBeCloseTo(Math.sqrt(2), 1);
  });

  it('active_request_bias 0 ignores load; a set bias weighs load even for equal weights', () => {
    const [a, b] = [host(1, 3), host(2, 1)];
    a.counters.rq_active = 100;
    const noBias = new LeastRequestLb({ activeRequestBias: 0, activeRequestBiasSet: true }, seeded(25));
    noBias.update([a, b]);
    const c0 = tally(() => noBias.pick(), 400);
    expect([c0.get(a), c0.get(b)]).toEqual([300, 100]);

    const [x, y] = [host(3), host(4)];
    x.counters.rq_active = 3; // effective weight 1/16 with bias 2, against 1
    const biased = new LeastRequestLb({ activeRequestBias: 2, activeRequestBiasSet: true }, seeded(26));
    biased.update([x, y]);
    const c2 = tally(() => biased.pick(), 1700);
    expect(c2.get(x)).toBe(100);
  });

  it('every balancer returns null for an empty host set and the only host for one', () => {
    const lb = new LeastRequestLb();
    lb.update([]);
    expect(lb.pick()).toBeNull();
    const only = host(1, 5);
    lb.update([only]);
    expect(lb.pick()).toBe(only);
  });
});
