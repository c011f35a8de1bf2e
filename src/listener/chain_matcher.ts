/**
 * A listener's `filter_chain_matcher`: the xDS matching API (`xds.type.matcher.v3.Matcher`)
 * choosing a filter chain by name, which replaces each chain's `filter_chain_match` when set.
 * Ambient waypoints and newer Envoy configurations select chains this way (destination IP, then
 * port, then application protocol trees).
 *
 * Compiled once per listener configuration into closures; a connection runs the tree once.
 * Evaluation follows the xDS matcher rules:
 * - a `matcher_list` tries its matchers in order and takes the first whose predicate holds and
 *   whose `on_match` yields an action (a nested matcher that matches nothing lets the list go on);
 * - a `matcher_tree` looks its input up in an exact map, or in a prefix map longest prefix first,
 *   or in an IPMatcher most specific range first;
 * - whatever finds nothing falls to its own `on_no_match`, and a nested matcher without one
 *   counts as not matched at the level above;
 * - an input without a value (no SNI, no ALPN, a non-IP address) matches no key and no predicate.
 */
import type { FieldError } from '../errors.js';
import type { PeerAddress } from '../io/engine.js';
import { compileStringMatcher, type StringMatch } from '../router/string_matcher.js';
import { inCidr, parseCidrs, type Cidr, type ConnectionFacts } from './filter_chain_match.js';

type Obj = Record<string, any>;

/** What the inputs read: the connection's addresses and what the listener filters found. */
export interface MatchConnection {
  readonly local: PeerAddress;
  readonly remote: PeerAddress;
  /** The peer of the socket itself: differs from `remote` once proxy_protocol replaced it. */
  readonly directRemote: PeerAddress;
  readonly facts: ConnectionFacts;
}

/** An input's value for a connection; null = no value (it matches nothing). */
type Input = (c: MatchConnection) => string | null;
/** The chain name an action names, or null: no action came out of this (sub)tree. */
type Evaluate = (c: MatchConnection) => string | null;

const NETWORK_INPUT = 'type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.';
const STRING_VALUE = 'type.googleapis.com/google.protobuf.StringValue';
const IP_MATCHER = 'type.googleapis.com/xds.type.matcher.v3.IPMatcher';

const ip = (a: PeerAddress): string | null => (a.family === 'unix' ? null : a.address);

function isLocalSource(c: MatchConnection): boolean {
  const r = c.remote.address;
  if (c.remote.family === 'unix') return true;
  return r === c.local.address || r === '::1' || r.startsWith('127.') || r.startsWith('::ffff:127.');
}

/** The network inputs Envoy offers for filter chain matching, by type name. */
const INPUTS: Record<string, { read: Input; inspects?: boolean }> = {
  DestinationIPInput: { read: (c) => ip(c.local) },
  DestinationPortInput: { read: (c) => (c.local.family === 'unix' ? null : String(c.local.port)) },
  SourceIPInput: { read: (c) => ip(c.remote) },
  SourcePortInput: { read: (c) => (c.remote.family === 'unix' ? null : String(c.remote.port)) },
  DirectSourceIPInput: { read: (c) => ip(c.directRemote) },
  // Envoy's value is "local" for a peer on this host and nothing otherwise.
  SourceTypeInput: { read: (c) => (isLocalSource(c) ? 'local' : null) },
  ServerNameInput: { read: (c) => c.facts.sni || null, inspects: true },
  TransportProtocolInput: { read: (c) => c.facts.transport, inspects: true },
  // Envoy joins the protocols quoted, comma-separated: 'h2','http/1.1'.
  ApplicationProtocolInput: { read: (c) => (c.facts.alpn.length ? c.facts.alpn.map((p) => `'${p}'`).join(',') : null), inspects: true },
};

export interface CompiledChainMatcher {
  readonly evaluate: Evaluate;
  /** Every chain name an action names, to check against the listener's chains. */
  readonly actions: ReadonlySet<string>;
  /** Some input reads what only an inspector learns (SNI, transport, ALPN). */
  readonly inspects: boolean;
}

interface Ctx {
  readonly errors: FieldError[];
  readonly actions: Set<string>;
  inspects: boolean;
}

/** Compiles a `filter_chain_matcher`; errors name the field path. */
export function compileChainMatcher(m: Obj, path: string, errors: FieldError[]): CompiledChainMatcher {
  const ctx: Ctx = { errors, actions: new Set(), inspects: false };
  const evaluate = matcher(m, path, ctx) ?? (() => null);
  return { evaluate, actions: ctx.actions, inspects: ctx.inspects };
}

