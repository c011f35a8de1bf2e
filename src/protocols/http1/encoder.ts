/**
 * Builds outgoing HTTP/1.1 heads. Headers that pass through unchanged are copied as the bytes
 * they arrived in; only the first line and added headers are encoded from strings. Header bytes
 * are latin1 both ways, so whatever arrived (obs-text included) leaves unchanged.
 */
import { F, type MessageHead } from './types.js';

/** Decides per header (by its index in `head.fields / F.SIZE`) whether to leave it out. */
export type DropField = (head: MessageHead, index: number) => boolean;

/**
 * `firstLine` without CRLF; `extra` is already formatted `name: value\r\n` lines appended after
 * the kept headers. One allocation, one copy per kept header.
 */
export function encodeHead(firstLine: string, head: MessageHead | null, drop: DropField | null, extra: string): Buffer {
  let size = firstLine.length + 2 + extra.length + 2;
  const f = head ? head.fields : null;
  const n = f ? f.length / F.SIZE : 0;
  let keep: Uint8Array | null = null;
  if (f) {
    keep = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (drop && drop(head!, i)) continue;
      keep[i] = 1;
      const o = i * F.SIZE;
      size += f[o + F.VALUE_END]! - f[o + F.NAME_START]! + 2;
    }
  }
  const out = Buffer.allocUnsafe(size);
  let p = out.write(firstLine, 0, 'latin1');
  out[p++] = 0x0d;
  out[p++] = 0x0a;
  if (f) {
    const src = head!.buf;
    for (let i = 0; i < n; i++) {
      if (!keep![i]) continue;
      const o = i * F.SIZE;
      p += src.copy(out, p, f[o + F.NAME_START]!, f[o + F.VALUE_END]!);
      out[p++] = 0x0d;
      out[p++] = 0x0a;
    }
  }
  p += out.write(extra, p, 'latin1');
  out[p++] = 0x0d;
  out[p++] = 0x0a;
  return p === size ? out : out.subarray(0, p);
}

const REASONS: Record<number, string> = {
  100: 'Continue',
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

/** A whole response the proxy writes itself (local replies, redirects, direct responses). */
export function encodeLocalResponse(status: number, headers: string, body: Buffer | string, close: boolean): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  let head = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n${headers}`;
  if (status !== 204 && status !== 304 && !(status >= 100 && status < 200)) head += `content-length: ${b.length}\r\n`;
  if (close) head += 'connection: close\r\n';
  head += '\r\n';
  return b.length ? Buffer.concat([Buffer.from(head, 'latin1'), b]) : Buffer.from(head, 'latin1');
}
