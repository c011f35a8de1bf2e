import { durationMs } from '../config/values.js';
import type { FieldError } from '../errors.js';
import { xxHash64String, type Hash64 } from '../upstream/lb/hash.js';
import { LbContext } from '../upstream/lb/context.js';
import { MetadataMatch } from '../upstream/subset/metadata_match.js';
import type { HeaderLookup } from './header_matcher.js';
import type { ForwardAction } from './http_route_table.js';

type Obj = Record<string, any>;

/**
 * One compiled `config.route.v3.RouteAction.HashPolicy`. A policy that finds no key adds
 * nothing; `terminal` stops the walk once some hash exists (Envoy's semantics).
 */
export type HttpHashPolicy =
  | { readonly kind: 'header'; readonly name: string; readonly rewrite: { readonly re: RegExp; readonly substitution: string } | null; readonly terminal: boolean }
  | {
      readonly kind: 'cookie';
      readonly name: string;
      /** null: never generated; 0: a session cookie (no Max-Age). */
      readonly ttlSec: number | null;
      /** `; Max-Age=..; Path=..; attrs; HttpOnly`, built once. */
      readonly suffix: string;
      readonly terminal: boolean;
    }
  | { readonly kind: 'source_ip'; readonly terminal: boolean }
  | { readonly kind: 'query'; readonly name: string; readonly terminal: boolean };

/** `weighted_clusters` whose entries carry their own `metadata_match`: picked by index here. */
export interface WeightedSubsets {
  readonly names: readonly string[];
  /** Running weight totals, as the shared cluster picker keeps them. */
  readonly upTo: readonly number[];
  readonly total: number;
  /** Per entry: the route's criteria merged with the entry's (the entry's values win). */
  readonly matches: ReadonlyArray<MetadataMatch | null>;
}

/** What a forward action tells the load balancer; null on the action when it says nothing. */
export interface RouteLb {
  readonly hash: readonly HttpHashPolicy[] | null;
  /** The route's `metadata_match` (`envoy.lb`). */
  readonly metadataMatch: MetadataMatch | null;
  readonly weighted: WeightedSubsets | null;
}

/**
 * The LB input of one HTTP request: built when the route is chosen and reused for every try
 * (a host reselect for a retry host predicate only bumps `attempt`), plus the cookie a `ttl` cookie policy generated, which the
 * response must carry back.
 */
export class HttpLbContext extends LbContext {
  /** A full `set-cookie` value, or null. */
  setCookie: string | null = null;
}

// Cookie names are RFC 6265 tokens; values and paths must not break the header.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SAFE_ATTR = /^[^\r\n\0;]*$/;

function compileOne(p: Obj, path: string, errors: FieldError[]): HttpHashPolicy | null {
  const terminal = p.terminal === true;
  const set = ['header', 'cookie', 'connection_properties', 'query_parameter', 'filter_state'].filter((k) => p[k] !== undefined && p[k] !== null);
  if (set.length !== 1) {
    errors.push({ path, message: set.length ? `sets ${set.join(' and ')}; exactly one policy per entry` : 'needs header, cookie, connection_properties or query_parameter' });
    return null;
  }
  const h = p.header as Obj | undefined;
  if (h) {
    const name = String(h.header_name ?? '').toLowerCase();
    if (!name) {
      errors.push({ path: `${path}.header.header_name`, message: 'is required' });
      return null;
    }
    // HTTP/1 requests have no pseudo-headers to look up; :authority is Host in both codecs.
    if (name.startsWith(':') && name !== ':authority') {
      errors.push({ path: `${path}.header.header_name`, message: `pseudo-header "${name}" is not supported (":authority" is)` });
      return null;
    }
    let rewrite: { re: RegExp; substitution: string } | null = null;
    const rr = h.regex_rewrite as Obj | undefined;
    if (rr) {
      try {
        // RE2 substitutions use \1; JavaScript's replace uses $1.
        const substitution = String(rr.substitution ?? '').replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
        rewrite = { re: new RegExp(String(rr.pattern?.regex ?? ''), 'g'), substitution };
      } catch (err) {
        errors.push({ path: `${path}.header.regex_rewrite.pattern.regex`, message: `invalid regex: ${(err as Error).message}` });
        return null;
      }
    }
    // `:authority` is how Envoy names Host; both codecs answer to `host`.
    return { kind: 'header', name: name === ':authority' ? 'host' : name, rewrite, terminal };
  }
  const c = p.cookie as Obj | undefined;
  if (c) {
    const start = errors.length;
    const name = String(c.name ?? '');
    if (!TOKEN.test(name)) errors.push({ path: `${path}.cookie.name`, message: name ? `"${name}" is not a valid cookie name` : 'is required' });
    const ttlMs = c.ttl === undefined || c.ttl === null ? null : durationMs(c.ttl);
    const cpath = String(c.path ?? '');
    if (!SAFE_ATTR.test(cpath)) errors.push({ path: `${path}.cookie.path`, message: 'must not contain ";", CR, LF or NUL' });
    let suffix = '';
    if (ttlMs) suffix += `; Max-Age=${Math.floor(ttlMs / 1000)}`;
    if (cpath) suffix += `; Path=${cpath}`;
    ((c.attributes ?? []) as Obj[]).forEach((a, i) => {
      const an = String(a.name ?? '');
      const av = String(a.value ?? '');
      if (!TOKEN.test(an)) errors.push({ path: `${path}.cookie.attributes[${i}].name`, message: `"${an}" is not a valid attribute name` });
      else if (!SAFE_ATTR.test(av)) errors.push({ path: `${path}.cookie.attributes[${i}].value`, message: 'must not contain ";", CR, LF or NUL' });
      else suffix += av ? `; ${an}=${av}` : `; ${an}`;
    });
    suffix += '; HttpOnly';
    if (errors.length > start) return null;
    return { kind: 'cookie', name, ttlSec: ttlMs === null ? null : Math.floor((ttlMs ?? 0) / 1000), suffix, terminal };
  }
  const cp = p.connection_properties as Obj | undefined;
  if (cp) {
    if (cp.source_ip !== true) {
      errors.push({ path: `${path}.connection_properties.source_ip`, message: 'must be true' });
      return null;
    }
    return { kind: 'source_ip', terminal };
  }
  const q = p.query_parameter as Obj | undefined;
  if (q) {
    const name = String(q.name ?? '');
    if (!name) {
      errors.push({ path: `${path}.query_parameter.name`, message: 'is required' });
      return null;
    }
    return { kind: 'query', name, terminal };
  }
  errors.push({ path: `${path}.filter_state`, message: 'is not supported (Strait keeps no filter state)' });
  return null;
}

