import { Host } from '../../../src/upstream/host.js';

/** A host on 10.0.0.<i>:80 (distinct hash keys), with a weight. */
export function host(i: number, weight = 1, metadata: unknown = null, hostname = ''): Host {
  return new Host({ family: 'IPv4', address: `10.0.0.${i}`, port: 80 }, weight, 0, hostname, metadata);
}

export function hosts(weights: number[]): Host[] {
  return weights.map((w, i) => host(i + 1, w));
}

/** A seeded generator (mulberry32) so distribution checks are repeatable. Returns [0, 1). */
export function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Picks per host (by host object) over n picks. */
export function tally(pick: () => Host | null, n: number): Map<Host, number> {
  const m = new Map<Host, number>();
  for (let i = 0; i < n; i++) {
    const h = pick();
    if (!h) throw new Error('pick returned null');
    m.set(h, (m.get(h) ?? 0) + 1);
  }
  return m;
}

/** Keys "user-0".."user-(n-1)" as hashes, the way a route hash policy would produce them. */
export function keys(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `user-${i}`);
}
