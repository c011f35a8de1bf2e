import type { Host } from '../host.js';
import type { LbContext } from './context.js';
import { murmurHash2, xxHash64, type Hash64 } from './hash.js';
import type { LoadBalancer, Random, RingHashConfig } from './types.js';
import { fastRandom, hostHashKey } from './util.js';
import { DEFAULT_RING_HASH } from './defaults.js';

export { DEFAULT_RING_HASH };

const DIGIT_0 = 0x30;
const UNDERSCORE = 0x5f;

/**
 * Ketama-style consistent hashing, built as Envoy builds it so a key lands on the same host as
 * it would in Envoy: each host gets points `hash("<key>_<i>")` in proportion to its weight,
 * scaled so the lightest host has a whole number of points and the ring holds at least
 * `minimumRingSize` (at most `maximumRingSize`) of them. A request goes to the first point at
 * or after its hash, wrapping around. Adding or removing one of N hosts moves only ~1/N of keys.
 *
 * Points are 64-bit, kept as sorted parallel (hi, lo) arrays; a pick is a binary search.
 */
export class RingHashLb implements LoadBalancer {
  private hosts: readonly Host[] = [];
  private hi = new Uint32Array(0);
  private lo = new Uint32Array(0);
  private owner = new Uint32Array(0);
  private readonly config: RingHashConfig;
  /** Envoy's `ring_hash_lb.min_hashes_per_host` / `max_hashes_per_host`: how well weights are resolved. */
  minHashesPerHost = 0;
  maxHashesPerHost = 0;

  constructor(
    config: Partial<RingHashConfig> = {},
    private readonly useHostname = false,
    private readonly random: Random = fastRandom,
  ) {
    this.config = { ...DEFAULT_RING_HASH, ...config };
  }

  /** Points on the ring (Envoy's `ring_hash_lb.size` gauge). */
  get size(): number {
    return this.owner.length;
  }

  update(hosts: readonly Host[]): void {
    this.hosts = hosts;
    const n = hosts.length;
    if (n === 0) {
      this.hi = this.lo = this.owner = new Uint32Array(0);
      this.minHashesPerHost = this.maxHashesPerHost = 0;
      return;
    }
    let sum = 0;
    for (const h of hosts) sum += h.weight;
    let minW = Infinity;
    for (const h of hosts) minW = Math.min(minW, h.weight / sum);
    const { minimumRingSize, maximumRingSize, hashFunction } = this.config;
    // Scale so the lightest host gets a whole number of points, within the size limits.
    const scale = Math.min(Math.ceil(minW * minimumRingSize) / minW, maximumRingSize);
    // Rounding in the running totals below can add one point past ceil(scale), as in Envoy.
    const capacity = Math.ceil(scale) + 1;
    const hash = hashFunction === 'MURMUR_HASH_2' ? murmurHash2 : xxHash64;
    const hiAll = new Uint32Array(capacity);
    const loAll = new Uint32Array(capacity);
    const ownAll = new Uint32Array(capacity);
    const out: Hash64 = { hi: 0, lo: 0 };
    // Running totals rather than per-host rounding: fractional shares add up to the ring size.
    let current = 0;
    let target = 0;
    let k = 0;
    this.minHashesPerHost = Infinity;
    this.maxHashesPerHost = 0;
    for (let j = 0; j < n; j++) {
      const key = Buffer.from(hostHashKey(hosts[j]!, this.useHostname), 'utf8');
      const buf = Buffer.allocUnsafe(key.length + 21);
      key.copy(buf, 0);
      buf[key.length] = UNDERSCORE;
      target += scale * (hosts[j]!.weight / sum);
      const first = k;
      for (let i = 0; current < target && k < capacity; i++, current++, k++) {
        const len = writeDecimal(buf, key.length + 1, i);
        hash(buf, 0, len, out);
        hiAll[k] = out.hi;
        loAll[k] = out.lo;
        ownAll[k] = j;
      }
      const points = k - first;
      this.minHashesPerHost = Math.min(this.minHashesPerHost, points);
      this.maxHashesPerHost = Math.max(this.maxHashesPerHost, points);
    }
    const order = new Uint32Array(k);
    for (let i = 0; i < k; i++) order[i] = i;
    order.sort((a, b) => hiAll[a]! - hiAll[b]! || loAll[a]! - loAll[b]!);
    this.hi = new Uint32Array(k);
    this.lo = new Uint32Array(k);
    this.owner = new Uint32Array(k);
    for (let i = 0; i < k; i++) {
      const o = order[i]!;
      this.hi[i] = hiAll[o]!;
      this.lo[i] = loAll[o]!;
      this.owner[i] = ownAll[o]!;
    }
  }

  pick(ctx?: LbContext | null): Host | null {
    const size = this.owner.length;
    if (size === 0) return null;
    let hh: number;
    let hl: number;
    if (ctx && ctx.hasHash) {
      hh = ctx.hashHi;
      hl = ctx.hashLo;
    } else {
      // No key: a random point, as Envoy does, which spreads in proportion to weight. One draw
      // gives the high half and ~20 bits below it: plenty to place a point among the ring's.
      const r = this.random() * 4294967296;
      hh = r >>> 0;
      hl = ((r - hh) * 4294967296) >>> 0;
    }
    // First point at or after the hash; past the last point wraps to the first. Search on the
    // high halves alone (one comparison per step), then step over the rare points that share
    // the high half but sit below.
    const his = this.hi;
    let a = 0;
    let b = size;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (his[m]! < hh) a = m + 1;
      else b = m;
    }
    while (a < size && his[a] === hh && this.lo[a]! < hl) a++;
    if (a === size) a = 0;
    // A retry for the same key takes the attempt-th point after it, as Envoy does.
    if (ctx && ctx.attempt > 0) a = (a + ctx.attempt) % size;
    return this.hosts[this.owner[a]!]!;
  }
}

/** Writes `v`'s decimal digits at `at`; returns the end offset. */
function writeDecimal(buf: Buffer, at: number, v: number): number {
  let digits = 1;
  for (let t = v; t >= 10; t = Math.floor(t / 10)) digits++;
  for (let i = digits - 1; i >= 0; i--) {
    buf[at + i] = DIGIT_0 + (v % 10);
    v = Math.floor(v / 10);
  }
  return at + digits;
}
