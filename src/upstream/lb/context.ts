import type { MetadataMatch } from '../subset/metadata_match.js';
import { xxHash64, xxHash64String, type Hash64 } from './hash.js';

const tmp: Hash64 = { hi: 0, lo: 0 };

/**
 * What one request tells the load balancer. Meant to be reused: a filter keeps one (per
 * connection or per worker), calls `reset()`, lets each configured hash policy add to it, and
 * passes it to `pick`, so the data path allocates nothing.
 *
 * The hash is Envoy's: a 64-bit value, XXH64 of the key's bytes, several policies folded together
 * by `addHash` (HTTP `hash_policy` header/cookie/source IP, an RPC frame field via `addBytes`).
 */
export class LbContext {
  /** Whether any policy produced a hash; without one, hashing balancers pick at random. */
  hasHash = false;
  hashHi = 0;
  hashLo = 0;
  /**
   * 0 for a first pick; 1, 2… when the caller rejected the previous host (already tried, say)
   * and picks again for the same request. Hashing balancers then step away from the key's host
   * deterministically, as Envoy's host-selection retries do; the others pick afresh anyway.
   */
  attempt = 0;
  /**
   * The route's `metadata_match` for `envoy.lb` (e.g. version=v2), compiled once with the route
   * (MetadataMatch.fromMetadata); clusters with `lb_subset_config` pick from the subset it names.
   */
  metadataMatch: MetadataMatch | null = null;

  reset(): this {
    this.hasHash = false;
    this.hashHi = 0;
    this.hashLo = 0;
    this.attempt = 0;
    this.metadataMatch = null;
    return this;
  }

  /** Replaces the hash with a 64-bit value given as unsigned 32-bit halves. */
  setHash(hi: number, lo: number): this {
    this.hasHash = true;
    this.hashHi = hi >>> 0;
    this.hashLo = lo >>> 0;
    return this;
  }

  /**
   * Folds one policy's hash in the way Envoy's route hash policy combines several: rotate the
   * running value left by one bit, then xor, so two equal parts do not cancel out.
   */
  addHash(hi: number, lo: number): this {
    if (!this.hasHash) return this.setHash(hi, lo);
    const h = this.hashHi;
    const l = this.hashLo;
    this.hashHi = (((h << 1) | (l >>> 31)) ^ hi) >>> 0;
    this.hashLo = (((l << 1) | (h >>> 31)) ^ lo) >>> 0;
    return this;
  }

  /** Adds XXH64 of `buf[offset, offset + length)`: a key read in place from a request's bytes. */
  addBytes(buf: Uint8Array, offset = 0, length = buf.length - offset): this {
    xxHash64(buf, offset, length, tmp);
    return this.addHash(tmp.hi, tmp.lo);
  }

  /** Adds XXH64 of a string's UTF-8 bytes (a header or cookie value, a source IP). */
  addString(s: string): this {
    xxHash64String(s, tmp);
    return this.addHash(tmp.hi, tmp.lo);
  }
}
