import { describe, expect, it } from 'vitest';
import { StatsStore } from '../../../src/observability/stats.js';
import { Host, HealthFlag } from '../../../src/upstream/host.js';
import { createLoadBalancer } from '../../../src/upstream/lb/index.js';
import { LbContext } from '../../../src/upstream/lb/context.js';
import { RoundRobinLb } from '../../../src/upstream/lb/round_robin.js';
import { LeastRequestLb } from '../../../src/upstream/lb/least_request.js';
import { slowStartWeight } from '../../../src/upstream/lb/slow_start.js';
import { PrioritySet } from '../../../src/upstream/priority_set.js';
import { buildSubsetConfig } from '../../../src/upstream/subset/config.js';
import { MetadataMatch } from '../../../src/upstream/subset/metadata_match.js';
import { SubsetLb } from '../../../src/upstream/subset/subset_lb.js';
import type { FieldError } from '../../../src/errors.js';
import { seeded, tally } from '../lb/helpers.js';

let next = 1;
function h(priority = 0, lb: Record<string, unknown> | null = null, weight = 1): Host {
  return new Host({ family: 'IPv4', address: `10.1.0.${next++}`, port: 80 }, weight, priority, '', lb ? { filter_metadata: { 'envoy.lb': lb } } : null);
}

const fail = (x: Host) => x.setFlag(HealthFlag.FAILED_ACTIVE_HC, true);

describe('priorities (Envoy priority load, overprovisioning 1.4, panic 50%)', () => {
  const rr = () => createLoadBalancer('ROUND_ROBIN');

  it('keeps all traffic on priority 0 while it is ≥ 72% healthy, then spills the rest to priority 1', () => {
    const p0 = [h(0), h(0), h(0), h(0), h(0)];
    const p1 = [h(1), h(1)];
    const set = new PrioritySet(rr);
    set.update([...p0, ...p1]);
    expect(set.loads()).toEqual([[100, 0], [0, 0]]);
    fail(p0[0]!); // 80% × 1.4 = 112 → still 100
    set.update([...p0, ...p1]);
    expect(set.loads()).toEqual([[100, 0], [0, 0]]);
    fail(p0[1]!); // 60% × 1.4 = 84 → 84 / 16
    set.update([...p0, ...p1]);
    expect(set.loads()).toEqual([[84, 0], [16, 0]]);
    const t = tally(() => set.pick(), 1000);
    for (const x of [p0[0]!, p0[1]!]) expect(t.get(x)).toBeUndefined();
    const onP1 = (t.get(p1[0]!) ?? 0) + (t.get(p1[1]!) ?? 0);
    expect(onP1).toBeGreaterThan(100); // ~160 expected
    expect(onP1).toBeLessThan(230);
    for (const x of p0) fail(x);
    set.update([...p0, ...p1]);
    expect(set.loads()).toEqual([[0, 0], [100, 0]]);
    for (let i = 0; i < 20; i++) expect(p1).toContain(set.pick());
  });

  it('panics below the threshold: balances over every host of the priority, healthy or not', () => {
    const hosts = [h(), h(), h(), h()];
    const set = new PrioritySet(rr);
    fail(hosts[0]!);
    fail(hosts[1]!);
    fail(hosts[2]!); // 25% healthy < 50%
    set.update(hosts);
    const t = tally(() => set.pick(), 400);
    expect(t.size).toBe(4);
    expect(set.lastPickPanicked).toBe(true);
    const noPanic = new PrioritySet(rr, { overprovisioningFactor: 140, panicThreshold: 0 });
    noPanic.update(hosts);
    for (let i = 0; i < 20; i++) expect(noPanic.pick()).toBe(hosts[3]);
    for (const x of hosts) fail(x);
    noPanic.update(hosts);
    expect(noPanic.pick()).toBeNull();
  });

  it('sends degraded hosts only what healthy hosts cannot take', () => {
    const hosts = [h(), h(), h(), h()];
    hosts[0]!.setFlag(HealthFlag.DEGRADED_ACTIVE_HC, true);
    const set = new PrioritySet(rr);
    set.update(hosts);
    expect(set.loads()).toEqual([[100, 0]]); // 75% × 1.4 ≥ 100
    hosts[1]!.setFlag(HealthFlag.DEGRADED_ACTIVE_HC, true);
    hosts[2]!.setFlag(HealthFlag.DEGRADED_ACTIVE_HC, true);
    set.update(hosts);
    expect(set.loads()).toEqual([[35, 65]]);
  });

  it('a request with a hash chooses its priority from the hash, so repeated picks agree', () => {
    const p0 = [h(0), h(0), h(0), h(0), h(0)];
    const p1 = [h(1), h(1)];
    fail(p0[0]!);
    fail(p0[1]!);
    const set = new PrioritySet(() => createLoadBalancer('RING_HASH'));
    set.update([...p0, ...p1]);
    const ctx = new LbContext();
    for (let k = 0; k < 50; k++) {
      ctx.reset().addString(`user-${k}`);
      const first = set.pick(ctx);
      for (let i = 0; i < 5; i++) expect(set.pick(ctx)).toBe(first);
    }
  });
});

