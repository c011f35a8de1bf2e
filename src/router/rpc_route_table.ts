import { parseRoutingPriority, type RoutingPriority } from '../upstream/circuit_breakers.js';
import { durationMs } from '../config/values.js';
import type { FieldError } from '../errors.js';
import { compileClusterSpecifier, type ClusterPicker } from './cluster_specifier.js';
import { compileHeaderMatcher, type HeaderLookup, type HeaderMatch } from './header_matcher.js';
import { compileStringMatcher, type StringMatch } from './string_matcher.js';
import { MetadataMatch } from '../upstream/subset/metadata_match.js';
import type { LbContext } from '../upstream/lb/context.js';
import { H, type RpcCodec } from '../protocols/types.js';

type Obj = Record<string, any>;

/**
 * What the RPC router needs from a request. Codecs implement it over the frame's bytes and
 * decode a field only when asked: `group` (Dubbo: after the arguments) and `method` (Bolt:
 * inside the body) cost a body walk, so a route table that never asks never pays for it.
 */
export interface RpcRequestView {
  iface(): string;
  version(): string;
  group(): string;
  method(): string;
  header: HeaderLookup;
  /** Argument `index` of the call as text (RpcCodec.param); absent for protocols without typed arguments. */
  param?(index: number): string | undefined;
}

/** One dubbo_proxy `params_match` entry: argument `index` equals `exact`, or is an integer in [start, end). */
interface ParamMatch {
  readonly index: number;
  readonly exact: string | null;
  readonly start: bigint;
  readonly end: bigint;
}

export interface RetrySpec {
  readonly numRetries: number;
  readonly retryOn: ReadonlySet<string>;
  readonly perTryTimeoutMs: number;
}

export interface HedgeSpec {
  /** Requests sent at once (Envoy's initial_requests, default 1). */
  readonly initialRequests: number;
  /** Also send a backup when a try exceeds its per-try timeout. */
  readonly onPerTryTimeout: boolean;
}

/** The action a matched route takes; immutable and shared by every request it matches. */
export interface RpcRoute {
  readonly clusters: ClusterPicker;
  /** 0 = no route timeout (the frame's own timeout may still apply). */
  readonly timeoutMs: number;
  readonly retry: RetrySpec | null;
  readonly hedge: HedgeSpec | null;
  /** `metadata_match` for subset load balancing (compiled once); null = any endpoint. */
  readonly metadataMatch: MetadataMatch | null;
  /** `priority` (Strait's field): which circuit-breaker thresholds the route's calls count against. */
  readonly priority: RoutingPriority;
  /** Strait's `hash_policy` (RING_HASH / MAGLEV keys from the frame); null = none. */
  readonly hash: readonly RpcHashPolicy[] | null;
  /**
   * Extra balancer picks a retry or backup makes to avoid a host the call already tried
   * (previous_hosts, always on for RPC): `host_selection_retry_max_attempts`, else 1 with an
   * explicit predicate (Envoy's default), else 3 (Strait's default for a bare policy).
   */
  readonly hostReselects: number;
}

/** One compiled rpc_proxy `RouteAction.HashPolicy`. */
export type RpcHashPolicy =
  | { readonly kind: 'field'; readonly field: 'INTERFACE' | 'METHOD' | 'VERSION' | 'GROUP'; readonly terminal: boolean }
  | { readonly kind: 'header'; readonly name: string; readonly terminal: boolean }
  | { readonly kind: 'source_ip'; readonly terminal: boolean };

const HASH_FIELDS = ['INTERFACE', 'METHOD', 'VERSION', 'GROUP'] as const;

