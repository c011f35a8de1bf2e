import net from 'node:net';
import type { FieldError } from '../../../errors.js';
import { ipBytes } from '../../../rbac/cidr.js';
import { compileHeaderMatcher, type HeaderMatch } from '../../../router/header_matcher.js';
import { compileQueryMatcher, queryOf, type QueryMatch } from '../../../router/query_matcher.js';
import type { HttpFilterRequest, MetadataValue } from '../types.js';

type Obj = Record<string, any>;

/**
 * The key a route's compiled `rate_limits` are stored under in its per-filter map: the route
 * table has no other channel to the filters, and no filter is named like a proto message.
 */
export const RATE_LIMITS_KEY = 'envoy.config.route.v3.RateLimit';

/** Separates key from value, and ends each entry, in a descriptor's lookup key. */
export const KV = '\u0000';
export const ENTRY = '\u0001';

/** The lookup key of one descriptor entry; a descriptor's key is its entries' keys in order. */
export function entryKey(key: string, value: string): string {
  return key + KV + value + ENTRY;
}

/**
 * One compiled rate limit action. `value` is set when the entry is known at config time;
 * otherwise `get` computes it per request, returning undefined when it cannot (which drops the
 * whole descriptor) or null when the action is skipped without an entry (skip_if_absent).
 */
interface Action {
  readonly constant: string | null;
  readonly get: ((req: HttpFilterRequest) => string | null | undefined) | null;
  readonly key: string;
}

/** A `config.route.v3.RateLimit`: a descriptor built from its actions, for one stage. */
export interface CompiledRateLimit {
  readonly stage: number;
  readonly actions: readonly Action[];
}

/** A route's own actions and its virtual host's, chosen between by `vh_rate_limits`. */
export interface RouteRateLimits {
  readonly route: readonly CompiledRateLimit[] | null;
  readonly vhost: readonly CompiledRateLimit[] | null;
}

/** What destination_cluster can know when the route is compiled. */
export interface RateLimitTarget {
  /** The route's single cluster, or null (weighted clusters, cluster_header, no forward). */
  readonly cluster: string | null;
  /** cluster_header's name, lower-case: the cluster is the header's value. */
  readonly clusterHeader: string | null;
  /** The route sends nowhere (direct response, redirect): destination_cluster has no value. */
  readonly forwards: boolean;
  readonly weighted: boolean;
  /** false where no route is at hand (the LocalRateLimit's own rate_limits). */
  readonly routeKnown?: boolean;
  /** The route's `metadata` (`filter_metadata` by namespace), for `metadata` actions with source ROUTE_ENTRY. */
  readonly metadata?: Obj | null;
}

const NO_TARGET: RateLimitTarget = Object.freeze({ cluster: null, clusterHeader: null, forwards: false, weighted: false });
/** For a LocalRateLimit's own `rate_limits`: compiled without a route, so no cluster to name. */
export const NO_ROUTE: RateLimitTarget = Object.freeze({ cluster: null, clusterHeader: null, forwards: false, weighted: false, routeKnown: false });

const UNSUPPORTED_ACTIONS = ['query_parameters', 'extension'] as const;

/** The value at `path` under a metadata namespace's entry (struct fields by name), or undefined. */
function metadataAt(top: MetadataValue | undefined, path: readonly string[]): MetadataValue | undefined {
  let v = top;
  for (let i = 1; i < path.length; i++) {
    if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as { readonly [k: string]: MetadataValue })[path[i]!];
  }
  return v;
}

/**
 * `metadata` (source DYNAMIC or ROUTE_ENTRY) and the older `dynamic_metadata`: the string at
 * `metadata_key` (a namespace and a path of struct keys), else `default_value`, else the entry is
 * skipped (`skip_if_absent`) or the descriptor dropped, as Envoy's MetaDataAction. A value that is
 * not a string counts as absent, as its string_value would be empty there.
 */