/** `hash_policy` of a route action; null when absent or empty. */
export function compileHashPolicies(list: unknown, path: string, errors: FieldError[]): readonly HttpHashPolicy[] | null {
  const items = (list ?? []) as Obj[];
  if (!Array.isArray(items) || items.length === 0) return null;
  const start = errors.length;
  const out = items.map((p, i) => compileOne(p ?? {}, `${path}[${i}]`, errors));
  if (errors.length > start) return null;
  return Object.freeze(out as HttpHashPolicy[]);
}

/**
 * The LB part of a route action: `hash_policy`, `metadata_match` and the `metadata_match` of
 * weighted cluster entries. Returns the action with those entries' metadata_match removed (the
 * shared cluster picker refuses the field) so the caller compiles the specifier from it.
 */
export function compileRouteLb(a: Obj, path: string, errors: FieldError[]): { lb: RouteLb | null; action: Obj } {
  const hash = compileHashPolicies(a.hash_policy, `${path}.hash_policy`, errors);
  const metadataMatch = MetadataMatch.fromMetadata(a.metadata_match as Obj | undefined);
  let action = a;
  let weighted: WeightedSubsets | null = null;
  const wc = a.weighted_clusters as Obj | undefined;
  const entries = (wc?.clusters ?? []) as Obj[];
  if (typeof a.cluster !== 'string' && entries.some((c) => c?.metadata_match !== undefined && c?.metadata_match !== null)) {
    const names: string[] = [];
    const upTo: number[] = [];
    const matches: Array<MetadataMatch | null> = [];
    let total = 0;
    const stripped = entries.map((c) => {
      const { metadata_match: md, ...rest } = c;
      const w = Number(c.weight ?? 0);
      if (w > 0) {
        total += w;
        names.push(String(c.name ?? ''));
        upTo.push(total);
        const own = MetadataMatch.fromMetadata(md as Obj | undefined);
        matches.push(metadataMatch ? metadataMatch.mergedWith(own) : own);
      }
      return rest;
    });
    action = { ...a, weighted_clusters: { ...wc, clusters: stripped } };
    weighted = Object.freeze({ names: Object.freeze(names), upTo: Object.freeze(upTo), total, matches: Object.freeze(matches) });
  }
  if (!hash && !metadataMatch && !weighted) return { lb: null, action };
  return { lb: Object.freeze({ hash, metadataMatch, weighted }), action };
}

const tmp: Hash64 = { hi: 0, lo: 0 };

