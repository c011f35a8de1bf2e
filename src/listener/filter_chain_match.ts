import net from 'node:net';
import type { FieldError } from '../errors.js';
import type { PeerAddress } from '../io/engine.js';

type Obj = Record<string, any>;

export interface Cidr {
  readonly family: 4 | 6;
  readonly bits: bigint;
  readonly len: number;
}

/** A compiled filter_chain_match: the criteria Strait can evaluate on a new connection. */
export interface ChainMatcher {
  readonly destinationPort: number | null;
  readonly prefixRanges: readonly Cidr[];
  readonly sourcePrefixRanges: readonly Cidr[];
  readonly sourcePorts: readonly number[];
  /** Exact names and `*.suffix` wildcards (stored as `.suffix`), lower case; empty = any. */
  readonly serverNames: readonly string[];
  /** `tls`, `raw_buffer`, or null for any. */
  readonly transportProtocol: string | null;
  readonly applicationProtocols: readonly string[];
  /** Key for detecting two chains with the same rules (Envoy rejects that). */
  readonly key: string;
}

function ipBits(ip: string): { family: 4 | 6; bits: bigint } | null {
  const fam = net.isIP(ip);
  if (fam === 4) return { family: 4, bits: ip.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n) };
  if (fam === 6) {
    // Expand '::' and embedded IPv4, then fold the eight groups.
    let s = ip;
    const v4 = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
    if (v4) {
      const b = ipBits(v4[1]!)!.bits;
      s = s.slice(0, -v4[1]!.length) + `${(b >> 16n).toString(16)}:${(b & 0xffffn).toString(16)}`;
    }
    const [head, tail] = s.split('::') as [string, string | undefined];
    const h = head ? head.split(':') : [];
    const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    return { family: 6, bits: groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g || '0', 16)), 0n) };
  }
  return null;
}

export function parseCidrs(list: Obj[] | undefined, path: string, errors: FieldError[]): Cidr[] {
  return (list ?? []).flatMap((r, i) => {
    const ip = ipBits(String(r.address_prefix ?? ''));
    const width = ip?.family === 6 ? 128 : 32;
    const len = r.prefix_len === undefined ? width : Number(r.prefix_len);
    if (!ip || len > width) {
      errors.push({ path: `${path}[${i}]`, message: `invalid CIDR ${r.address_prefix}/${r.prefix_len ?? ''}` });
      return [];
    }
    const shift = BigInt(width - len);
    return [{ family: ip.family, bits: (ip.bits >> shift) << shift, len }];
  });
}

export function inCidr(addr: string, c: Cidr): boolean {
  let ip = ipBits(addr);
  if (!ip) return false;
  // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
  if (ip.family === 6 && c.family === 4 && ip.bits >> 32n === 0xffffn) ip = { family: 4, bits: ip.bits & 0xffffffffn };
  if (ip.family !== c.family) return false;
  const width = c.family === 6 ? 128 : 32;
  const shift = BigInt(width - c.len);
  return (ip.bits >> shift) << shift === c.bits;
}

/** What the listener learnt about a connection before choosing a chain (tls_inspector). */
export interface ConnectionFacts {
  readonly transport: string;
  readonly sni: string;
  readonly alpn: readonly string[];
}

const NO_FACTS: ConnectionFacts = { transport: 'raw_buffer', sni: '', alpn: [] };

