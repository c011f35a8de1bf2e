import net from 'node:net';
import type { FieldError } from '../errors.js';

type Obj = Record<string, any>;

/** A compiled `config.core.v3.CidrRange`: tests an IP literal (v4, v6 or v4-mapped v6). */
export type CidrMatch = (ip: string) => boolean;

/** 16 bytes for any address; IPv4 becomes ::ffff:a.b.c.d so both families compare alike. */
export function ipBytes(ip: string): Uint8Array | null {
  const kind = net.isIP(ip);
  if (kind === 4) {
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    const parts = ip.split('.');
    for (let i = 0; i < 4; i++) out[12 + i] = Number(parts[i]);
    return out;
  }
  if (kind !== 6) return null;
  let s = ip;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct); // zone ids do not take part in matching
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const dot = s.lastIndexOf('.');
  if (dot >= 0) {
    const colon = s.lastIndexOf(':');
    const q = s.slice(colon + 1).split('.').map(Number);
    s = `${s.slice(0, colon + 1)}${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = parseInt(groups[i] ?? '0', 16);
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  }
  return out;
}

/**
 * `address_prefix` + `prefix_len` (unset = 0, which matches every address of the family, as in
 * Envoy). An IPv4 range also matches the v4-mapped IPv6 form Node reports on dual-stack sockets.
 */
export function compileCidr(c: Obj, path: string, errors: FieldError[]): CidrMatch | null {
  const prefix = String(c.address_prefix ?? '');
  const kind = net.isIP(prefix);
  if (kind === 0) {
    errors.push({ path: `${path}.address_prefix`, message: `"${prefix}" is not an IP address` });
    return null;
  }
  const len = c.prefix_len === undefined || c.prefix_len === null ? 0 : Number(c.prefix_len);
  const max = kind === 4 ? 32 : 128;
  if (!Number.isInteger(len) || len < 0 || len > max) {
    errors.push({ path: `${path}.prefix_len`, message: `must be in [0, ${max}] for ${prefix}` });
    return null;
  }
  const want = ipBytes(prefix)!;
  // IPv4 ranges compare inside the mapped form: the first 96 bits must be ::ffff: too.
  const bits = kind === 4 ? 96 + len : len;
  const v4 = kind === 4;
  return (ip) => {
    const got = ipBytes(ip);
    if (!got) return false;
    // An IPv4 range never matches a native IPv6 address, nor an IPv6 range an IPv4 one (even /0).
    const isMapped = got[10] === 0xff && got[11] === 0xff && got.subarray(0, 10).every((b) => b === 0);
    if (v4 !== isMapped) return false;
    let n = bits;
    for (let i = 0; n > 0; i++, n -= 8) {
      const mask = n >= 8 ? 0xff : (0xff << (8 - n)) & 0xff;
      if ((got[i]! & mask) !== (want[i]! & mask)) return false;
    }
    return true;
  };
}