function compileMetadataAction(m: Obj, p: string, dynamicOnly: boolean, target: RateLimitTarget, errors: FieldError[]): Action | null {
  const start = errors.length;
  const key = typeof m.descriptor_key === 'string' ? m.descriptor_key : '';
  if (!key) errors.push({ path: `${p}.descriptor_key`, message: 'is required' });
  const mk = (m.metadata_key ?? {}) as Obj;
  const ns = typeof mk.key === 'string' ? mk.key : '';
  if (!ns) errors.push({ path: `${p}.metadata_key.key`, message: 'is required' });
  const segs = Array.isArray(mk.path) ? (mk.path as Obj[]) : [];
  if (segs.length === 0) errors.push({ path: `${p}.metadata_key.path`, message: 'needs at least one segment' });
  const path = segs.map((s, i) => {
    const k = s && typeof s === 'object' && typeof s.key === 'string' ? s.key : '';
    if (!k) errors.push({ path: `${p}.metadata_key.path[${i}].key`, message: 'is required' });
    return k;
  });
  const src = dynamicOnly ? 'DYNAMIC' : String(m.source ?? 'DYNAMIC').toUpperCase();
  const fromRoute = src === 'ROUTE_ENTRY' || src === '1';
  if (!fromRoute && src !== 'DYNAMIC' && src !== '0') errors.push({ path: `${p}.source`, message: `"${m.source}" is not DYNAMIC or ROUTE_ENTRY` });
  if (fromRoute && target.routeKnown === false) errors.push({ path: `${p}.source`, message: "ROUTE_ENTRY is not supported in the LocalRateLimit's own rate_limits yet (put the action in the route's)" });
  if (errors.length > start) return null;
  const dflt = typeof m.default_value === 'string' && m.default_value !== '' ? m.default_value : null;
  // Absent and no default: skip_if_absent leaves the entry out, otherwise the descriptor goes.
  const absent: string | null | undefined = dflt ?? (!dynamicOnly && m.skip_if_absent === true ? null : undefined);
  if (fromRoute) {
    const fm = ((target.metadata ?? {}) as Obj).filter_metadata as Obj | undefined;
    const v = metadataAt((fm?.[ns] as Obj | undefined)?.[path[0]!] as MetadataValue | undefined, path);
    if (typeof v === 'string' && v !== '') return { constant: v, key, get: null };
    return typeof absent === 'string' ? { constant: absent, key, get: null } : { constant: null, key, get: () => absent };
  }
  return {
    constant: null,
    key,
    get: (req) => {
      const v = metadataAt(req.dynamicMetadata?.get(ns)?.get(path[0]!), path);
      return typeof v === 'string' && v !== '' ? v : absent;
    },
  };
}

/** A wrapper (`UInt32Value`, `BoolValue`) as a plain value: `{ value: x }` or `x`. */
function unwrap(v: unknown): unknown {
  return v !== null && typeof v === 'object' && 'value' in (v as Obj) ? (v as Obj).value : v;
}

/** A prefix length field: `dflt` when unset, an error past `max`. */
function maskLen(v: unknown, dflt: number, max: number, path: string, errors: FieldError[]): number {
  const raw = unwrap(v);
  if (raw === undefined || raw === null) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > max) {
    errors.push({ path, message: `must be an integer from 0 to ${max}` });
    return dflt;
  }
  return n;
}

/**
 * `ip` with all but its first `len` bits cleared, written `address/len` as Envoy's CidrRange
 * prints it (`10.1.0.0/16`, `2001:db8::/32`); IPv4 takes `v4`, IPv6 (v4-mapped included, as in
 * Envoy) `v6`. Null for what is not an IP literal.
 * @internal exported for the unit test
 */
