import type { FieldError } from '../errors.js';
import type { Downstream } from '../io/engine.js';
import { compileHeaderMatcher, type HeaderLookup } from '../router/header_matcher.js';
import type { RpcRequestView } from '../router/rpc_route_table.js';
import { compileStringMatcher, type StringMatch } from '../router/string_matcher.js';
import { compileCidr } from './cidr.js';
import { peerIdentity, type PeerIdentity } from './identity.js';

type Obj = Record<string, any>;

/**
 * What a policy is evaluated against. Network filters fill only the connection; the HTTP
 * filter adds the request line and headers; rpc_proxy (through the network filter) adds the
 * call. Built once per evaluation; the peer identity is computed on first use.
 */
export interface RbacFacts {
  readonly downstream: Downstream;
  /** The client address for `remote_ip` (HTTP: from x-forwarded-for when trusted); else the peer. */
  readonly remoteIp?: string;
  readonly method?: string;
  /** The request path without its query string. */
  readonly path?: string;
  /** Lower-case names; `:method`, `:path`, `:authority` resolve like any header (Envoy's pseudo-headers). */
  readonly header?: HeaderLookup;
  readonly rpc?: RpcRequestView | null;
  /** Cache for peerIdentity(downstream): undefined = not computed yet. */
  identity?: PeerIdentity | null;
}

export type Rule = (f: RbacFacts) => boolean;

/**
 * Dynamic metadata namespaces Strait fills: rpc_proxy (and the dubbo_proxy it also serves)
 * publishes each call's `interface`, `method`, `version` and `group` here for RBAC.
 */
export const RPC_METADATA_FILTERS: ReadonlySet<string> = new Set(['strait.filters.network.rpc_proxy', 'envoy.filters.network.dubbo_proxy']);
const RPC_KEYS = ['interface', 'method', 'version', 'group'] as const;

/** What compiling a rule set learned, so filters know which facts they must supply. */
export interface CompileNotes {
  /** Some rule reads RPC call metadata: only a per-call evaluation can decide. */
  usesRpc: boolean;
}

interface Ctx {
  readonly errors: FieldError[];
  readonly warnings: FieldError[];
  readonly notes: CompileNotes;
}

const ANY: Rule = () => true;
const NEVER: Rule = () => false;

function identityOf(f: RbacFacts): PeerIdentity | null {
  if (f.identity === undefined) f.identity = peerIdentity(f.downstream);
  return f.identity;
}

function ipOf(a: { family: string; address: string }): string {
  return a.family === 'unix' ? '' : a.address;
}

function all(rules: Rule[]): Rule {
  if (rules.length === 1) return rules[0]!;
  return (f) => {
    for (const r of rules) if (!r(f)) return false;
    return true;
  };
}

function some(rules: Rule[]): Rule {
  if (rules.length === 1) return rules[0]!;
  return (f) => {
    for (const r of rules) if (r(f)) return true;
    return false;
  };
}

function list(v: Obj | undefined, key: string, path: string, ctx: Ctx, one: (o: Obj, p: string, ctx: Ctx) => Rule | null): Rule[] | null {
  const items = ((v?.[key] ?? []) as Obj[]).map((o, i) => one(o, `${path}.${key}[${i}]`, ctx));
  if (items.some((r) => r === null)) return null;
  return items as Rule[];
}

function headerRule(h: Obj, path: string, ctx: Ctx): Rule | null {
  const m = compileHeaderMatcher(h, path, ctx.errors);
  if (!m) return null;
  return (f) => {
    const get = f.header ?? (f.rpc ? (n: string) => f.rpc!.header(n) : null);
    // No request (a network filter before a non-RPC terminal): the header is absent.
    return m(get ?? (() => undefined));
  };
}

