import type { FieldError } from '../../errors.js';
import { MetadataMatch } from './metadata_match.js';

type Obj = Record<string, any>;

export type FallbackPolicy = 'NO_FALLBACK' | 'ANY_ENDPOINT' | 'DEFAULT_SUBSET';

export interface SubsetSelector {
  /** Sorted metadata keys: every host with all of them is in the subset of its values. */
  readonly keys: readonly string[];
  /** What a request whose criteria have exactly these keys gets when no subset matches; null = the cluster's. */
  readonly fallback: FallbackPolicy | null;
}

/** `lb_subset_config`, validated. */
export interface SubsetConfig {
  readonly selectors: readonly SubsetSelector[];
  readonly fallback: FallbackPolicy;
  /** The hosts DEFAULT_SUBSET falls back to (all hosts when empty). */
  readonly defaultSubset: MetadataMatch | null;
}

const POLICIES = new Set(['NO_FALLBACK', 'ANY_ENDPOINT', 'DEFAULT_SUBSET']);

/** Parses `lb_subset_config`, refusing what would change routing and is not implemented. */
export function buildSubsetConfig(s: Obj, path: string, errors: FieldError[]): SubsetConfig | null {
  const start = errors.length;
  const fallback = String(s.fallback_policy ?? 'NO_FALLBACK');
  if (!POLICIES.has(fallback)) errors.push({ path: `${path}.fallback_policy`, message: `${fallback} is not supported` });
  for (const f of ['locality_weight_aware', 'scale_locality_weight', 'panic_mode_any', 'list_as_any', 'metadata_fallback_policy', 'allow_redundant_keys'] as const) {
    const v = s[f];
    if (v !== undefined && v !== false && v !== 'METADATA_NO_FALLBACK') errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  const selectors: SubsetSelector[] = ((s.subset_selectors ?? []) as Obj[]).map((sel, i) => {
    const p = `${path}.subset_selectors[${i}]`;
    const keys = ((sel.keys ?? []) as unknown[]).map(String);
    if (keys.length === 0) errors.push({ path: `${p}.keys`, message: 'needs at least one key' });
    if (new Set(keys).size !== keys.length) errors.push({ path: `${p}.keys`, message: 'lists a key twice' });
    if (sel.single_host_per_subset) errors.push({ path: `${p}.single_host_per_subset`, message: 'is not supported yet' });
    const fp = String(sel.fallback_policy ?? 'NOT_DEFINED');
    if (fp !== 'NOT_DEFINED' && !POLICIES.has(fp)) errors.push({ path: `${p}.fallback_policy`, message: `${fp} is not supported (supported: NOT_DEFINED, NO_FALLBACK, ANY_ENDPOINT, DEFAULT_SUBSET)` });
    return Object.freeze({ keys: Object.freeze([...keys].sort()), fallback: fp === 'NOT_DEFINED' ? null : (fp as FallbackPolicy) });
  });
  const defaultSubset = MetadataMatch.fromStruct(s.default_subset as Obj | undefined);
  if (errors.length > start) return null;
  return Object.freeze({ selectors: Object.freeze(selectors), fallback: fallback as FallbackPolicy, defaultSubset });
}
