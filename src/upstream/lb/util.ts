import type { Host } from '../host.js';
import type { Random } from './types.js';

const S = new Int32Array(4);
// Seeded from Math.random, not node:crypto: only spread matters here, and loading crypto for a
// seed would cost every sidecar its idle memory.
for (let i = 0; i < 4; i++) S[i] = (Math.random() * 4294967296) | 0;
if ((S[0]! | S[1]! | S[2]! | S[3]!) === 0) S[0] = 1; // the one state the generator cannot leave

/**
 * The balancers' default random source: xoshiro128** over an Int32Array state. Math.random
 * allocates on V8 (measured: a young-generation collection every ~64k calls), which would break
 * the rule that a pick allocates nothing; this one is integer arithmetic on a typed array, and
 * is inlined into the pick. Not for anything secret.
 */
export const fastRandom: Random = () => {
  const s1 = S[1]!;
  const m = Math.imul(s1, 5);
  const result = Math.imul((m << 7) | (m >>> 25), 9);
  const t = s1 << 9;
  S[2] = S[2]! ^ S[0]!;
  S[3] = S[3]! ^ s1;
  S[1] = s1 ^ S[2]!;
  S[0] = S[0]! ^ S[3]!;
  S[2] = S[2]! ^ t;
  S[3] = (S[3]! << 11) | (S[3]! >>> 21);
  return (result >>> 0) / 4294967296;
};

/** A uniform unsigned 32-bit value (a schedule seed). */
export function random32(random: Random): number {
  return Math.floor(random() * 4294967296) >>> 0;
}

export function weightsEqual(hosts: readonly Host[]): boolean {
  for (let i = 1; i < hosts.length; i++) if (hosts[i]!.weight !== hosts[0]!.weight) return false;
  return true;
}

/**
 * Where a host sits on a ring or in a Maglev table, as Envoy decides: endpoint metadata
 * `filter_metadata["envoy.lb"].hash_key` when set (lets a replaced endpoint keep its place), else
 * the hostname with `use_hostname_for_hashing`, else the address as `/clusters` prints it.
 */
export function hostHashKey(host: Host, useHostname: boolean): string {
  const md = host.metadata as { filter_metadata?: Record<string, Record<string, unknown> | undefined> } | null;
  const key = md?.filter_metadata?.['envoy.lb']?.hash_key;
  if (typeof key === 'string' && key !== '') return key;
  if (useHostname && host.hostname) return host.hostname;
  return host.label;
}