describe('subsets (lb_subset_config)', () => {
  function subsets(cfg: Record<string, unknown>) {
    const errors: FieldError[] = [];
    const c = buildSubsetConfig(cfg, 'lb_subset_config', errors);
    expect(errors).toEqual([]);
    const store = new StatsStore();
    const lb = new SubsetLb(c!, () => new PrioritySet(() => createLoadBalancer('ROUND_ROBIN')), store.root.scope('cluster').scope('c'));
    return { lb, stat: (n: string) => store.get(`cluster.c.${n}`)!.value };
  }
  const v1a = h(0, { version: 'v1', stage: 'prod' });
  const v1b = h(0, { version: 'v1', stage: 'canary' });
  const v2 = h(0, { version: 'v2', stage: 'prod' });
  const bare = h(0, null);
  const all = [v1a, v1b, v2, bare];
  const ctx = (o: Record<string, unknown> | null) => {
    const c = new LbContext();
    c.metadataMatch = MetadataMatch.fromStruct(o);
    return c;
  };

  it('routes metadata_match version=v2 to the v2 hosts only, and counts the selection', () => {
    const { lb, stat } = subsets({ subset_selectors: [{ keys: ['version'] }, { keys: ['version', 'stage'] }] });
    lb.update(all);
    expect(stat('lb_subsets_active')).toBe(5); // v1, v2, v1/prod, v1/canary, v2/prod
    const c2 = ctx({ version: 'v2' });
    for (let i = 0; i < 10; i++) expect(lb.pick(c2)).toBe(v2);
    const c1 = ctx({ version: 'v1' });
    expect(new Set(Array.from({ length: 10 }, () => lb.pick(c1)))).toEqual(new Set([v1a, v1b]));
    // Key order in the criteria does not matter.
    const canary = ctx({ stage: 'canary', version: 'v1' });
    for (let i = 0; i < 5; i++) expect(lb.pick(canary)).toBe(v1b);
    expect(stat('lb_subsets_selected')).toBe(25);
  });

  it('falls back per policy: NO_FALLBACK, ANY_ENDPOINT, DEFAULT_SUBSET, and a selector overriding it', () => {
    const none = subsets({ subset_selectors: [{ keys: ['version'] }] });
    none.lb.update(all);
    expect(none.lb.pick(ctx({ version: 'v3' }))).toBeNull();
    expect(none.lb.pick(ctx(null))).toBeNull(); // Envoy: no criteria also takes the fallback
    expect(none.stat('lb_subsets_fallback')).toBe(2);

    const any = subsets({ subset_selectors: [{ keys: ['version'] }], fallback_policy: 'ANY_ENDPOINT' });
    any.lb.update(all);
    expect(new Set(Array.from({ length: 20 }, () => any.lb.pick(ctx({ version: 'v3' }))))).toEqual(new Set(all));

    const dflt = subsets({ subset_selectors: [{ keys: ['version'] }], fallback_policy: 'DEFAULT_SUBSET', default_subset: { version: 'v1' } });
    dflt.lb.update(all);
    expect(new Set(Array.from({ length: 20 }, () => dflt.lb.pick(ctx({ version: 'v3' }))))).toEqual(new Set([v1a, v1b]));
    // Criteria whose keys match no selector use the cluster's policy too.
    expect([v1a, v1b]).toContain(dflt.lb.pick(ctx({ zone: 'a' })));

    const sel = subsets({ subset_selectors: [{ keys: ['version'], fallback_policy: 'NO_FALLBACK' }], fallback_policy: 'ANY_ENDPOINT' });
    sel.lb.update(all);
    expect(sel.lb.pick(ctx({ version: 'v3' }))).toBeNull();
    expect(all).toContain(sel.lb.pick(ctx({ zone: 'a' })));
  });

  it('balances only healthy hosts of a subset, and a subset whose hosts left is removed', () => {
    const a = h(0, { version: 'v9' });
    const b = h(0, { version: 'v9' });
    const { lb, stat } = subsets({ subset_selectors: [{ keys: ['version'] }] });
    lb.update([a, b]);
    fail(a);
    lb.update([a, b]);
    for (let i = 0; i < 10; i++) expect(lb.pick(ctx({ version: 'v9' }))).toBe(b);
    lb.update([]);
    expect(stat('lb_subsets_removed')).toBe(1);
    expect(stat('lb_subsets_active')).toBe(0);
  });

  it('tells apart "1", 1 and true as metadata values', () => {
    const s = h(0, { n: '1' });
    const n = h(0, { n: 1 });
    const { lb } = subsets({ subset_selectors: [{ keys: ['n'] }] });
    lb.update([s, n]);
    expect(lb.pick(ctx({ n: 1 }))).toBe(n);
    expect(lb.pick(ctx({ n: '1' }))).toBe(s);
    expect(lb.pick(ctx({ n: true }))).toBeNull();
  });

  it('merges weighted-cluster criteria over the route’s, the child winning', () => {
    const route = MetadataMatch.fromStruct({ version: 'v1', stage: 'prod' })!;
    const merged = route.mergedWith(MetadataMatch.fromStruct({ version: 'v2' }));
    expect(merged.key).toBe(MetadataMatch.fromStruct({ stage: 'prod', version: 'v2' })!.key);
  });

  it('refuses settings it does not implement, with paths', () => {
    const errors: FieldError[] = [];
    buildSubsetConfig({ subset_selectors: [{ keys: [] }, { keys: ['a'], fallback_policy: 'KEYS_SUBSET' }], fallback_policy: 'ANY_ENDPOINT', list_as_any: true }, 'l', errors);
    expect(errors.map((e) => e.path)).toEqual(['l.list_as_any', 'l.subset_selectors[0].keys', 'l.subset_selectors[1].fallback_policy']);
  });
});

