import type { RpcCodec } from './types.js';

/**
 * An optional codec ability for tracing: a request's metadata (Bolt header map, Dubbo
 * attachments) read in one walk, and a copy of a request with some entries set. Used only when
 * a filter traces, so neither costs the plain data path anything.
 */
export interface MetadataAccess {
  /** Calls `visit` with every string entry of the request at `off`; false if the frame cannot be walked. */
  entries(buf: Buffer, off: number, hdr: Int32Array, visit: (key: string, value: string) => void): boolean;
  /**
   * A new frame: the request at `off` with `set` replacing entries of the same names (compared
   * case-insensitively) and the other entries kept in order; null when it cannot be rewritten.
   */
  withEntries(buf: Buffer, off: number, hdr: Int32Array, set: ReadonlyArray<readonly [string, string]>): Buffer | null;
}

export function hasMetadataAccess(c: RpcCodec): c is RpcCodec & MetadataAccess {
  const m = c as Partial<MetadataAccess>;
  return typeof m.entries === 'function' && typeof m.withEntries === 'function';
}

/** True if `name` is one of `set`'s names, in any case. */
export function replaced(name: string, set: ReadonlyArray<readonly [string, string]>): boolean {
  const n = name.toLowerCase();
  for (const [k] of set) if (k.toLowerCase() === n) return true;
  return false;
}
