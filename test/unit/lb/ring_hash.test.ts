import { describe, expect, it } from 'vitest';
import type { Host } from '../../../src/upstream/host.js';
import { LbContext, RingHashLb } from '../../../src/upstream/lb/index.js';
import { host, hosts, keys, seeded, tally } from './helpers.js';

const ctx = new LbContext();
const pickKey = (lb: RingHashLb, key: string) => lb.pick(ctx.reset().addString(key))!;
const owners = (lb: RingHashLb, ks: string[]) => ks.map((k) => pickKey(lb, k));

describe('RING_HASH', () => {
  it('sizes the ring as Envoy does: the lightest host gets a whole number of points', () => {
    const lb = new RingHashLb({}, false, seeded(1));
    lb.update(hosts([1, 1, 1]));
    // ceil(1024/3) = 342 points each.
    expect([lb.size, lb.minHashesPerHost, lb.maxHashesPerHost]).toEqual([1026, 342, 342]);
    lb.update(hosts([1, 2, 3]));
    // The weight-1 host needs ceil(1024/6) = 171 points; the others scale with it.
    expect([lb.size, lb.minHashesPerHost, lb.maxHashesPerHost]).toEqual([1026, 171, 513]);
    const capped = new RingHashLb({ minimumRingSize: 64, maximumRingSize: 40 }, false, seeded(1));
    capped.update(hosts([1, 1, 1, 1]));
    expect([capped.size, capped.minHashesPerHost, capped.maxHashesPerHost]).toEqual([40, 10, 10]);
  });

  it('the same key always reaches the same host, whatever the balancer instance', () => {
    const a = new RingHashLb({}, false, seeded(2));
    const b = new RingHashLb({}, false, seeded(3));
    const hs = hosts([1, 1, 1, 1, 1]);
    a.update(hs);
    b.update([...hs].reverse()); // listing order does not matter either
    const ks = keys(500);
    const first = owners(a, ks);
    expect(owners(a, ks)).toEqual(first);
    expect(owners(b, ks)).toEqual(first);
    expect(new Set(first).size).toBe(5);
  });

  it('spreads keys in proportion to weight', () => {
    const lb = new RingHashLb({ minimumRingSize: 8192 }, false, seeded(4));
    const hs = hosts([1, 2, 3, 4]);
    lb.update(hs);
    const n = 20_000;
    let i = 0;
    const c = tally(() => pickKey(lb, `k${i++}`), n);
    // Arc lengths vary around the point counts; 8192 points keep each share within ~2 %.
    hs.forEach((h, i) => expect(Math.abs(c.get(h)! / n - (i + 1) / 10)).toBeLessThan(0.025));
  });

  it('adding or removing one of N hosts moves about 1/N of the keys', () => {
    const lb = new RingHashLb({}, false, seeded(5));
    const hs = hosts([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    lb.update(hs);
    const ks = keys(10_000);
    const before = owners(lb, ks);
    const share = (after: Host[]) => after.filter((h, i) => h !== before[i]).length / ks.length;

    const extra = host(11);
    lb.update([...hs, extra]);
    const added = owners(lb, ks);
    // 1/11 ≈ 9 % are due to the new host. A few more move because each host's point count
    // follows N (ceil(1024/N): 103 → 94), as in Envoy.
    const toExtra = added.filter((h) => h === extra).length / ks.length;
    expect(toExtra).toBeGreaterThan(0.06);
    expect(toExtra).toBeLessThan(0.13);
    expect(share(added)).toBeLessThan(0.2);

    const gone = hs[3]!;
    lb.update(hs.filter((h) => h !== gone));
    const removed = owners(lb, ks);
    expect(removed).not.toContain(gone);
    expect(share(removed)).toBeLessThan(0.2);
  });

  it('with the points per host unchanged, keys move only to an added host and only from a removed one', () => {
    // ceil(45/9) = ceil(45/10) = ceil(45/11) = 5 points per host: the ring only gains or loses
    // one host's points, so this is the ring's guarantee in its pure form.
    const lb = new RingHashLb({ minimumRingSize: 45 }, false, seeded(5));
    const hs = hosts([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    lb.update(hs);
    const ks = keys(5000);
    const before = owners(lb, ks);

    const extra = host(11);
    lb.update([...hs, extra]);
    owners(lb, ks).forEach((h, i) => {
      if (h !== before[i]) expect(h).toBe(extra);
    });

    const gone = hs[3]!;
    lb.update(hs.filter((h) => h !== gone));
    owners(lb, ks).forEach((h, i) => {
      if (before[i] === gone) expect(h).not.toBe(gone);
      else expect(h).toBe(before[i]);
    });
  });

  it('without a hash it picks a random point, spreading by weight', () => {
    const lb = new RingHashLb({}, false, seeded(6));
    const hs = hosts([1, 3]);
    lb.update(hs);
    const n = 20_000;
    const c = tally(() => lb.pick(), n);
    expect(Math.abs(c.get(hs[1]!)! / n - 0.75)).toBeLessThan(0.03);
    const ctxNoHash = new LbContext();
    expect(hs).toContain(lb.pick(ctxNoHash));
  });

  it('MURMUR_HASH_2 builds a different ring with the same properties', () => {
    const xx = new RingHashLb({}, false, seeded(7));
    const mm = new RingHashLb({ hashFunction: 'MURMUR_HASH_2' }, false, seeded(7));
    const hs = hosts([1, 1, 1, 1]);
    xx.update(hs);
    mm.update(hs);
    const ks = keys(2000);
    const a = owners(xx, ks);
    const b = owners(mm, ks);
    expect(owners(mm, ks)).toEqual(b);
    expect(a.filter((h, i) => h !== b[i]).length).toBeGreaterThan(500);
    const c = new Map<Host, number>();
    for (const h of b) c.set(h, (c.get(h) ?? 0) + 1);
    for (const h of hs) expect(c.get(h)! / 2000).toBeGreaterThan(0.15);
  });

  it('places a host by envoy.lb hash_key metadata or by hostname when configured', () => {
    const ks = keys(2000);
    // The same logical endpoint at a new address keeps its keys when its hash_key is kept.
    const md = (k: string) => ({ filter_metadata: { 'envoy.lb': { hash_key: k } } });
    const a = new RingHashLb({}, false, seeded(8));
    a.update([host(1, 1, md('pod-a')), host(2, 1, md('pod-b')), host(3, 1, md('pod-c'))]);
    const b = new RingHashLb({}, false, seeded(8));
    b.update([host(7, 1, md('pod-a')), host(8, 1, md('pod-b')), host(9, 1, md('pod-c'))]);
    const key = (h: Host) => (h.metadata as ReturnType<typeof md>).filter_metadata['envoy.lb'].hash_key;
    expect(owners(b, ks).map(key)).toEqual(owners(a, ks).map(key));

    const byName = new RingHashLb({}, true, seeded(8));
    byName.update([host(4, 1, null, 'pod-a'), host(5, 1, null, 'pod-b'), host(6, 1, null, 'pod-c')]);
    const renamed = new RingHashLb({}, true, seeded(8));
    renamed.update([host(14, 1, null, 'pod-a'), host(15, 1, null, 'pod-b'), host(16, 1, null, 'pod-c')]);
    expect(owners(renamed, ks).map((h) => h.hostname)).toEqual(owners(byName, ks).map((h) => h.hostname));
  });

  it('places points where Envoy does: a key hashing just past a point goes to the next one', () => {
    // Envoy's ring for one host 10.0.0.1:80 with min size 3 has points XXH64("10.0.0.1:80_0..2").
    // Host 2's points are elsewhere; a key equal to one of host 1's points must land on host 1.
    const lb = new RingHashLb({ minimumRingSize: 4, maximumRingSize: 4 }, false, seeded(9));
    const [h1, h2] = [host(1), host(2)];
    lb.update([h1, h2]);
    const p = new LbContext();
    for (let i = 0; i < 2; i++) {
      p.reset().addString(`10.0.0.1:80_${i}`);
      expect(lb.pick(p)).toBe(h1);
      p.reset().addString(`10.0.0.2:80_${i}`);
      expect(lb.pick(p)).toBe(h2);
    }
  });

  it('a retry (attempt > 0) moves the key to another host, deterministically', () => {
    const lb = new RingHashLb({}, false, seeded(10));
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
    const lb = new RingHashLb();
    lb.update([]);
    expect(lb.pick(ctx.reset().addString('x'))).toBeNull();
    expect(lb.size).toBe(0);
  });
});
