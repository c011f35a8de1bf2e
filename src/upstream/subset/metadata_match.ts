import type { Host } from '../host.js';

type Obj = Record<string, any>;

/** One Struct value as a comparable string: type tag + value, so "1", 1 and true differ. */
export function valueKey(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return `s${v}`;
    case 'number':
      return `n${v}`;
    case 'boolean':
      return `b${v}`;
    default:
      return `j${JSON.stringify(v)}`;
  }
}

/** Joins sorted key/value pairs into the key subsets are stored under (NUL and SOH cannot appear in YAML keys). */
export function subsetKey(keys: readonly string[], values: readonly string[]): string {
  let out = '';
  for (let i = 0; i < keys.length; i++) out += `${keys[i]}\u0000${values[i]}\u0001`;
  return out;
}

/** `filter_metadata["envoy.lb"]` of a host's endpoint metadata, or null. */
export function lbMetadata(host: Host): Obj | null {
  const md = host.metadata as { filter_metadata?: Record<string, Obj | undefined> } | null;
  return md?.filter_metadata?.['envoy.lb'] ?? null;
}

/**
 * A route's `metadata_match` criteria for `envoy.lb` (e.g. version=v2), compiled once when the
 * route is configured: sorted entries and the lookup key of the subset they name. Put it on
 * the request's LbContext (`ctx.metadataMatch = criteria`) — no per-request work beyond a Map
 * lookup.
 */
export class MetadataMatch {
  readonly keys: readonly string[];
  readonly values: readonly unknown[];
  /** The subset this names: keys and values, as SubsetLb stores subsets. */
  readonly key: string;
  /** The key names only: which selector a fallback_policy of the selector applies to. */
  readonly keysKey: string;

  private constructor(entries: ReadonlyArray<readonly [string, unknown]>) {
    const sorted = [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.keys = Object.freeze(sorted.map((e) => e[0]));
    this.values = Object.freeze(sorted.map((e) => e[1]));
    this.key = subsetKey(this.keys, this.values.map(valueKey));
    this.keysKey = this.keys.join('\u0000');
    Object.freeze(this);
  }

  /** From the `envoy.lb` Struct itself (`{ version: v2, stage: prod }`); null when empty. */
  static fromStruct(s: Obj | null | undefined): MetadataMatch | null {
    if (!s) return null;
    const entries = Object.entries(s);
    return entries.length ? new MetadataMatch(entries) : null;
  }

  /** From a route's or weighted cluster's `metadata_match` (a core.v3.Metadata). */
  static fromMetadata(md: Obj | null | undefined): MetadataMatch | null {
    return MetadataMatch.fromStruct(md?.filter_metadata?.['envoy.lb']);
  }

  /** Envoy's merge for weighted clusters: the child's values win, keys of both are kept. */
  mergedWith(child: MetadataMatch | null): MetadataMatch {
    if (!child) return this;
    const m = new Map<string, unknown>();
    this.keys.forEach((k, i) => m.set(k, this.values[i]));
    child.keys.forEach((k, i) => m.set(k, child.values[i]));
    return new MetadataMatch([...m.entries()]);
  }

  /** Whether a host's `envoy.lb` metadata has every pair (default_subset membership). */
  matchesHost(host: Host): boolean {
    const md = lbMetadata(host);
    if (!md) return this.keys.length === 0;
    for (let i = 0; i < this.keys.length; i++) {
      const v = md[this.keys[i]!];
      if (v === undefined || valueKey(v) !== valueKey(this.values[i])) return false;
    }
    return true;
  }
}
