/**
 * `envoy.filters.listener.proxy_protocol`: the connection starts with a PROXY protocol header
 * (v1 text or v2 binary, HAProxy's spec) naming the client and the address it meant to reach;
 * those become the connection's remote and local address, for chain matching and ORIGINAL_DST
 * clusters. Strait's explicit-addressing mode uses it: an app's SDK connects to the sidecar's
 * unix socket and carries the original destination in a v2 header (src/sdk/outbound.ts).
 */
import net from 'node:net';
import type { FieldError } from '../errors.js';
import type { PeerAddress } from '../io/engine.js';

export const PROXY_PROTOCOL_FILTER = 'envoy.filters.listener.proxy_protocol';
export const PROXY_PROTOCOL_TYPE = 'type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol';

export interface ProxyProtocolSpec {
  /** allow_requests_without_proxy_protocol: a connection without a header goes on unchanged. */
  readonly allowWithout: boolean;
  /** disallowed_versions: headers of these versions close the connection. */
  readonly allowV1: boolean;
  readonly allowV2: boolean;
}

/** The v2 signature: \r\n\r\n\0\r\nQUIT\n. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ');
/** v1: at most 107 bytes including CRLF (the spec's bound). */
const V1_MAX = 107;
/** v2: a 16-byte fixed part and a 16-bit length; we never buffer more than this. */
const V2_MAX = 16 + 65535;

export type ParseResult =
  | { readonly kind: 'need_more' }
  | { readonly kind: 'none' }
  | { readonly kind: 'error'; readonly version: 1 | 2; readonly message: string }
  /** `addresses` null: a LOCAL command / UNKNOWN family, the connection keeps its own addresses. */
  | { readonly kind: 'ok'; readonly version: 1 | 2; readonly consumed: number; readonly addresses: { readonly remote: PeerAddress; readonly local: PeerAddress } | null };

const NEED_MORE = Object.freeze({ kind: 'need_more' } as const);
const NONE = Object.freeze({ kind: 'none' } as const);

/** True while `head` is still a prefix of `sig` (or starts with it). */
function prefixOf(head: Buffer, sig: Buffer): boolean {
  const n = Math.min(head.length, sig.length);
  return head.subarray(0, n).equals(sig.subarray(0, n));
}

function v1(head: Buffer): ParseResult {
  const end = head.indexOf('\r\n');
  if (end < 0) return head.length >= V1_MAX ? { kind: 'error', version: 1, message: 'v1 header longer than 107 bytes' } : NEED_MORE;
  if (end + 2 > V1_MAX) return { kind: 'error', version: 1, message: 'v1 header longer than 107 bytes' };
  const parts = head.toString('latin1', 0, end).split(' ');
  const consumed = end + 2;
  if (parts[1] === 'UNKNOWN') return { kind: 'ok', version: 1, consumed, addresses: null };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { kind: 'error', version: 1, message: 'malformed v1 header' };
  const family = parts[1] === 'TCP4' ? 'IPv4' : 'IPv6';
  const want = family === 'IPv4' ? 4 : 6;
  const [, , src, dst, sp, dp] = parts as [string, string, string, string, string, string];
  const port = (s: string) => (/^\d{1,5}$/.test(s) && Number(s) <= 65535 ? Number(s) : -1);
  if (net.isIP(src) !== want || net.isIP(dst) !== want || port(sp) < 0 || port(dp) < 0) return { kind: 'error', version: 1, message: 'malformed v1 addresses' };
  return { kind: 'ok', version: 1, consumed, addresses: { remote: { family, address: src, port: port(sp) }, local: { family, address: dst, port: port(dp) } } };
}

function ip6(b: Buffer, at: number): string {
  const words: string[] = [];
  for (let i = 0; i < 8; i++) words.push(b.readUInt16BE(at + 2 * i).toString(16));
  // net.SocketAddress prints the canonical (compressed) form, as accepted sockets report it.
  return new net.SocketAddress({ address: words.join(':'), family: 'ipv6' }).address;
}

function v2(head: Buffer): ParseResult {
  if (head.length < 16) return NEED_MORE;
  const verCmd = head[12]!;
  if (verCmd >> 4 !== 2) return { kind: 'error', version: 2, message: `unsupported version ${verCmd >> 4}` };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { kind: 'error', version: 2, message: `unsupported command ${cmd}` };
  const len = head.readUInt16BE(14);
  const consumed = 16 + len;
  if (head.length < consumed) return NEED_MORE;
  // LOCAL: a health check from the proxy itself; the connection keeps its addresses.
  if (cmd === 0) return { kind: 'ok', version: 2, consumed, addresses: null };
  const famProto = head[13]!;
  const fam = famProto >> 4;
  const proto = famProto & 0x0f;
  if (fam === 0) return { kind: 'ok', version: 2, consumed, addresses: null }; // AF_UNSPEC
  if (proto !== 1) return { kind: 'error', version: 2, message: 'only STREAM (TCP) is supported' };
  if (fam === 1) {
    if (len < 12) return { kind: 'error', version: 2, message: 'address block too short for IPv4' };
    const a = (at: number) => `${head[at]}.${head[at + 1]}.${head[at + 2]}.${head[at + 3]}`;
    return {
      kind: 'ok',
      version: 2,
      consumed,
      addresses: { remote: { family: 'IPv4', address: a(16), port: head.readUInt16BE(24) }, local: { family: 'IPv4', address: a(20), port: head.readUInt16BE(26) } },
    };
  }
  if (fam === 2) {
    if (len < 36) return { kind: 'error', version: 2, message: 'address block too short for IPv6' };
    return {
      kind: 'ok',
      version: 2,
      consumed,
      addresses: { remote: { family: 'IPv6', address: ip6(head, 16), port: head.readUInt16BE(48) }, local: { family: 'IPv6', address: ip6(head, 32), port: head.readUInt16BE(50) } },
    };
  }
  return { kind: 'error', version: 2, message: fam === 3 ? 'AF_UNIX addresses are not supported' : `unknown address family ${fam}` };
}