function compileHashPolicies(list: unknown, path: string, errors: FieldError[]): readonly RpcHashPolicy[] | null {
  const items = (list ?? []) as Obj[];
  if (!Array.isArray(items) || items.length === 0) return null;
  const start = errors.length;
  const out = items.map((p0, i): RpcHashPolicy | null => {
    const p = p0 ?? {};
    const at = `${path}[${i}]`;
    const terminal = p.terminal === true;
    const set = ['field', 'header', 'source_ip'].filter((k) => p[k] !== undefined && p[k] !== null && p[k] !== false);
    if (set.length !== 1) {
      errors.push({ path: at, message: set.length ? `sets ${set.join(' and ')}; exactly one per entry` : 'needs field, header or source_ip' });
      return null;
    }
    if (p.field !== undefined && p.field !== null) {
      // Enum by name, or by number as a binary config carries it.
      const f = typeof p.field === 'number' ? HASH_FIELDS[p.field - 1] : HASH_FIELDS.find((n) => n === String(p.field).toUpperCase());
      if (!f) {
        errors.push({ path: `${at}.field`, message: `must be one of ${HASH_FIELDS.join(', ')}` });
        return null;
      }
      return { kind: 'field', field: f, terminal };
    }
    if (p.header !== undefined && p.header !== null) {
      const name = String(p.header);
      if (!name) {
        errors.push({ path: `${at}.header`, message: 'must not be empty' });
        return null;
      }
      return { kind: 'header', name, terminal };
    }
    return { kind: 'source_ip', terminal };
  });
  if (errors.length > start) return null;
  return Object.freeze(out as RpcHashPolicy[]);
}

/** Hashes the bytes of the frame field at `offIdx` (offset, then length) in place; a field the frame lacks adds nothing. */
function addField(ctx: LbContext, buf: Buffer, hdr: Int32Array, offIdx: number): void {
  const o = hdr[offIdx]!;
  if (o >= 0) ctx.addBytes(buf, o, hdr[offIdx + 1]!);
}

/**
 * Folds a call's hash keys into `ctx` (reset by the caller): interface, version, method and
 * group are hashed where they lie in the frame; method and group are decoded only when a
 * policy asks for them. `hdr` is the call's own header array (lazy fields land in it).
 */
export function hashRpcCall(policies: readonly RpcHashPolicy[], ctx: LbContext, codec: RpcCodec, buf: Buffer, off: number, hdr: Int32Array, remoteIp: string): void {
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i]!;
    if (p.kind === 'field') {
      switch (p.field) {
        case 'INTERFACE':
          addField(ctx, buf, hdr, H.SERVICE_OFF);
          break;
        case 'VERSION':
          addField(ctx, buf, hdr, H.VERSION_OFF);
          break;
        case 'METHOD':
          if (hdr[H.METHOD_OFF]! === -1) codec.decodeLazy(buf, off, hdr, 'method');
          addField(ctx, buf, hdr, H.METHOD_OFF);
          break;
        case 'GROUP':
          if (hdr[H.GROUP_OFF]! === -1) codec.decodeLazy(buf, off, hdr, 'group');
          addField(ctx, buf, hdr, H.GROUP_OFF);
          break;
      }
    } else if (p.kind === 'header') {
      const v = codec.lookup(buf, off, hdr, p.name);
      if (v !== undefined) ctx.addString(v);
    } else if (remoteIp) ctx.addString(remoteIp);
    if (p.terminal && ctx.hasHash) break;
  }
}

const PREVIOUS_HOSTS = new Set(['envoy.retry_host_predicates.previous_hosts', 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate', 'type.googleapis.com/envoy.config.retry.previous_hosts.v2.PreviousHostsPredicate']);
const TYPED_STRUCTS = new Set(['type.googleapis.com/udpa.type.v1.TypedStruct', 'type.googleapis.com/xds.type.v3.TypedStruct']);
const DEFAULT_RESELECTS = 3;

/**
 * `retry_host_predicate` / `host_selection_retry_max_attempts` of an RPC route's retry policy:
 * returns the reselect count. Only previous_hosts exists here (RPC calls always avoid hosts
 * they tried); any other predicate would silently change nothing, so it is refused.
 */
function compileHostReselects(rp: Obj | null, path: string, errors: FieldError[]): number {
  if (!rp) return DEFAULT_RESELECTS;
  const list = rp.retry_host_predicate as unknown;
  let explicit = false;
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) errors.push({ path: `${path}.retry_host_predicate`, message: 'must be a list' });
    else
      list.forEach((p0, i) => {
        const p = (p0 ?? {}) as Obj;
        const pp = `${path}.retry_host_predicate[${i}]`;
        const type = String((p.typed_config as Obj | undefined)?.['@type'] ?? '');
        // Identified as Envoy does: by the typed_config's type, else by name.
        const key = type && !TYPED_STRUCTS.has(type) ? type : String(p.name ?? '');
        if (PREVIOUS_HOSTS.has(key)) explicit = true;
        else errors.push({ path: type && !TYPED_STRUCTS.has(type) ? `${pp}.typed_config` : `${pp}.name`, message: `retry host predicate "${key}" is not supported on RPC routes (only envoy.retry_host_predicates.previous_hosts is)` });
      });
  }
  const m = rp.host_selection_retry_max_attempts;
  if (m === undefined || m === null) return explicit ? 1 : DEFAULT_RESELECTS;
  const n = Number(m);
  // Each reselect is one more balancer pick on the data path: keep it bounded.
  if (!Number.isInteger(n) || n < 0 || n > 100) {
    errors.push({ path: `${path}.host_selection_retry_max_attempts`, message: 'must be an integer from 0 to 100' });
    return DEFAULT_RESELECTS;
  }
  return n;
}