function pathRule(p: Obj, path: string, ctx: Ctx): Rule | null {
  if (!p.path) {
    ctx.errors.push({ path, message: 'needs path (a StringMatcher)' });
    return null;
  }
  const m = compileStringMatcher(p.path, `${path}.path`, ctx.errors);
  if (!m) return null;
  return (f) => f.path !== undefined && m(f.path);
}

/**
 * A compiled `type.matcher.v3.ValueMatcher` over a metadata value as JSON: undefined when the
 * path leads nowhere, else a string, number, boolean, null, list or struct. Envoy's rules: a
 * kind test never matches a value of another kind; `present_match` tests presence alone.
 */
type ValueMatch = (v: unknown) => boolean;

function compileValueMatcher(v: Obj, path: string, ctx: Ctx): ValueMatch | null {
  if (v.string_match) {
    const sm: StringMatch | null = compileStringMatcher(v.string_match, `${path}.string_match`, ctx.errors);
    return sm && ((x) => typeof x === 'string' && sm(x));
  }
  if (v.present_match !== undefined) {
    // Envoy's PresentMatcher: `false` matches nothing, absent values included (absence is
    // `present_match: true` with `invert`).
    if (v.present_match !== true) return () => false;
    return (x) => x !== undefined;
  }
  if (v.bool_match !== undefined) {
    const want = v.bool_match === true;
    return (x) => x === want;
  }
  if (v.null_match !== undefined) return (x) => x === null;
  if (v.double_match) return doubleMatcher(v.double_match as Obj, `${path}.double_match`, ctx);
  if (v.list_match) {
    const l = v.list_match as Obj;
    if (!l.one_of) {
      ctx.errors.push({ path: `${path}.list_match.one_of`, message: 'is required (a ValueMatcher)' });
      return null;
    }
    const inner = compileValueMatcher(l.one_of as Obj, `${path}.list_match.one_of`, ctx);
    // Some element matches; a value that is not a list never does.
    return inner && ((x) => Array.isArray(x) && x.some(inner));
  }
  if (v.or_match) {
    const ms = ((v.or_match.value_matchers ?? []) as Obj[]).map((m, i) => compileValueMatcher(m, `${path}.or_match.value_matchers[${i}]`, ctx));
    if (ms.length < 2) ctx.errors.push({ path: `${path}.or_match.value_matchers`, message: 'needs at least 2 matchers' });
    if (ms.length < 2 || ms.some((m) => m === null)) return null;
    return (x) => (ms as ValueMatch[]).some((m) => m(x));
  }
  ctx.errors.push({ path, message: 'needs one of string_match, present_match, bool_match, null_match, double_match, list_match, or_match' });
  return null;
}

/** `type.matcher.v3.DoubleMatcher`: `exact`, or `range` [start, end) as Envoy's DoubleRange. */
function doubleMatcher(d: Obj, path: string, ctx: Ctx): ValueMatch | null {
  if (d.range) {
    const start = Number(d.range.start ?? 0);
    const end = Number(d.range.end ?? 0);
    return (x) => typeof x === 'number' && x >= start && x < end;
  }
  if (d.exact !== undefined) {
    const want = Number(d.exact);
    return (x) => x === want;
  }
  ctx.errors.push({ path, message: 'needs exact or range' });
  return null;
}

/**
 * `metadata`: Strait's RPC call metadata (see RPC_METADATA_FILTERS) under a ValueMatcher. Other
 * namespaces are never filled here, so they match as absent (warned once): Istio's
 * `istio_authn` namespace (JWT claims, `request.auth.*`) among them, since Strait has no JWT
 * filter — as in Envoy when no RequestAuthentication applies.
 */
