import type { FieldError } from '../../../errors.js';
import { apply, compileKeyValue, type KeyValue } from './payload_to_metadata.js';

type Obj = Record<string, any>;

export const HEADER_TO_METADATA = 'envoy.filters.thrift.header_to_metadata';
export const HEADER_TO_METADATA_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.filters.header_to_metadata.v3.HeaderToMetadata';

interface Rule {
  /** Lowercased, as Envoy keys THeader headers. */
  readonly header: string;
  readonly onPresent: KeyValue | null;
  readonly onMissing: KeyValue | null;
}

export type HeaderRules = readonly Rule[];

/** Looks a request header up (the Thrift codec's THeader key/value headers). */
export type HeaderGet = (name: string) => string | undefined;

export function compileHeaderToMetadata(tc: Obj, path: string, errors: FieldError[], warnings: FieldError[]): HeaderRules | null {
  const start = errors.length;
  const list = (tc.request_rules ?? []) as Obj[];
  if (!list.length) errors.push({ path: `${path}.request_rules`, message: 'needs at least one rule' });
  const rules = list.map((r, i): Rule => {
    const p = `${path}.request_rules[${i}]`;
    const header = String(r.header ?? '').toLowerCase();
    if (!header) errors.push({ path: `${p}.header`, message: 'must not be empty' });
    // Removing it means re-encoding the THeader block of every such request.
    if (r.remove === true) errors.push({ path: `${p}.remove`, message: 'is not supported yet' });
    if (!r.on_present && !r.on_missing) errors.push({ path: p, message: 'needs on_present or on_missing' });
    return {
      header,
      onPresent: compileKeyValue(r.on_present as Obj | undefined, `${p}.on_present`, false, errors, warnings, HEADER_TO_METADATA),
      onMissing: compileKeyValue(r.on_missing as Obj | undefined, `${p}.on_missing`, true, errors, warnings, HEADER_TO_METADATA),
    };
  });
  if (errors.length > start) return null;
  return Object.freeze(rules);
}

/** Adds the rules' `envoy.lb` entries for one request to `into` (created when needed). */
export function headerMetadata(rules: HeaderRules, get: HeaderGet, into: Obj | null): Obj | null {
  let out = into;
  for (const r of rules) {
    const v = get(r.header);
    if (v !== undefined) {
      if (r.onPresent) apply(r.onPresent, v, (out ??= {}));
    } else if (r.onMissing) apply(r.onMissing, '', (out ??= {}));
  }
  return out;
}