function matcher(m: Obj, path: string, ctx: Ctx): Evaluate | null {
  const noMatch = m.on_no_match ? onMatch(m.on_no_match, `${path}.on_no_match`, ctx) : null;
  let body: Evaluate | null = null;
  if (m.matcher_list && m.matcher_tree) ctx.errors.push({ path, message: 'sets both matcher_list and matcher_tree' });
  else if (m.matcher_list) body = list(m.matcher_list, `${path}.matcher_list`, ctx);
  else if (m.matcher_tree) body = tree(m.matcher_tree, `${path}.matcher_tree`, ctx);
  if (!body) return noMatch;
  if (!noMatch) return body;
  return (c) => body!(c) ?? noMatch(c);
}

function onMatch(o: Obj, path: string, ctx: Ctx): Evaluate | null {
  if (o.keep_matching) ctx.errors.push({ path: `${path}.keep_matching`, message: 'is not supported (a filter chain is chosen once)' });
  if (o.matcher) return matcher(o.matcher, `${path}.matcher`, ctx);
  const a = o.action as Obj | undefined;
  if (!a) {
    ctx.errors.push({ path, message: 'needs an action or a matcher' });
    return null;
  }
  const tc = (a.typed_config ?? {}) as Obj;
  if (tc['@type'] !== STRING_VALUE || typeof tc.value !== 'string') {
    ctx.errors.push({ path: `${path}.action.typed_config`, message: `a filter chain matcher's action must be a ${STRING_VALUE} naming a filter chain` });
    return null;
  }
  const name = tc.value;
  ctx.actions.add(name);
  return () => name;
}

function input(i: Obj | undefined, path: string, ctx: Ctx): Input | null {
  const url = String(i?.typed_config?.['@type'] ?? '');
  const known = url.startsWith(NETWORK_INPUT) ? INPUTS[url.slice(NETWORK_INPUT.length)] : undefined;
  if (!known) {
    ctx.errors.push({ path: `${path}.typed_config`, message: `unsupported input ${url || '(none)'}; supported: ${Object.keys(INPUTS).join(', ')}` });
    return null;
  }
  if (known.inspects) ctx.inspects = true;
  return known.read;
}

function tree(t: Obj, path: string, ctx: Ctx): Evaluate | null {
  const read = input(t.input, `${path}.input`, ctx);
  if (t.exact_match_map) {
    const map = new Map<string, Evaluate>();
    for (const [k, v] of Object.entries((t.exact_match_map.map ?? {}) as Obj)) {
      const e = onMatch(v as Obj, `${path}.exact_match_map.map["${k}"]`, ctx);
      if (e) map.set(k, e);
    }
    if (!read) return null;
    return (c) => {
      const v = read(c);
      const e = v === null ? undefined : map.get(v);
      return e ? e(c) : null;
    };
  }
  if (t.prefix_match_map) {
    const entries: Array<[string, Evaluate]> = [];
    for (const [k, v] of Object.entries((t.prefix_match_map.map ?? {}) as Obj)) {
      const e = onMatch(v as Obj, `${path}.prefix_match_map.map["${k}"]`, ctx);
      if (e) entries.push([k, e]);
    }
    // Longest prefix first; a shorter one is tried when the longer one's nested matcher finds nothing.
    entries.sort((a, b) => b[0].length - a[0].length);
    if (!read) return null;
    return (c) => {
      const v = read(c);
      if (v === null) return null;
      for (const [k, e] of entries) {
        if (!v.startsWith(k)) continue;
        const r = e(c);
        if (r !== null) return r;
      }
      return null;
    };
  }
  if (t.custom_match) {
    const tc = (t.custom_match.typed_config ?? {}) as Obj;
    if (tc['@type'] !== IP_MATCHER) {
      ctx.errors.push({ path: `${path}.custom_match.typed_config`, message: `unsupported custom matcher ${tc['@type'] ?? '(none)'}; supported: ${IP_MATCHER}` });
      return null;
    }
    const ranges = ipMatcher(tc, `${path}.custom_match.typed_config`, ctx);
    if (!read) return null;
    return (c) => {
      const v = read(c);
      return v === null ? null : ranges(v, c);
    };
  }
  ctx.errors.push({ path, message: 'needs exact_match_map, prefix_match_map or custom_match' });
  return null;
}

interface RangeEntry {
  readonly cidr: Cidr;
  readonly exclusive: boolean;
  readonly then: Evaluate;
}