type InterfaceMatch = (iface: string) => boolean;

/**
 * Envoy dubbo_proxy semantics: `*`, `prefix.*`, `*.suffix`; a wildcard never matches empty. An
 * unset interface matches every call, including protocols that carry none (plain Thrift).
 */
function compileInterface(pattern: string): InterfaceMatch {
  if (pattern === '') return () => true;
  if (pattern === '*') return (i) => i.length > 0;
  if (pattern.endsWith('*')) {
    const p = pattern.slice(0, -1);
    return (i) => i.length > p.length && i.startsWith(p);
  }
  if (pattern.startsWith('*')) {
    const s = pattern.slice(1);
    return (i) => i.length > s.length && i.endsWith(s);
  }
  return (i) => i === pattern;
}

interface CompiledRoute {
  readonly method: StringMatch | null;
  readonly params: readonly ParamMatch[] | null;
  readonly headers: readonly HeaderMatch[] | null;
  readonly action: RpcRoute;
}

interface CompiledService {
  readonly iface: InterfaceMatch;
  readonly version: string;
  readonly group: string;
  readonly routes: readonly CompiledRoute[];
}

function compileAction(action: Obj, path: string, known: ReadonlySet<string>, errors: FieldError[]): RpcRoute | null {
  // metadata_match is handled here (subset balancing), not by the shared cluster specifier.
  const { metadata_match: md, priority: pr, ...a } = action;
  const clusters = compileClusterSpecifier(a, path, known, errors);
  const priority = parseRoutingPriority(pr, `${path}.priority`, errors);
  let retry: RetrySpec | null = null;
  if (a.retry_policy) {
    const rp = a.retry_policy as Obj;
    retry = {
      numRetries: rp.num_retries === undefined ? 1 : Number(rp.num_retries),
      retryOn: new Set(String(rp.retry_on ?? 'connect-failure').split(',').map((s) => s.trim()).filter(Boolean)),
      perTryTimeoutMs: durationMs(rp.per_try_timeout) ?? 0,
    };
  }
  let hedge: HedgeSpec | null = null;
  if (a.hedge_policy) {
    const hp = a.hedge_policy as Obj;
    if (hp.additional_request_chance !== undefined) errors.push({ path: `${path}.hedge_policy.additional_request_chance`, message: 'is not supported yet' });
    hedge = { initialRequests: hp.initial_requests === undefined ? 1 : Number(hp.initial_requests), onPerTryTimeout: hp.hedge_on_per_try_timeout === true };
  }
  const start = errors.length;
  const hostReselects = compileHostReselects((a.retry_policy ?? null) as Obj | null, `${path}.retry_policy`, errors);
  const hash = compileHashPolicies(a.hash_policy, `${path}.hash_policy`, errors);
  if (!clusters || priority === null || errors.length > start) return null;
  return Object.freeze({ clusters, timeoutMs: durationMs(a.timeout) ?? 0, retry, hedge, metadataMatch: MetadataMatch.fromMetadata(md as Obj | undefined), priority, hash, hostReselects });
}

/**
 * dubbo_proxy `params_match`: argument index → `exact_match` (the argument's text) or
 * `range_match` (an integer argument in [start, end)), as Envoy's dubbo_proxy compiles it.
 */
