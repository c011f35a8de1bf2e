import type { Host } from '../host.js';
import type { LbContext } from './context.js';
import { mod64, xxHash64, type Hash64 } from './hash.js';
import type { LoadBalancer, MaglevConfig, Random } from './types.js';
import { fastRandom, hostHashKey } from './util.js';
import { DEFAULT_MAGLEV, isPrime, MAX_MAGLEV_TABLE_SIZE } from './defaults.js';

export { DEFAULT_MAGLEV, isPrime, MAX_MAGLEV_TABLE_SIZE } from './defaults.js';

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016, listing 1), built as Envoy builds it so
 * a key lands on the same host as it would in Envoy. Every host walks its own permutation of a
 * prime-sized table (offset = XXH64(key) mod M, skip = XXH64(key, seed 1) mod (M-1) + 1),
 * claiming its next free slot in turn; a host of lower weight takes a turn only every
 * max/weight rounds. Hosts are visited in order of their hash key, so the table does not depend
 * on the order endpoints were listed in. A pick is one table lookup; a change of membership
 * moves few keys ("minimal disruption"), though more than a ring would.
 */
export class MaglevLb implements LoadBalancer {
  private hosts: readonly Host[] = [];
  private table: Uint8Array | Uint16Array | Uint32Array = new Uint8Array(0);
  private readonly size: number;
  /** Envoy's `maglev_lb.min_entries_per_host` / `max_entries_per_host`. */
  minEntriesPerHost = 0;
  maxEntriesPerHost = 0;

  constructor(
    config: Partial<MaglevConfig> = {},
    private readonly useHostname = false,
    private readonly random: Random = fastRandom,
  ) {
    this.size = config.tableSize ?? DEFAULT_MAGLEV.tableSize;
    if (!isPrime(this.size) || this.size > MAX_MAGLEV_TABLE_SIZE) {
      // Config validation refuses this first; a non-prime size would never fill the table.
      throw new RangeError(`maglev table size ${this.size} is not a prime up to ${MAX_MAGLEV_TABLE_SIZE}`);
    }
  }

  update(hosts: readonly Host[]): void {
    const n = hosts.length;
    const m = this.size;
    if (n === 0) {
      this.hosts = hosts;
      this.table = new Uint8Array(0);
      this.minEntriesPerHost = this.maxEntriesPerHost = 0;
      return;
    }
    // Sort by the key's bytes (Envoy sorts string_views) so listing order does not matter.
    const entries = hosts.map((host) => ({ host, key: Buffer.from(hostHashKey(host, this.useHostname), 'utf8') }));
    entries.sort((a, b) => Buffer.compare(a.key, b.key));
    const sorted = entries.map((e) => e.host);
    let sum = 0;
    for (const h of sorted) sum += h.weight;
    let maxW = 0;
    const weight = new Float64Array(n);
    const offset = new Float64Array(n);
    const skip = new Float64Array(n);
    const out: Hash64 = { hi: 0, lo: 0 };
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      weight[i] = e.host.weight / sum;
      maxW = Math.max(maxW, weight[i]!);
      xxHash64(e.key, 0, e.key.length, out);
      offset[i] = mod64(out.hi, out.lo, m);
      xxHash64(e.key, 0, e.key.length, out, 0, 1);
      skip[i] = mod64(out.hi, out.lo, m - 1) + 1;
    }
    const next = new Float64Array(n);
    const targetWeight = new Float64Array(n);
    const table = n <= 0x100 ? new Uint8Array(m) : n <= 0x10000 ? new Uint16Array(m) : new Uint32Array(m);
    const taken = new Uint8Array(m);
    const count = new Float64Array(n);
    let filled = 0;
    for (let iteration = 1; filled < m; iteration++) {
      for (let i = 0; i < n && filled < m; i++) {
        // Weighted turns: a host at the maximum weight claims a slot every round, one at a
        // third of it every third round.
        if (iteration * weight[i]! < targetWeight[i]!) continue;
        targetWeight[i]! += maxW;
        // skip·next < 2^46, so the permutation stays exact in a double.
        let c = (offset[i]! + skip[i]! * next[i]!) % m;
        while (taken[c]) {
          next[i]!++;
          c = (offset[i]! + skip[i]! * next[i]!) % m;
        }
        table[c] = i;
        taken[c] = 1;
        next[i]!++;
        count[i]!++;
        filled++;
      }
    }
    this.hosts = sorted;
    this.table = table;
    this.minEntriesPerHost = m;
    this.maxEntriesPerHost = 0;
    for (const c of count) {
      this.minEntriesPerHost = Math.min(this.minEntriesPerHost, c);
      this.maxEntriesPerHost = Math.max(this.maxEntriesPerHost, c);
    }
  }

  pick(ctx?: LbContext | null): Host | null {
    const table = this.table;
    if (table.length === 0) return null;
    let slot: number;
    if (ctx && ctx.hasHash) {
      let hi = ctx.hashHi;
      let lo = ctx.hashLo;
      if (ctx.attempt > 0) {
        // A retry for the same key xors the hash with 2^64 - attempt (Envoy's choice: many bits
        // flip, so successive retries scatter rather than walk to a neighbour).
        hi = (hi ^ 0xffffffff) >>> 0;
        lo = (lo ^ (4294967296 - ctx.attempt)) >>> 0;
      }
      slot = mod64(hi, lo, this.size);
    } else {
      // No key: a random slot, as Envoy picks with a random hash.
      slot = Math.floor(this.random() * this.size);
    }
    return this.hosts[table[slot]!]!;
  }
}