function metadataRule(m: Obj, path: string, ctx: Ctx): Rule | null {
  const filter = String(m.filter ?? '');
  const keys = ((m.path ?? []) as Obj[]).map((s) => String(s.key ?? ''));
  const invert = m.invert === true;
  const test = compileValueMatcher((m.value ?? {}) as Obj, `${path}.value`, ctx);
  if (!test) return null;
  if (!RPC_METADATA_FILTERS.has(filter)) {
    ctx.warnings.push({ path: `${path}.filter`, message: `metadata namespace "${filter}" is never set by Strait; it matches as absent` });
    const absent = test(undefined) !== invert;
    return absent ? ANY : NEVER;
  }
  const key = keys.length === 1 ? keys[0]! : '';
  if (!(RPC_KEYS as readonly string[]).includes(key)) {
    ctx.errors.push({ path: `${path}.path`, message: `must be one key of ${RPC_KEYS.join(', ')}` });
    return null;
  }
  ctx.notes.usesRpc = true;
  const read = (r: RpcRequestView): string => (key === 'interface' ? r.iface() : key === 'method' ? r.method() : key === 'version' ? r.version() : r.group());
  // A field the call does not carry reads as '': absent, as before list and kind matchers came.
  return (f) => {
    const s = f.rpc ? read(f.rpc) : '';
    return test(s === '' ? undefined : s) !== invert;
  };
}

/**
 * `filter_state` (`type.matcher.v3.FilterStateMatcher`): the connection's filter state under
 * `key` (src/io/filter_state.ts; istio_authn sets Istio's principals) against `string_match`.
 * A key nobody set never matches. The HTTP filter reaches it through the request's connection.
 */
function filterStateRule(fsm: Obj, path: string, ctx: Ctx): Rule | null {
  const key = String(fsm.key ?? '');
  if (key === '') ctx.errors.push({ path: `${path}.key`, message: 'is required' });
  if (fsm.address_match !== undefined) {
    ctx.errors.push({ path: `${path}.address_match`, message: 'is not supported yet (only string_match)' });
    return null;
  }
  if (!fsm.string_match) {
    if (key !== '') ctx.errors.push({ path, message: 'needs string_match' });
    return null;
  }
  const sm = compileStringMatcher(fsm.string_match, `${path}.string_match`, ctx.errors);
  if (!sm || key === '') return null;
  return (f) => {
    const v = f.downstream.filterState?.get(key);
    return v !== undefined && sm(v);
  };
}

function portRange(r: Obj): Rule {
  const start = Number(r.start ?? 0);
  const end = Number(r.end ?? 0);
  return (f) => f.downstream.local.port >= start && f.downstream.local.port < end;
}

/** Fields of Permission/Principal Strait does not evaluate: refused, since ignoring them would change access. */
const UNSUPPORTED_RULES = ['condition', 'checked_condition', 'matcher', 'uri_template', 'sourced_metadata', 'destination_port_range_set'];

function unsupported(o: Obj, path: string, ctx: Ctx): boolean {
  for (const k of UNSUPPORTED_RULES) {
    if (o[k] !== undefined) {
      ctx.errors.push({ path: `${path}.${k}`, message: 'is not supported yet' });
      return true;
    }
  }
  return false;
}

