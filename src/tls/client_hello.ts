/**
 * Reads what filter chain matching needs from a TLS ClientHello (RFC 8446 §4.1.2) without
 * decrypting or consuming anything: the server name (SNI, RFC 6066 §3) and the ALPN list
 * (RFC 7301). The hello may span several records; handshake bytes are reassembled up to
 * MAX_HELLO, as Envoy's tls_inspector bounds it.
 */

export const MAX_HELLO = 64 * 1024;

export interface ClientHelloInfo {
  readonly sni: string;
  readonly alpn: readonly string[];
}

/** `need_more`: not enough bytes yet; `not_tls`: the connection is plaintext (or garbage). */
export type HelloResult = ClientHelloInfo | 'need_more' | 'not_tls';

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

export function parseClientHello(buf: Buffer): HelloResult {
  if (buf.length === 0) return 'need_more';
  if (buf[0] !== RECORD_HANDSHAKE) return 'not_tls';
  if (buf.length >= 2 && buf[1] !== 3) return 'not_tls';
  // Reassemble the handshake layer from consecutive handshake records.
  const parts: Buffer[] = [];
  let have = 0;
  let off = 0;
  let need = -1;
  while (need < 0 || have < need) {
    if (buf.length < off + 5) return buf.length - off > MAX_HELLO ? 'not_tls' : 'need_more';
    if (buf[off] !== RECORD_HANDSHAKE) return 'not_tls';
    const len = buf.readUInt16BE(off + 3);
    if (buf.length < off + 5 + len) return 'need_more';
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const hs = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (hs[0] !== HANDSHAKE_CLIENT_HELLO) return 'not_tls';
      need = 4 + hs.readUIntBE(1, 3);
      if (need > MAX_HELLO) return 'not_tls';
    }
  }
  const hs = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  return parseHelloBody(hs.subarray(4, need)) ?? 'not_tls';
}

function parseHelloBody(b: Buffer): ClientHelloInfo | null {
  let p = 2 + 32; // legacy_version, random
  if (p + 1 > b.length) return null;
  p += 1 + b[p]!; // session id
  if (p + 2 > b.length) return null;
  p += 2 + b.readUInt16BE(p); // cipher suites
  if (p + 1 > b.length) return null;
  p += 1 + b[p]!; // compression methods
  let sni = '';
  const alpn: string[] = [];
  if (p + 2 > b.length) return { sni, alpn }; // no extensions at all (old clients)
  const end = p + 2 + b.readUInt16BE(p);
  if (end > b.length) return null;
  p += 2;
  while (p + 4 <= end) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    const body = b.subarray(p + 4, p + 4 + len);
    if (p + 4 + len > end) return null;
    if (type === EXT_SERVER_NAME && body.length >= 2) {
      let q = 2;
      const listEnd = Math.min(body.length, 2 + body.readUInt16BE(0));
      while (q + 3 <= listEnd) {
        const nameType = body[q]!;
        const nameLen = body.readUInt16BE(q + 1);
        if (nameType === 0) {
          // Server names are compared case-insensitively (DNS).
          sni = body.subarray(q + 3, q + 3 + nameLen).toString('latin1').toLowerCase();
          break;
        }
        q += 3 + nameLen;
      }
    } else if (type === EXT_ALPN && body.length >= 2) {
      let q = 2;
      const listEnd = Math.min(body.length, 2 + body.readUInt16BE(0));
      while (q + 1 <= listEnd) {
        const l = body[q]!;
        if (q + 1 + l > listEnd) break;
        alpn.push(body.subarray(q + 1, q + 1 + l).toString('latin1'));
        q += 1 + l;
      }
    }
    p += 4 + len;
  }
  return { sni, alpn };
}