export function maskedAddress(ip: string, v4: number, v6: number): string | null {
  const kind = net.isIP(ip);
  if (kind === 0) return null;
  const b = ipBytes(ip)!;
  if (kind === 4) {
    const q = ((b[12]! << 24) | (b[13]! << 16) | (b[14]! << 8) | b[15]!) >>> 0;
    const m = v4 === 0 ? 0 : (q & (0xffffffff << (32 - v4))) >>> 0;
    return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}/${v4}`;
  }
  let groups = '';
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, v6 - 8 * i));
    b[i] = b[i]! & ((0xff00 >> keep) & 0xff);
    if (i % 2 === 1) groups += `${i > 1 ? ':' : ''}${((b[i - 1]! << 8) | b[i]!).toString(16)}`;
  }
  // inet_ntop's form (RFC 5952), as Envoy writes addresses.
  return `${new net.SocketAddress({ address: groups, family: 'ipv6' }).address}/${v6}`;
}

/**
 * header_value_match and query_parameter_value_match: `descriptor_value` under `descriptor_key`
 * (default `dfltKey`) when every matcher in `listField` matches, or when not all do with
 * `expect_match: false`; otherwise the descriptor is dropped.
 */
function compileValueMatch<M>(m: Obj, p: string, listField: string, what: string, dfltKey: string, compile: (o: Obj, path: string) => M | null, all: (ms: readonly M[], req: HttpFilterRequest) => boolean, errors: FieldError[]): Action | null {
  const start = errors.length;
  if (typeof m.descriptor_value !== 'string' || !m.descriptor_value) errors.push({ path: `${p}.descriptor_value`, message: 'is required' });
  const list = (m[listField] ?? []) as Obj[];
  if (!Array.isArray(list) || list.length === 0) errors.push({ path: `${p}.${listField}`, message: `needs at least one ${what}` });
  const matchers = (Array.isArray(list) ? list : []).map((o, i) => compile(o ?? {}, `${p}.${listField}[${i}]`));
  if (errors.length > start) return null;
  const ms = matchers as M[];
  const expect = unwrap(m.expect_match) !== false;
  const value = String(m.descriptor_value);
  return { constant: null, key: typeof m.descriptor_key === 'string' && m.descriptor_key ? m.descriptor_key : dfltKey, get: (req) => (all(ms, req) === expect ? value : undefined) };
}

function compileAction(a: Obj, path: string, target: RateLimitTarget, errors: FieldError[]): Action | null {
  if (a.request_headers) {
    const h = a.request_headers as Obj;
    const name = String(h.header_name ?? '').toLowerCase();
    const key = String(h.descriptor_key ?? '');
    if (!name) errors.push({ path: `${path}.request_headers.header_name`, message: 'is required' });
    if (!key) errors.push({ path: `${path}.request_headers.descriptor_key`, message: 'is required' });
    if (!name || !key) return null;
    // skip_if_absent: the descriptor goes on without this entry, instead of being dropped.
    const absent = h.skip_if_absent === true ? null : undefined;
    return { constant: null, key, get: (req) => req.header(name) ?? absent };
  }
  if (a.remote_address) {
    return { constant: null, key: 'remote_address', get: (req) => { const r = req.downstream?.remote; return r && r.family !== 'unix' ? r.address : undefined; } };
  }
  if (a.masked_remote_address) {
    const m = a.masked_remote_address as Obj;
    const p = `${path}.masked_remote_address`;
    const v4 = maskLen(m.v4_prefix_mask_len, 32, 32, `${p}.v4_prefix_mask_len`, errors);
    const v6 = maskLen(m.v6_prefix_mask_len, 128, 128, `${p}.v6_prefix_mask_len`, errors);
    return {
      constant: null,
      key: 'masked_remote_address',
      get: (req) => {
        const r = req.downstream?.remote;
        return (r && r.family !== 'unix' ? maskedAddress(r.address, v4, v6) : null) ?? undefined;
      },
    };
  }
  if (a.query_parameter_value_match) {
    const all = (qm: readonly QueryMatch[], req: HttpFilterRequest): boolean => {
      const q = queryOf(req.path);
      for (let i = 0; i < qm.length; i++) if (!qm[i]!(q)) return false;
      return true;
    };
    return compileValueMatch(a.query_parameter_value_match as Obj, `${path}.query_parameter_value_match`, 'query_parameters', 'query parameter matcher', 'query_match', (o, op) => compileQueryMatcher(o, op, errors), all, errors);
  }
  if (a.metadata) return compileMetadataAction(a.metadata as Obj, `${path}.metadata`, false, target, errors);
  if (a.dynamic_metadata) return compileMetadataAction(a.dynamic_metadata as Obj, `${path}.dynamic_metadata`, true, target, errors);
  if (a.generic_key) {
    const g = a.generic_key as Obj;
    if (typeof g.descriptor_value !== 'string' || !g.descriptor_value) {
      errors.push({ path: `${path}.generic_key.descriptor_value`, message: 'is required' });
      return null;
    }
    return { constant: g.descriptor_value, key: typeof g.descriptor_key === 'string' && g.descriptor_key ? g.descriptor_key : 'generic_key', get: null };
  }
  if (a.header_value_match) {
    const all = (hm: readonly HeaderMatch[], req: HttpFilterRequest): boolean => {
      for (let i = 0; i < hm.length; i++) if (!hm[i]!(req.header)) return false;
      return true;
    };
    return compileValueMatch(a.header_value_match as Obj, `${path}.header_value_match`, 'headers', 'header matcher', 'header_match', (o, op) => compileHeaderMatcher(o, op, errors), all, errors);
  }
  if (a.destination_cluster) {
    if (target.routeKnown === false) {
      errors.push({ path: `${path}.destination_cluster`, message: "is not supported in the LocalRateLimit's own rate_limits yet (put it in the route's)" });
      return null;
    }
    if (target.weighted) {
      errors.push({ path: `${path}.destination_cluster`, message: 'is not supported on a route with weighted_clusters yet' });
      return null;
    }
    if (target.cluster !== null) return { constant: target.cluster, key: 'destination_cluster', get: null };
    const hdr = target.clusterHeader;
    if (hdr !== null) return { constant: null, key: 'destination_cluster', get: (req) => req.header(hdr) ?? undefined };
    // No forwarding action: nothing to name, so the descriptor never forms.
    return { constant: null, key: 'destination_cluster', get: () => undefined };
  }
  if (a.source_cluster) {
    errors.push({ path: `${path}.source_cluster`, message: 'is not supported yet (the local service cluster, node.cluster, is not known to route tables)' });
    return null;
  }
  for (const f of UNSUPPORTED_ACTIONS) {
    if (a[f]) {
      errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
      return null;
    }
  }
  errors.push({ path, message: 'needs one of request_headers, remote_address, masked_remote_address, generic_key, header_value_match, query_parameter_value_match, metadata, dynamic_metadata, destination_cluster' });
  return null;
}

/**
 * Compiles a `rate_limits` list (route action, virtual host, or the LocalRateLimit's own).
 * Returns null when the list is empty, so a route without actions costs nothing per request.
 */
export function compileRateLimits(list: unknown, path: string, errors: FieldError[], target: RateLimitTarget = NO_TARGET): readonly CompiledRateLimit[] | null {
  if (list === undefined || list === null) return null;
  if (!Array.isArray(list)) {
    errors.push({ path, message: 'must be a list' });
    return null;
  }
  const out: CompiledRateLimit[] = [];
  list.forEach((rl: Obj, i) => {
    const p = `${path}[${i}]`;
    const start = errors.length;
    if (!rl || typeof rl !== 'object') {
      errors.push({ path: p, message: 'must be a RateLimit object' });
      return;
    }
    for (const f of ['limit', 'disable_key', 'hits_addend'] as const) {
      if (rl[f] !== undefined && rl[f] !== null && rl[f] !== '') errors.push({ path: `${p}.${f}`, message: 'is not supported yet' });
    }
    if (rl.apply_on_stream_done === true) errors.push({ path: `${p}.apply_on_stream_done`, message: 'is not supported yet' });
    const stageRaw = rl.stage;
    const stage = stageRaw === undefined || stageRaw === null ? 0 : Number(typeof stageRaw === 'object' ? stageRaw.value : stageRaw);
    if (!Number.isInteger(stage) || stage < 0 || stage > 10) errors.push({ path: `${p}.stage`, message: 'must be an integer from 0 to 10' });
    const actions = (rl.actions ?? []) as Obj[];
    if (!Array.isArray(actions) || actions.length === 0) errors.push({ path: `${p}.actions`, message: 'needs at least one action' });
    const compiled = (Array.isArray(actions) ? actions : []).map((a, j) => compileAction(a ?? {}, `${p}.actions[${j}]`, target, errors));
    if (errors.length > start) return;
    out.push(Object.freeze({ stage, actions: Object.freeze(compiled as Action[]) }));
  });
  return out.length ? Object.freeze(out) : null;
}

/**
 * The lookup key of the descriptor `rl` produces for `req`, or null when an action could not
 * produce its entry (Envoy's rule: the whole descriptor is dropped) or no entry was produced.
 */
export function descriptorKey(rl: CompiledRateLimit, req: HttpFilterRequest): string | null {
  let key = '';
  const actions = rl.actions;
  for (let i = 0; i < actions.length; i++) {
    const a = actions[i]!;
    let v: string | null | undefined = a.constant;
    if (v === null) {
      v = a.get!(req);
      if (v === undefined) return null;
      if (v === null) continue;
    }
    key += a.key + KV + v + ENTRY;
  }
  return key === '' ? null : key;
}
