import net from 'node:net';
import type { FieldError } from '../errors.js';
import type { PeerAddress } from '../io/engine.js';

type Obj = Record<string, any>;

interface Cidr {
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

function parseCidrs(list: Obj[] | undefined, path: string, errors: FieldError[]): Cidr[] {
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

function inCidr(addr: string, c: Cidr): boolean {
  let ip = ipBits(addr);
  if (!ip) return false;
  // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
  if (ip.family === 6 && c.family === 4 && ip.bits >> 32n === 0xffffn) ip = { family: 4, bits: ip.bits & 0xffffffffn };
  if (ip.family !== c.family) return false;
  const width = c.family === 6 ? 128 : 32;
  const shift = BigInt(width - c.len);
  return (ip.bits >> shift) << shift === c.bits;
}

/** Criteria that need TLS/HTTP inspection, which lands with TLS; refused until then. */
const NEEDS_INSPECTION = ['server_names', 'transport_protocol', 'application_protocols'] as const;

export function compileMatch(m: Obj | undefined, path: string, errors: FieldError[]): ChainMatcher {
  m ??= {};
  for (const f of NEEDS_INSPECTION) {
    const v = m[f];
    if (v !== undefined && !(Array.isArray(v) && v.length === 0) && v !== '' && v !== 'raw_buffer') {
      errors.push({ path: `${path}.${f}`, message: 'matching on TLS/ALPN properties is not supported yet' });
    }
  }
  if (m.direct_source_prefix_ranges?.length) errors.push({ path: `${path}.direct_source_prefix_ranges`, message: 'is not supported yet' });
  if (m.source_type && m.source_type !== 'ANY') errors.push({ path: `${path}.source_type`, message: 'is not supported yet' });
  const destinationPort = m.destination_port === undefined ? null : Number(m.destination_port);
  const prefixRanges = parseCidrs(m.prefix_ranges, `${path}.prefix_ranges`, errors);
  const sourcePrefixRanges = parseCidrs(m.source_prefix_ranges, `${path}.source_prefix_ranges`, errors);
  const sourcePorts = (m.source_ports ?? []).map(Number);
  const key = JSON.stringify([destinationPort, m.prefix_ranges ?? [], m.source_prefix_ranges ?? [], [...sourcePorts].sort()]);
  return { destinationPort, prefixRanges, sourcePrefixRanges, sourcePorts, key };
}

/**
 * Envoy's selection order, simplified to the criteria above: destination port, then the longest
 * destination prefix, then the longest source prefix, then source port. Returns the index of the
 * best matching chain, or -1.
 */
export function selectChain(matchers: readonly ChainMatcher[], local: PeerAddress, remote: PeerAddress): number {
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
    let srcLen = 0;
    if (m.sourcePrefixRanges.length) {
      srcLen = -1;
      for (const c of m.sourcePrefixRanges) if (inCidr(remote.address, c) && c.len >= srcLen) srcLen = c.len;
      if (srcLen < 0) continue;
    }
    if (m.sourcePorts.length && !m.sourcePorts.includes(remote.port)) continue;
    // Pack the precedence into one number: each criterion dominates the ones after it.
    const score =
      (m.destinationPort !== null ? 1 : 0) * 1e9 +
      (m.prefixRanges.length ? dstLen + 1 : 0) * 1e6 +
      (m.sourcePrefixRanges.length ? srcLen + 1 : 0) * 1e3 +
      (m.sourcePorts.length ? 1 : 0);
    if (score > bestScore) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}