/** The value of cookie `name` in a Cookie header (quotes stripped), or ''. */
function cookieValue(header: string, name: string): string {
  let i = 0;
  const n = header.length;
  while (i < n) {
    while (i < n && (header.charCodeAt(i) === 0x20 || header.charCodeAt(i) === 0x3b)) i++;
    let end = header.indexOf(';', i);
    if (end === -1) end = n;
    const eq = header.indexOf('=', i);
    if (eq === -1 || eq > end) {
      // A piece without '=' (`flag; sticky=abc`) names no cookie: skip it.
      i = end + 1;
      continue;
    }
    if (eq - i === name.length && header.startsWith(name, i)) {
      let s = eq + 1;
      let e = end;
      while (e > s && header.charCodeAt(e - 1) === 0x20) e--;
      if (e - s >= 2 && header.charCodeAt(s) === 0x22 && header.charCodeAt(e - 1) === 0x22) {
        s++;
        e--;
      }
      return header.slice(s, e);
    }
    i = end + 1;
  }
  return '';
}

/** The first value of query parameter `name` in a request target (undecoded, as Envoy hashes it), or null. */
function queryValue(target: string, name: string): string | null {
  let i = target.indexOf('?');
  if (i === -1) return null;
  i++;
  const n = target.length;
  while (i <= n) {
    let end = target.indexOf('&', i);
    if (end === -1) end = n;
    const eq = target.indexOf('=', i);
    const keyEnd = eq !== -1 && eq < end ? eq : end;
    if (keyEnd - i === name.length && target.startsWith(name, i)) return keyEnd === end ? '' : target.slice(keyEnd + 1, end);
    i = end + 1;
  }
  return null;
}

/**
 * Fills `ctx` for one request from the route's LB config: hash policies folded in order, the
 * metadata_match of the route or of the picked weighted entry. Returns the cluster name picked
 * by the weighted subsets when they decide it, else null (the caller's picker does).
 * `target` is path plus query; `remoteIp` is '' when the client is not on IP (a unix socket).
 */
export function fillRouteLb(lb: RouteLb, ctx: HttpLbContext, header: HeaderLookup, target: string, remoteIp: string, remotePort: number, random = Math.random()): string | null {
  ctx.reset();
  ctx.setCookie = null;
  ctx.metadataMatch = lb.metadataMatch;
  let picked: string | null = null;
  const w = lb.weighted;
  if (w) {
    const r = random * w.total;
    let i = 0;
    while (i < w.names.length - 1 && r >= w.upTo[i]!) i++;
    picked = w.names[i]!;
    ctx.metadataMatch = w.matches[i]!;
  }
  const hp = lb.hash;
  if (!hp) return picked;
  for (let i = 0; i < hp.length; i++) {
    const p = hp[i]!;
    switch (p.kind) {
      case 'header': {
        const v = header(p.name);
        if (v !== undefined) {
          if (p.rewrite) {
            p.rewrite.re.lastIndex = 0;
            ctx.addString(v.replace(p.rewrite.re, p.rewrite.substitution));
          } else ctx.addString(v);
        }
        break;
      }
      case 'cookie': {
        const v = cookieValue(header('cookie') ?? '', p.name);
        if (v) ctx.addString(v);
        else if (p.ttlSec !== null) {
          // Envoy derives the new value from the client's address, so every request of one
          // connection gets the same cookie until the client starts sending it.
          xxHash64String(remoteIp ? `${remoteIp}:${remotePort}` : String(Math.random()), tmp);
          const value = tmp.hi.toString(16).padStart(8, '0') + tmp.lo.toString(16).padStart(8, '0');
          ctx.setCookie = `${p.name}="${value}"${p.suffix}`;
          ctx.addString(value);
        }
        break;
      }
      case 'source_ip':
        if (remoteIp) ctx.addString(remoteIp);
        break;
      case 'query': {
        const v = queryValue(target, p.name);
        if (v !== null) ctx.addString(v);
        break;
      }
    }
    if (p.terminal && ctx.hasHash) break;
  }
  return picked;
}

/**
 * The cluster for a forward action, shared by the HTTP/1 and HTTP/2 sessions: `cluster_header`,
 * a weighted entry with its own metadata_match, or the action's picker. When the action hashes
 * or selects a subset, `self.lb` (allocated once per request object) is filled for every try.
 */
export function pickRouteCluster(a: ForwardAction, self: { lb: HttpLbContext | null }, header: HeaderLookup, target: string, remoteIp: string, remotePort: number): string {
  let picked: string | null = null;
  if (a.lb) picked = fillRouteLb(a.lb, (self.lb ??= new HttpLbContext()), header, target, remoteIp, remotePort);
  else if (self.lb) self.lb.reset().setCookie = null;
  if (a.clusterHeader) return header(a.clusterHeader) ?? '';
  return picked ?? a.clusters!.pick();
}