/** Parses the start of a connection. `none`: it does not begin with a PROXY header. */
export function parseProxyHeader(head: Buffer): ParseResult {
  if (head.length === 0) return NEED_MORE;
  if (prefixOf(head, V2_SIGNATURE)) return head.length < V2_SIGNATURE.length ? NEED_MORE : v2(head);
  if (prefixOf(head, V1_PREFIX)) return head.length < V1_PREFIX.length ? NEED_MORE : v1(head);
  return NONE;
}

/** Validates the listener filter's typed_config; unsupported fields are errors, not ignored. */
export function buildProxyProtocolSpec(cfg: Record<string, any> | undefined, path: string, errors: FieldError[]): ProxyProtocolSpec {
  const c = cfg ?? {};
  for (const f of ['rules', 'pass_through_tlvs', 'stat_prefix']) {
    if (c[f] !== undefined && !(Array.isArray(c[f]) && c[f].length === 0)) errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  let allowV1 = true;
  let allowV2 = true;
  ((c.disallowed_versions ?? []) as unknown[]).forEach((v, i) => {
    if (v === 'V1' || v === 0) allowV1 = false;
    else if (v === 'V2' || v === 1) allowV2 = false;
    else errors.push({ path: `${path}.disallowed_versions[${i}]`, message: `must be V1 or V2, got ${JSON.stringify(v)}` });
  });
  const allowWithout = c.allow_requests_without_proxy_protocol;
  if (allowWithout !== undefined && typeof allowWithout !== 'boolean') errors.push({ path: `${path}.allow_requests_without_proxy_protocol`, message: 'must be a boolean' });
  return Object.freeze({ allowWithout: allowWithout === true, allowV1, allowV2 });
}

/** What reading the header ended in. */
export type ProxyReadResult =
  | { readonly ok: true; readonly addresses: { readonly remote: PeerAddress; readonly local: PeerAddress } | null }
  | { readonly ok: false; readonly reason: 'error' | 'disallowed' | 'not_found' | 'closed' | 'timeout'; readonly message: string };

/**
 * Reads the header off `sock` (paused on return, with anything after the header put back by
 * unshift so the next reader sees the payload from its first byte).
 */
export function readProxyHeader(sock: net.Socket, spec: ProxyProtocolSpec, timeoutMs: number, done: (r: ProxyReadResult) => void): void {
  let head: Buffer | null = null;
  let settled = false;
  const finish = (r: ProxyReadResult, rest: Buffer | null) => {
    if (settled) return;
    settled = true;
    if (timer) clearTimeout(timer);
    sock.off('data', onData);
    sock.off('close', onClose);
    sock.pause();
    if (rest && rest.length) sock.unshift(rest);
    done(r);
  };
  const onData = (d: Buffer) => {
    head = head ? Buffer.concat([head, d]) : d;
    const p = parseProxyHeader(head);
    if (p.kind === 'need_more') {
      if (head.length > V2_MAX) finish({ ok: false, reason: 'error', message: 'header too long' }, null);
      return;
    }
    if (p.kind === 'none') {
      if (spec.allowWithout) finish({ ok: true, addresses: null }, head);
      else finish({ ok: false, reason: 'not_found', message: 'no PROXY protocol header' }, null);
      return;
    }
    if (p.kind === 'error') return finish({ ok: false, reason: 'error', message: `v${p.version}: ${p.message}` }, null);
    if ((p.version === 1 && !spec.allowV1) || (p.version === 2 && !spec.allowV2)) {
      return finish({ ok: false, reason: 'disallowed', message: `PROXY protocol v${p.version} is disallowed` }, null);
    }
    const rest = head.subarray(p.consumed);
    finish({ ok: true, addresses: p.addresses }, rest);
  };
  const onClose = () => finish({ ok: false, reason: 'closed', message: 'closed before the header' }, null);
  const timer = timeoutMs > 0 ? setTimeout(() => finish({ ok: false, reason: 'timeout', message: 'listener_filters_timeout' }, null), timeoutMs) : null;
  sock.on('data', onData);
  sock.once('close', onClose);
  sock.on('error', () => {});
  sock.resume();
}