function compileParamsMatch(pm: Obj, path: string, errors: FieldError[]): ParamMatch[] {
  const out: ParamMatch[] = [];
  for (const [k, spec0] of Object.entries(pm)) {
    const at = `${path}[${k}]`;
    const index = Number(k);
    if (!Number.isInteger(index) || index < 0) {
      errors.push({ path: at, message: 'the key is an argument index (0, 1, ...)' });
      continue;
    }
    const spec = (spec0 ?? {}) as Obj;
    if (typeof spec.exact_match === 'string') out.push({ index, exact: spec.exact_match, start: 0n, end: 0n });
    else if (spec.range_match) {
      const r = spec.range_match as Obj;
      try {
        out.push({ index, exact: null, start: BigInt(r.start ?? 0), end: BigInt(r.end ?? 0) });
      } catch {
        errors.push({ path: `${at}.range_match`, message: 'start and end must be integers' });
      }
    } else errors.push({ path: at, message: 'needs exact_match or range_match' });
  }
  return out;
}

/** Every params_match entry holds; an argument that is absent, empty or not text never matches (as in Envoy). */
function paramsMatch(params: readonly ParamMatch[], req: RpcRequestView): boolean {
  if (!req.param) return false;
  for (const p of params) {
    const v = req.param(p.index);
    if (!v) return false;
    if (p.exact !== null) {
      if (v !== p.exact) return false;
    } else {
      if (!/^[+-]?\d+$/.test(v)) return false;
      const n = BigInt(v);
      if (n < p.start || n >= p.end) return false;
    }
  }
  return true;
}

/**
 * What rpc_proxy asks of a route table: Strait's and dubbo_proxy's (RpcRouteTable below) and
 * thrift_proxy's (method/service-name routes) answer the same question over the same view.
 */
export interface RpcRouter {
  route(req: RpcRequestView): RpcRoute | null;
  /** Every cluster any route can reach. */
  clusterNames(): Set<string>;
}

/**
 * The RPC route table: services tried in order by interface, version and group, then their
 * routes in order by method and headers; the first match wins. Built once from config.
 */
export class RpcRouteTable implements RpcRouter {
  private constructor(private readonly services: readonly CompiledService[]) {}

  /** Compiles `route_config` (strait.rpc_proxy.v1 or Envoy dubbo_proxy RouteConfiguration list). */
  static compile(configs: readonly Obj[], path: string, knownClusters: ReadonlySet<string>, errors: FieldError[]): RpcRouteTable {
    const services = configs.map((rc, i): CompiledService => {
      const p = `${path}[${i}]`;
      const routes = ((rc.routes ?? []) as Obj[]).flatMap((r, j): CompiledRoute[] => {
        const rpath = `${p}.routes[${j}]`;
        const m = (r.match ?? {}) as Obj;
        let method: StringMatch | null = null;
        let params: ParamMatch[] | null = null;
        if (m.method) {
          if (m.method.params_match && Object.keys(m.method.params_match).length) params = compileParamsMatch(m.method.params_match as Obj, `${rpath}.match.method.params_match`, errors);
          if (m.method.name) method = compileStringMatcher(m.method.name, `${rpath}.match.method.name`, errors);
        }
        const hs = ((m.headers ?? []) as Obj[]).map((h, k) => compileHeaderMatcher(h, `${rpath}.match.headers[${k}]`, errors));
        const action = compileAction((r.route ?? {}) as Obj, `${rpath}.route`, knownClusters, errors);
        if (!action || hs.some((h) => h === null)) return [];
        return [{ method, params, headers: hs.length ? (hs as HeaderMatch[]) : null, action }];
      });
      return { iface: compileInterface(String(rc.interface ?? '')), version: String(rc.version ?? ''), group: String(rc.group ?? ''), routes };
    });
    return new RpcRouteTable(services);
  }

  /** Every cluster any route can reach. */
  clusterNames(): Set<string> {
    return new Set(this.services.flatMap((s) => s.routes.flatMap((r) => r.action.clusters.names)));
  }

  route(req: RpcRequestView): RpcRoute | null {
    for (const s of this.services) {
      if (!s.iface(req.iface())) continue;
      if (s.version && s.version !== req.version()) continue;
      if (s.group && s.group !== req.group()) continue;
      for (const r of s.routes) {
        if (r.method && !r.method(req.method())) continue;
        if (r.params && !paramsMatch(r.params, req)) continue;
        if (r.headers && !r.headers.every((h) => h(req.header))) continue;
        return r.action;
      }
    }
    return null;
  }
}
