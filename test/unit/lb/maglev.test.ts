import { describe, expect, it } from 'vitest';
import type { Host } from '../../../src/upstream/host.js';
import { isPrime, LbContext, MaglevLb } from '../../../src/upstream/lb/index.js';
import { host, hosts, keys, seeded, tally } from './helpers.js';

const ctx = new LbContext();
const owners = (lb: MaglevLb, ks: string[]) => ks.map((k) => lb.pick(ctx.reset().addString(k))!);

describe('MAGLEV', () => {
  it('needs a prime table size', () => {
    expect([2, 3, 65537, 5000011].every(isPrime)).toBe(true);
    expect([0, 1, 4, 65536, 65535, 5000012].some(isPrime)).toBe(false);
    expect(() => new MaglevLb({ tableSize: 65536 })).toThrow(/prime/);
    expect(() => new MaglevLb({ tableSize: 7 })).not.toThrow();
  });

  it('fills the table in proportion to weight', () => {
    const lb = new MaglevLb({}, false, seeded(1));
    lb.update(hosts([1, 1, 1, 1]));
    // 65537 slots over 4 equal hosts: 16384 or 16385 each.
    expect([lb.minEntriesPerHost, lb.maxEntriesPerHost]).toEqual([16384, 16385]);
    lb.update(hosts([1, 2, 3, 4]));
    expect(lb.minEntriesPerHost / 65537).toBeCloseTo(0.1, 2);
    expect(lb.maxEntriesPerHost / 65537).toBeCloseTo(0.4, 2);
  });

  it('spreads keys in proportion to weight', () => {
    const lb = new MaglevLb({}, false, seeded(2));
    const hs = hosts([1, 2, 3, 4]);
    lb.update(hs);
    const n = 20_000;
    let i = 0;
    const c = tally(() => lb.pick(ctx.reset().addString(`k${i++}`)), n);
    hs.forEach((h, j) => expect(Math.abs(c.get(h)! / n - (j + 1) / 10)).toBeLessThan(0.02));
  });

  it('the same key always reaches the same host, whatever the listing order', () => {
    const hs = hosts([1, 1, 1, 1, 1]);
    const a = new MaglevLb({}, false, seeded(3));
    const b = new MaglevLb({}, false, seeded(4));
    a.update(hs);
    b.update([hs[3]!, hs[0]!, hs[4]!, hs[2]!, hs[1]!]);
    const ks = keys(1000);
    const first = owners(a, ks);
    expect(owners(a, ks)).toEqual(first);
    expect(owners(b, ks)).toEqual(first);
    expect(new Set(first).size).toBe(5);
  });

  it('minimal disruption: a host change moves about its share of keys and few others', () => {
    const lb = new MaglevLb({}, false, seeded(5));
    const hs = hosts([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    lb.update(hs);
    const ks = keys(10_000);
    const before = owners(lb, ks);

    const extra = host(11);
    lb.update([...hs, extra]);
    const added = owners(lb, ks);
    const toExtra = added.filter((h) => h === extra).length / ks.length;
    const reshuffled = added.filter((h, i) => h !== before[i] && h !== extra).length / ks.length;
    expect(toExtra).toBeGreaterThan(0.07); // 1/11 due
    expect(toExtra).toBeLessThan(0.12);
    expect(reshuffled).toBeLessThan(0.02);

    const gone = hs[6]!;
    lb.update(hs.filter((h) => h !== gone));
    const removed = owners(lb, ks);
    expect(removed).not.toContain(gone);
    const othersMoved = removed.filter((h, i) => before[i] !== gone && h !== before[i]).length / ks.length;
    expect(othersMoved).toBeLessThan(0.02);
  });

  it('a larger table disrupts less', () => {
    const moved = (tableSize: number) => {
      const lb = new MaglevLb({ tableSize }, false, seeded(6));
      const hs = hosts([1, 1, 1, 1, 1, 1, 1, 1]);
      lb.update(hs);
      const ks = keys(10_000);
      const before = owners(lb, ks);
      lb.update(hs.slice(1));
      return owners(lb, ks).filter((h, i) => before[i] !== hs[0] && h !== before[i]).length;
    };
    expect(moved(65537)).toBeLessThan(moved(251));
  });

  it('without a hash it picks a random slot, spreading by weight', () => {
    const lb = new MaglevLb({}, false, seeded(7));
    const hs = hosts([1, 3]);
    lb.update(hs);
    const c = tally(() => lb.pick(), 20_000);
    expect(Math.abs(c.get(hs[1]!)! / 20_000 - 0.75)).toBeLessThan(0.02);
  });

  it('keys off envoy.lb hash_key metadata, so a re-addressed endpoint keeps its keys', () => {
    const md = (k: string) => ({ filter_metadata: { 'envoy.lb': { hash_key: k } } });
    const key = (h: Host) => (h.metadata as ReturnType<typeof md>).filter_metadata['envoy.lb'].hash_key;
    const a = new MaglevLb({}, false, seeded(8));
    a.update([host(1, 1, md('x')), host(2, 1, md('y')), host(3, 1, md('z'))]);
    const b = new MaglevLb({}, false, seeded(8));
    b.update([host(21, 1, md('x')), host(22, 1, md('y')), host(23, 1, md('z'))]);
    const ks = keys(1000);
    expect(owners(b, ks).map(key)).toEqual(owners(a, ks).map(key));
  });

  it('handles more hosts than a byte can index', () => {
    const lb = new MaglevLb({ tableSize: 10007 }, false, seeded(9));
    // 300 hosts: the table switches from 8-bit to 16-bit host indices.
    lb.update(hosts(new Array<number>(300).fill(1)));
    const seen = new Set(owners(lb, keys(20_000)));
    expect(seen.size).toBe(300);
    expect(lb.minEntriesPerHost).toBeGreaterThanOrEqual(33);
  });

  it('a retry (attempt > 0) moves the key to another host, deterministically', () => {
    const lb = new MaglevLb({}, false, seeded(10));
    const hs = hosts([1, 1, 1, 1, 1]);
    lb.update(hs);
    const c = new LbContext();
    let moved = 0;
    for (const k of keys(1000)) {
      const first = lb.pick(c.reset().addString(k));
      c.attempt = 1;
      const retry = lb.pick(c);
      expect(lb.pick(c)).toBe(retry);
      if (retry !== first) moved++;
    }
    // A neighbour can belong to the same host (about 1 time in 5 here), never most of the time.
    expect(moved).toBeGreaterThan(600);
  });

  it('returns null when empty', () => {
    const lb = new MaglevLb();
    lb.update([]);
    expect(lb.pick(ctx.reset().addString('x'))).toBeNull();
  });
});