/** A compiled `config.rbac.v3.Permission`: what the request does. */
export function compilePermission(p: Obj, path: string, ctx: Ctx): Rule | null {
  if (unsupported(p, path, ctx)) return null;
  if (p.any === true) return ANY;
  if (p.and_rules) {
    const r = list(p.and_rules, 'rules', `${path}.and_rules`, ctx, compilePermission);
    return r && all(r);
  }
  if (p.or_rules) {
    const r = list(p.or_rules, 'rules', `${path}.or_rules`, ctx, compilePermission);
    return r && some(r);
  }
  if (p.not_rule) {
    const r = compilePermission(p.not_rule, `${path}.not_rule`, ctx);
    return r && ((f) => !r(f));
  }
  if (p.header) return headerRule(p.header, `${path}.header`, ctx);
  if (p.url_path) return pathRule(p.url_path, `${path}.url_path`, ctx);
  if (p.destination_ip) {
    const c = compileCidr(p.destination_ip, `${path}.destination_ip`, ctx.errors);
    return c && ((f) => c(ipOf(f.downstream.local)));
  }
  if (p.destination_port !== undefined) {
    const port = Number(p.destination_port);
    return (f) => f.downstream.local.port === port;
  }
  if (p.destination_port_range) return portRange(p.destination_port_range);
  if (p.requested_server_name) {
    const m = compileStringMatcher(p.requested_server_name, `${path}.requested_server_name`, ctx.errors);
    return m && ((f) => m(f.downstream.tls?.sni ?? ''));
  }
  if (p.metadata) return metadataRule(p.metadata, `${path}.metadata`, ctx);
  // Envoy's Permission has no filter_state (the config decoder refuses it there); evaluated
  // alike for callers that build rules directly.
  if (p.filter_state) return filterStateRule(p.filter_state, `${path}.filter_state`, ctx);
  ctx.errors.push({ path, message: 'a permission needs one rule (any, and_rules, or_rules, not_rule, header, url_path, destination_ip, destination_port, destination_port_range, requested_server_name, metadata, filter_state)' });
  return null;
}

/** A compiled `config.rbac.v3.Principal`: who the downstream is. */
export function compilePrincipal(p: Obj, path: string, ctx: Ctx): Rule | null {
  if (unsupported(p, path, ctx)) return null;
  if (p.any === true) return ANY;
  if (p.and_ids) {
    const r = list(p.and_ids, 'ids', `${path}.and_ids`, ctx, compilePrincipal);
    return r && all(r);
  }
  if (p.or_ids) {
    const r = list(p.or_ids, 'ids', `${path}.or_ids`, ctx, compilePrincipal);
    return r && some(r);
  }
  if (p.not_id) {
    const r = compilePrincipal(p.not_id, `${path}.not_id`, ctx);
    return r && ((f) => !r(f));
  }
  if (p.authenticated) return authenticatedRule(p.authenticated, `${path}.authenticated`, ctx);
  // source_ip is the deprecated name of direct_remote_ip.
  const direct = p.direct_remote_ip ?? p.source_ip;
  if (direct) {
    const c = compileCidr(direct, `${path}.${p.direct_remote_ip ? 'direct_remote_ip' : 'source_ip'}`, ctx.errors);
    return c && ((f) => c(ipOf(f.downstream.remote)));
  }
  if (p.remote_ip) {
    const c = compileCidr(p.remote_ip, `${path}.remote_ip`, ctx.errors);
    return c && ((f) => c(f.remoteIp ?? ipOf(f.downstream.remote)));
  }
  if (p.header) return headerRule(p.header, `${path}.header`, ctx);
  if (p.url_path) return pathRule(p.url_path, `${path}.url_path`, ctx);
  if (p.metadata) return metadataRule(p.metadata, `${path}.metadata`, ctx);
  if (p.filter_state) return filterStateRule(p.filter_state, `${path}.filter_state`, ctx);
  ctx.errors.push({ path, message: 'a principal needs one rule (any, and_ids, or_ids, not_id, authenticated, source_ip, direct_remote_ip, remote_ip, header, url_path, metadata, filter_state)' });
  return null;
}

/**
 * `authenticated`: a TLS peer with a verified certificate. With principal_name, some URI SAN
 * (SPIFFE ID, as Istio issues) must match, else some DNS SAN, else the subject; without it,
 * any certificate-bearing peer matches.
 */
function authenticatedRule(a: Obj, path: string, ctx: Ctx): Rule | null {
  if (!a.principal_name) return (f) => identityOf(f) !== null;
  const m = compileStringMatcher(a.principal_name, `${path}.principal_name`, ctx.errors);
  if (!m) return null;
  return (f) => {
    const id = identityOf(f);
    if (!id) return false;
    for (const u of id.uriSans) if (m(u)) return true;
    for (const d of id.dnsSans) if (m(d)) return true;
    return id.subject !== '' && m(id.subject);
  };
}
