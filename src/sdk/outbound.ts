/**
 * A tiny client helper for hosts where Strait cannot capture traffic (no BPF, no iptables):
 * `strait intercept enable --mode explicit` publishes where the sidecar's outbound listener is
 * (STRAIT_OUTBOUND=unix:/path or HOST:PORT), and an app opens its connections with
 * `connectOutbound()` instead of net.connect(). The helper connects to the sidecar and sends a
 * PROXY protocol v2 header naming the destination, which the listener's
 * envoy.filters.listener.proxy_protocol turns back into the connection's local address, so an
 * ORIGINAL_DST cluster (and every routing rule) sees the address the app asked for.
 *
 * Without STRAIT_OUTBOUND the helper connects to the destination directly.
 */
import dns from 'node:dns/promises';
import net from 'node:net';

export const OUTBOUND_ENV = 'STRAIT_OUTBOUND';

/** Where the sidecar listens: a unix socket path or a TCP address. */
export type SidecarAddress = { readonly path: string } | { readonly host: string; readonly port: number };

/** Parses a STRAIT_OUTBOUND value: `unix:/run/strait/outbound.sock`, `127.0.0.1:15001`, `[::1]:15001`. */
export function parseOutbound(value: string): SidecarAddress {
  if (value.startsWith('unix:')) {
    const path = value.slice(5);
    if (!path.startsWith('/')) throw new TypeError(`${OUTBOUND_ENV}: a unix socket needs an absolute path, got "${value}"`);
    return { path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) throw new TypeError(`${OUTBOUND_ENV}: expected unix:/path or host:port, got "${value}"`);
  return { host: m[1] ?? m[2]!, port };
}

/**
 * A PROXY protocol v2 header (PROXY command, TCP over IPv4 or IPv6) from `src` to `dst`. Both
 * must be IP literals of the same family; an IPv4 source with an IPv6 destination is sent as
 * its IPv4-mapped form.
 */
export function proxyV2Header(src: { address: string; port: number }, dst: { address: string; port: number }): Buffer {
  const v6 = net.isIPv6(dst.address) || net.isIPv6(src.address);
  const len = v6 ? 36 : 12;
  const b = Buffer.alloc(16 + len);
  Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]).copy(b, 0);
  b[12] = 0x21; // version 2, PROXY
  b[13] = v6 ? 0x21 : 0x11; // AF_INET6 / AF_INET, STREAM
  b.writeUInt16BE(len, 14);
  if (v6) {
    ip6Bytes(src.address).copy(b, 16);
    ip6Bytes(dst.address).copy(b, 32);
    b.writeUInt16BE(src.port, 48);
    b.writeUInt16BE(dst.port, 50);
  } else {
    ip4Bytes(src.address).copy(b, 16);
    ip4Bytes(dst.address).copy(b, 20);
    b.writeUInt16BE(src.port, 24);
    b.writeUInt16BE(dst.port, 26);
  }
  return b;
}

function ip4Bytes(a: string): Buffer {
  if (!net.isIPv4(a)) throw new TypeError(`not an IPv4 address: ${a}`);
  return Buffer.from(a.split('.').map(Number));
}

function ip6Bytes(a: string): Buffer {
  const addr = net.isIPv4(a) ? `::ffff:${a}` : a;
  if (!net.isIPv6(addr)) throw new TypeError(`not an IP address: ${a}`);
  // Expand "::" and a trailing dotted quad into eight 16-bit words.
  const [head, tail] = addr.includes('::') ? (addr.split('::') as [string, string]) : [addr, null];
  const words = (s: string | null): number[] => {
    if (!s) return [];
    const parts = s.split(':');
    const out: number[] = [];
    for (const p of parts) {
      if (p.includes('.')) {
        const q = p.split('.').map(Number) as [number, number, number, number];
        out.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
      } else out.push(parseInt(p, 16));
    }
    return out;
  };
  const h = words(head);
  const t = words(tail);
  const all = tail === null ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const b = Buffer.alloc(16);
  all.forEach((w, i) => b.writeUInt16BE(w, 2 * i));
  return b;
}

export interface ConnectOptions {
  /** Overrides STRAIT_OUTBOUND ('' = connect directly). */
  readonly outbound?: string;
}

/**
 * Opens a TCP connection to `host:port` through the sidecar (or directly without one).
 * Resolves once connected and the header is written; the socket then carries the app's bytes
 * to the destination as a plain net.Socket would. A host name is resolved here, since the
 * sidecar routes by address.
 */
export async function connectOutbound(host: string, port: number, opts: ConnectOptions = {}): Promise<net.Socket> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`port must be 1-65535, got ${port}`);
  const value = opts.outbound ?? process.env[OUTBOUND_ENV] ?? '';
  const address = net.isIP(host) ? host : (await dns.lookup(host)).address;
  if (!value) return connected(net.connect({ host: address, port }));
  const sidecar = parseOutbound(value);
  const sock = net.connect('path' in sidecar ? { path: sidecar.path } : { host: sidecar.host, port: sidecar.port });
  // The source is unknown to a unix-socket client: an unspecified address of the same family.
  const src = net.isIPv6(address) ? '::' : '0.0.0.0';
  // Written before 'connect': the socket queues it, so it is the first thing Strait reads.
  sock.write(proxyV2Header({ address: src, port: 0 }, { address, port }));
  return connected(sock);
}

function connected(sock: net.Socket): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}
