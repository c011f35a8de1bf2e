import net from 'node:net';
import type { FieldError } from '../errors.js';
import { compileStringMatcher, type StringMatch } from '../router/string_matcher.js';

type Obj = Record<string, any>;

export type SanType = 'DNS' | 'URI' | 'EMAIL' | 'IP_ADDRESS';

/** One subject alternative name of a peer certificate. */
export interface San {
  readonly type: SanType | 'OTHER';
  readonly value: string;
}

/** A compiled `SubjectAltNameMatcher`: `type` null means "any type" (the deprecated match_subject_alt_names). */
export interface SanMatcher {
  readonly type: SanType | null;
  readonly match: StringMatch;
  /** The exact value when the matcher is `exact` (DNS wildcard certificates match against it). */
  readonly exact: string | null;
}

const NODE_SAN_TYPES: Record<string, SanType> = { DNS: 'DNS', URI: 'URI', email: 'EMAIL', 'IP Address': 'IP_ADDRESS' };

/**
 * Parses Node's `subjectaltname` text (`DNS:a, URI:spiffe://x, IP Address:10.0.0.1`). Node
 * quotes a value as a JSON string when it holds a comma or a quote, so split on that grammar
 * rather than on every ", ".
 */
export function parseSubjectAltName(text: string | undefined): San[] {
  const out: San[] = [];
  if (!text) return out;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const kind = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      // A JSON string literal: find its closing quote, skipping escapes.
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        value = text.slice(colon + 2, j);
      }
      next = text.indexOf(', ', j);
    } else {
      next = text.indexOf(', ', colon);
      value = text.slice(colon + 1, next < 0 ? text.length : next);
    }
    out.push({ type: NODE_SAN_TYPES[kind] ?? 'OTHER', value });
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}

/** RFC 6125 wildcard: `*.example.com` covers exactly one extra leftmost label. */
function dnsWildcardMatches(pattern: string, name: string): boolean {
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(1).toLowerCase();
  const n = name.toLowerCase();
  if (!n.endsWith(suffix)) return false;
  const label = n.slice(0, n.length - suffix.length);
  return label.length > 0 && !label.includes('.');
}

export function compileSanMatchers(vc: Obj, path: string, errors: FieldError[]): SanMatcher[] {
  const out: SanMatcher[] = [];
  ((vc.match_typed_subject_alt_names ?? []) as Obj[]).forEach((m, i) => {
    const p = `${path}.match_typed_subject_alt_names[${i}]`;
    const type = String(m.san_type ?? 'SAN_TYPE_UNSPECIFIED');
    if (type === 'OTHER_NAME' || type === 'SAN_TYPE_UNSPECIFIED') {
      errors.push({ path: `${p}.san_type`, message: `${type} is not supported (DNS, URI, EMAIL, IP_ADDRESS)` });
      return;
    }
    const match = compileStringMatcher(m.matcher ?? {}, `${p}.matcher`, errors);
    if (match) out.push({ type: type as SanType, match, exact: typeof m.matcher?.exact === 'string' ? m.matcher.exact : null });
  });
  ((vc.match_subject_alt_names ?? []) as Obj[]).forEach((m, i) => {
    const match = compileStringMatcher(m, `${path}.match_subject_alt_names[${i}]`, errors);
    if (match) out.push({ type: null, match, exact: typeof m.exact === 'string' ? m.exact : null });
  });
  return out;
}

function normalizeIp(v: string): string {
  // Node prints IPv6 SANs in full form; compare canonical text.
  return net.isIPv6(v) ? new net.SocketAddress({ address: v, family: 'ipv6' }).address : v;
}

/** Envoy's rule: the certificate passes when any of its SANs satisfies any matcher. */
export function sansMatch(matchers: readonly SanMatcher[], sans: readonly San[]): boolean {
  for (const m of matchers) {
    for (const s of sans) {
      if (s.type === 'OTHER') continue;
      if (m.type !== null && m.type !== s.type) continue;
      const value = s.type === 'IP_ADDRESS' ? normalizeIp(s.value) : s.value;
      if (m.match(value)) return true;
      // A wildcard certificate (`*.ns.svc`) satisfies an exact DNS matcher for a name under it.
      if (s.type === 'DNS' && m.exact !== null && dnsWildcardMatches(s.value, m.exact)) return true;
    }
  }
  return false;
}