export function compileMatch(m: Obj | undefined, path: string, errors: FieldError[]): ChainMatcher {
  m ??= {};
  const serverNames = ((m.server_names ?? []) as string[]).map((n, i) => {
    const name = String(n).toLowerCase();
    if (name.startsWith('*.')) return name.slice(1);
    if (name.includes('*')) errors.push({ path: `${path}.server_names[${i}]`, message: 'a wildcard must be a leading "*." label' });
    return name;
  });
  const transportProtocol = m.transport_protocol ? String(m.transport_protocol) : null;
  const applicationProtocols = ((m.application_protocols ?? []) as string[]).map(String);
  if (m.direct_source_prefix_ranges?.length) errors.push({ path: `${path}.direct_source_prefix_ranges`, message: 'is not supported yet' });
  if (m.source_type && m.source_type !== 'ANY') errors.push({ path: `${path}.source_type`, message: 'is not supported yet' });
  const destinationPort = m.destination_port === undefined ? null : Number(m.destination_port);
  const prefixRanges = parseCidrs(m.prefix_ranges, `${path}.prefix_ranges`, errors);
  const sourcePrefixRanges = parseCidrs(m.source_prefix_ranges, `${path}.source_prefix_ranges`, errors);
  const sourcePorts = (m.source_ports ?? []).map(Number);
  const key = JSON.stringify([
    destinationPort,
    m.prefix_ranges ?? [],
    m.source_prefix_ranges ?? [],
    [...sourcePorts].sort(),
    [...serverNames].sort(),
    transportProtocol,
    [...applicationProtocols].sort(),
  ]);
  return { destinationPort, prefixRanges, sourcePrefixRanges, sourcePorts, serverNames, transportProtocol, applicationProtocols, key };
}

/** True when a chain's criteria need the ClientHello (Envoy injects a tls_inspector for these). */
export function needsInspection(m: ChainMatcher): boolean {
  return m.serverNames.length > 0 || m.transportProtocol === 'tls' || m.applicationProtocols.length > 0;
}

/** 0 = no match; exact names outrank wildcards, longer wildcard suffixes outrank shorter ones. */
function sniScore(names: readonly string[], sni: string): number {
  let best = 0;
  for (const n of names) {
    if (n === sni) return 1000; // above any wildcard suffix (names are at most 253 bytes)
    if (n.startsWith('.') && sni.endsWith(n) && sni.length > n.length && n.length > best) best = n.length;
  }
  return best;
}

/**
 * Envoy's selection order, simplified to the criteria above: destination port, then the longest
 * destination prefix, then server name (exact before the longest wildcard), transport
 * protocol, application protocol, the longest source prefix, source port. Each criterion
 * dominates the ones after it. Returns the index of the best matching chain, or -1.
 */
export function selectChain(matchers: readonly ChainMatcher[], local: PeerAddress, remote: PeerAddress, facts: ConnectionFacts = NO_FACTS): number {
  let best = -1;
  let bestScore = -1;
  for (let i = 0; i < matchers.length; i++) {
    const m = matchers[i]!;
    if (m.destinationPort !== null && m.destinationPort !== local.port) continue;
    let dstLen = 0;
    if (m.prefixRanges.length) {
      dstLen = -1;
      for (const c of m.prefixRanges) if (inCidr(local.address, c) && c.len >= dstLen) dstLen = c.len;
      if (dstLen < 0) continue;
    }
    let sni = 0;
    if (m.serverNames.length) {
      sni = sniScore(m.serverNames, facts.sni);
      if (sni === 0) continue;
    }
    if (m.transportProtocol !== null && m.transportProtocol !== facts.transport) continue;
    if (m.applicationProtocols.length && !m.applicationProtocols.some((p) => facts.alpn.includes(p))) continue;
    let srcLen = 0;
    if (m.sourcePrefixRanges.length) {
      srcLen = -1;
      for (const c of m.sourcePrefixRanges) if (inCidr(remote.address, c) && c.len >= srcLen) srcLen = c.len;
      if (srcLen < 0) continue;
    }
    if (m.sourcePorts.length && !m.sourcePorts.includes(remote.port)) continue;
    // Pack the precedence into one number (30 bits): each criterion dominates the ones after it.
    let score = m.destinationPort !== null ? 1 : 0;
    score = score * 256 + (m.prefixRanges.length ? dstLen + 1 : 0);
    score = score * 1024 + sni;
    score = score * 2 + (m.transportProtocol !== null ? 1 : 0);
    score = score * 2 + (m.applicationProtocols.length ? 1 : 0);
    score = score * 256 + (m.sourcePrefixRanges.length ? srcLen + 1 : 0);
    score = score * 2 + (m.sourcePorts.length ? 1 : 0);
    if (score > bestScore) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}