describe('slow start (slow_start_config)', () => {
  const cfg = { windowMs: 10_000, aggression: 1, minWeight: 0.1 };

  it('scales a new host’s weight by time in the window, with the minimum weight and aggression', () => {
    const x = h(0, null, 10);
    x.slowStartFrom = 1000;
    expect(slowStartWeight(x, cfg, 1000)).toBeCloseTo(1); // t = 1 ms → tiny → floor at 10%
    expect(slowStartWeight(x, cfg, 6000)).toBeCloseTo(5);
    expect(slowStartWeight(x, { ...cfg, aggression: 2 }, 3500)).toBeCloseTo(10 * Math.sqrt(0.25));
    expect(slowStartWeight(x, cfg, 11_000)).toBe(10);
    x.slowStartFrom = 0; // never in slow start
    expect(slowStartWeight(x, cfg, 1)).toBe(10);
  });

  for (const [name, make] of [
    ['ROUND_ROBIN', (now: () => number) => new RoundRobinLb(seeded(1), cfg, now)],
    ['LEAST_REQUEST', (now: () => number) => new LeastRequestLb({ choiceCount: 2 }, seeded(1), cfg, now)],
  ] as const) {
    it(`${name}: a host in slow start gets a ramping share, then its full share`, () => {
      const clock = { t: 100_000 };
      const old = [h(), h(), h()];
      const fresh = h();
      fresh.slowStartFrom = clock.t;
      const lb = make(() => clock.t);
      const all = [...old, fresh];
      lb.update(all);
      const share = () => {
        lb.update(all); // rebuild so the shares at this instant are measured from a clean schedule
        return (tally(() => lb.pick(), 4000).get(fresh) ?? 0) / 4000;
      };
      clock.t += 1000; // 10% of the window: weight 0.1 vs 1,1,1 → ~3%
      const early = share();
      expect(early).toBeLessThan(0.06);
      clock.t += 4000; // 50% → 0.5 / 3.5 ≈ 14%
      const mid = share();
      expect(mid).toBeGreaterThan(0.1);
      expect(mid).toBeLessThan(0.18);
      clock.t += 6000; // past the window: equal share
      const late = share();
      expect(late).toBeGreaterThan(0.22);
      expect(late).toBeLessThan(0.28);
    });
  }
});