/**
 * xds IPMatcher: the ranges holding the address, most specific first. The most specific one is
 * always tried; a less specific one only when it is not `exclusive` (an exclusive range gives way
 * to any longer one that holds the address, even one whose nested matcher then fails).
 */
function ipMatcher(tc: Obj, path: string, ctx: Ctx): (addr: string, c: MatchConnection) => string | null {
  const entries: RangeEntry[] = [];
  ((tc.range_matchers ?? []) as Obj[]).forEach((rm, i) => {
    const p = `${path}.range_matchers[${i}]`;
    if (!rm.ranges?.length) ctx.errors.push({ path: `${p}.ranges`, message: 'needs at least one CIDR range' });
    const cidrs = parseCidrs(rm.ranges, `${p}.ranges`, ctx.errors);
    const then = rm.on_match ? onMatch(rm.on_match, `${p}.on_match`, ctx) : null;
    if (!rm.on_match) ctx.errors.push({ path: `${p}.on_match`, message: 'is required' });
    if (then) for (const cidr of cidrs) entries.push({ cidr, exclusive: rm.exclusive === true, then });
  });
  entries.sort((a, b) => b.cidr.len - a.cidr.len);
  return (addr, c) => {
    let first = true;
    for (const e of entries) {
      if (!inCidr(addr, e.cidr)) continue;
      if (first || !e.exclusive) {
        const r = e.then(c);
        if (r !== null) return r;
      }
      first = false;
    }
    return null;
  };
}

type Predicate = (c: MatchConnection) => boolean;

function list(l: Obj, path: string, ctx: Ctx): Evaluate | null {
  const items: Array<[Predicate, Evaluate]> = [];
  ((l.matchers ?? []) as Obj[]).forEach((fm, i) => {
    const p = `${path}.matchers[${i}]`;
    const pred = fm.predicate ? predicate(fm.predicate, `${p}.predicate`, ctx) : null;
    if (!fm.predicate) ctx.errors.push({ path: `${p}.predicate`, message: 'is required' });
    const then = fm.on_match ? onMatch(fm.on_match, `${p}.on_match`, ctx) : null;
    if (!fm.on_match) ctx.errors.push({ path: `${p}.on_match`, message: 'is required' });
    if (pred && then) items.push([pred, then]);
  });
  if (!l.matchers?.length) ctx.errors.push({ path: `${path}.matchers`, message: 'needs at least one matcher' });
  return (c) => {
    for (const [pred, then] of items) {
      if (!pred(c)) continue;
      const r = then(c);
      if (r !== null) return r;
    }
    return null;
  };
}

function predicate(p: Obj, path: string, ctx: Ctx): Predicate | null {
  if (p.single_predicate) {
    const sp = p.single_predicate as Obj;
    const read = input(sp.input, `${path}.single_predicate.input`, ctx);
    let match: StringMatch | null = null;
    if (sp.value_match) match = compileStringMatcher(sp.value_match, `${path}.single_predicate.value_match`, ctx.errors);
    else if (sp.custom_match) {
      const tc = (sp.custom_match.typed_config ?? {}) as Obj;
      ctx.errors.push({ path: `${path}.single_predicate.custom_match.typed_config`, message: `unsupported custom predicate ${tc['@type'] ?? '(none)'} (value_match is supported)` });
    } else ctx.errors.push({ path: `${path}.single_predicate`, message: 'needs value_match' });
    if (!read || !match) return null;
    const m = match;
    return (c) => {
      const v = read(c);
      return v !== null && m(v);
    };
  }
  const several = (key: 'or_matcher' | 'and_matcher'): Predicate[] | null => {
    const ps = ((p[key].predicate ?? []) as Obj[]).map((q, i) => predicate(q, `${path}.${key}.predicate[${i}]`, ctx));
    if (ps.length < 2) ctx.errors.push({ path: `${path}.${key}.predicate`, message: 'needs at least two predicates' });
    return ps.every((q) => q !== null) ? (ps as Predicate[]) : null;
  };
  if (p.or_matcher) {
    const ps = several('or_matcher');
    return ps && ((c) => ps.some((q) => q(c)));
  }
  if (p.and_matcher) {
    const ps = several('and_matcher');
    return ps && ((c) => ps.every((q) => q(c)));
  }
  if (p.not_matcher) {
    const q = predicate(p.not_matcher, `${path}.not_matcher`, ctx);
    return q && ((c) => !q(c));
  }
  ctx.errors.push({ path, message: 'needs single_predicate, or_matcher, and_matcher or not_matcher' });
  return null;
}
