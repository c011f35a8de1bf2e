import type { FieldError } from '../../../errors.js';
import { H } from '../../../protocols/types.js';
import { scalarAt } from '../../../protocols/thrift/struct.js';
import { compileRegexRewrite } from '../../../router/http_route_table.js';

type Obj = Record<string, any>;

export const PAYLOAD_TO_METADATA = 'envoy.filters.thrift.payload_to_metadata';
export const PAYLOAD_TO_METADATA_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.filters.payload_to_metadata.v3.PayloadToMetadata';

/** The only namespace anything in Strait reads from an RPC call's metadata: subset selection. */
const LB_NAMESPACE = 'envoy.lb';

/** Envoy drops values this long or longer. */
const MAX_VALUE_LEN = 8 * 1024;

/** One compiled `on_present`/`on_missing` (payload_to_metadata and header_to_metadata share the shape). */
export interface KeyValue {
  readonly key: string;
  /** '' = the field's own value (on_present). */
  readonly value: string;
  readonly rewrite: { re: RegExp; substitution: string } | null;
  readonly number: boolean;
  /** header_to_metadata `encode: BASE64`: the value is decoded first. */
  readonly base64: boolean;
}

interface Rule {
  /** `method_name` (whole message name) or `service_name` + ':' (prefix); '' = every call. */
  readonly name: string;
  readonly byService: boolean;
  /** Field ids from the args struct down to the selected field. */
  readonly ids: readonly number[];
  /** null when the rule's metadata goes to a namespace nothing reads (warned at config). */
  readonly onPresent: KeyValue | null;
  readonly onMissing: KeyValue | null;
}

/** A compiled PayloadToMetadata: its request rules, in order. */
export type PayloadRules = readonly Rule[];

/** `filterName`: the namespace an empty metadata_namespace means (the filter's own). */
export function compileKeyValue(kv: Obj | undefined, path: string, missing: boolean, errors: FieldError[], warnings: FieldError[], filterName = PAYLOAD_TO_METADATA): KeyValue | null {
  if (!kv) return null;
  const key = String(kv.key ?? '');
  if (!key) errors.push({ path: `${path}.key`, message: 'must not be empty' });
  const value = String(kv.value ?? '');
  if (missing && !value) errors.push({ path: `${path}.value`, message: 'on_missing needs a non-empty value' });
  const rewrite = compileRegexRewrite(kv.regex_value_rewrite as Obj | undefined, `${path}.regex_value_rewrite`, errors);
  const type = kv.type ?? 'STRING';
  const number = type === 'NUMBER' || type === 1;
  if (!number && type !== 'STRING' && type !== 0) errors.push({ path: `${path}.type`, message: `${type} is not supported (STRING or NUMBER)` });
  const enc = kv.encode ?? 'NONE';
  const base64 = enc === 'BASE64' || enc === 1;
  if (!base64 && enc !== 'NONE' && enc !== 0) errors.push({ path: `${path}.encode`, message: 'must be NONE or BASE64' });
  const ns = String(kv.metadata_namespace || filterName);
  if (ns !== LB_NAMESPACE) {
    // Dynamic metadata of other namespaces is read by nothing on Strait's RPC path: it would
    // change no traffic, so it is dropped with a warning rather than refused.
    warnings.push({ path: `${path}.metadata_namespace`, message: `metadata in namespace "${ns}" is not kept: only ${LB_NAMESPACE} (subset load balancing) is read` });
    return null;
  }
  return { key, value, rewrite, number, base64 };
}

export function compilePayloadToMetadata(tc: Obj, path: string, errors: FieldError[], warnings: FieldError[]): PayloadRules | null {
  const start = errors.length;
  const list = (tc.request_rules ?? []) as Obj[];
  if (!list.length) errors.push({ path: `${path}.request_rules`, message: 'needs at least one rule' });
  const rules = list.map((r, i): Rule => {
    const p = `${path}.request_rules[${i}]`;
    const byService = r.service_name !== undefined;
    if (r.method_name === undefined && !byService) errors.push({ path: p, message: 'needs method_name or service_name' });
    let name = String((byService ? r.service_name : r.method_name) ?? '');
    if (byService && name && !name.endsWith(':')) name += ':';
    const ids: number[] = [];
    let fs = r.field_selector as Obj | undefined;
    let fp = `${p}.field_selector`;
    if (!fs) errors.push({ path: fp, message: 'is required' });
    for (let depth = 0; fs; depth++) {
      if (!fs.name) errors.push({ path: `${fp}.name`, message: 'must not be empty' });
      const id = Number(fs.id ?? 0);
      if (!Number.isInteger(id) || id < -32768 || id > 32767) errors.push({ path: `${fp}.id`, message: 'must be a Thrift field id (-32768..32767)' });
      ids.push(id);
      if (depth >= 64) {
        errors.push({ path: fp, message: 'nests deeper than 64 structs' });
        break;
      }
      fs = fs.child as Obj | undefined;
      fp += '.child';
    }
    if (!r.on_present && !r.on_missing) errors.push({ path: p, message: 'needs on_present or on_missing' });
    return {
      name,
      byService,
      ids,
      onPresent: compileKeyValue(r.on_present as Obj | undefined, `${p}.on_present`, false, errors, warnings),
      onMissing: compileKeyValue(r.on_missing as Obj | undefined, `${p}.on_missing`, true, errors, warnings),
    };
  });
  if (errors.length > start) return null;
  return Object.freeze(rules);
}

/** Sets `out[kv.key]` from `found` as Envoy's metadata filters do; drops what Envoy drops. */
export function apply(kv: KeyValue, found: string, out: Obj): void {
  let v = found;
  if (kv.rewrite) v = v.replace(kv.rewrite.re, kv.rewrite.substitution);
  else if (kv.value) v = kv.value;
  if (!v || v.length >= MAX_VALUE_LEN) return;
  if (kv.base64) {
    v = Buffer.from(v, 'base64').toString('utf8');
    if (!v) return; // undecodable
  }
  if (kv.number) {
    const n = Number(v.trim());
    if (v.trim() === '' || !Number.isFinite(n)) return; // Envoy drops what does not parse
    out[kv.key] = n;
  } else out[kv.key] = v;
}

/**
 * The `envoy.lb` entries the rules derive from the request frame at `off` (null when none): each
 * matching rule reads its field from the call's args struct, skipping every other field
 * unread; a present non-empty value goes through on_present, an absent one through on_missing.
 */
export function payloadMetadata(rules: PayloadRules, buf: Buffer, off: number, hdr: Int32Array, into: Obj | null): Obj | null {
  const nameOff = hdr[H.SERVICE_OFF]!;
  const name = buf.toString('utf8', nameOff, hdr[H.METHOD_OFF]! + hdr[H.METHOD_LEN]!);
  const end = off + hdr[H.FRAME_LEN]!;
  let out = into;
  for (const r of rules) {
    if (r.name && (r.byService ? !name.startsWith(r.name) : name !== r.name)) continue;
    if (!r.onPresent && !r.onMissing) continue;
    const v = scalarAt(buf, hdr[H.BODY_OFF]!, end, r.ids);
    if (v !== null) {
      // An empty value is present (on_missing does not apply) but adds nothing, as in Envoy.
      if (v && r.onPresent) apply(r.onPresent, v, (out ??= {}));
    } else if (r.onMissing) apply(r.onMissing, '', (out ??= {}));
  }
  return out;
}
