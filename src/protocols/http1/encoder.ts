/**
 * Builds outgoing HTTP/1.1 heads. Headers that pass through unchanged are copied as the bytes
 * they arrived in; only the first line and added headers are encoded from strings. Header bytes
 * are latin1 both ways, so whatever arrived (obs-text included) leaves unchanged.
 */
import { F, type MessageHead } from './types.js';

/** Decides per header (by its index in `head.fields / F.SIZE`) whether to leave it out. */
export type DropField = (head: MessageHead, index: number) => boolean;

/** Which headers encodeHead keeps; reused by every call (it never re-enters) and grown on demand. */
let KEEP = new Uint8Array(64);

/**
 * `firstLine` without CRLF; `extra` is already formatted `name: value\r\n` lines appended after
 * the kept headers. `tail[tailStart, tailEnd)` (a small body that arrived with the head) follows
 * the blank line, so head and body leave in one write. One allocation, one copy per kept header.
 */
export function encodeHead(firstLine: string, head: MessageHead | null, drop: DropField | null, extra: string, tail: Buffer | null = null, tailStart = 0, tailEnd = 0): Buffer {
  let size = firstLine.length + 2 + extra.length + 2 + (tail ? tailEnd - tailStart : 0);
  const f = head ? head.fields : null;
  const n = f ? f.length / F.SIZE : 0;
  let keep: Uint8Array | null = null;
  if (f) {
    if (KEEP.length < n) KEEP = new Uint8Array(Math.max(n, KEEP.length * 2));
    keep = KEEP;
    for (let i = 0; i < n; i++) {
      if (drop && drop(head!, i)) {
        keep[i] = 0;
        continue;
      }
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
    // Kept lines that follow each other in the source (separated by exactly CRLF) go in one
    // copy: the bytes are the same as line by line, with one Buffer.copy per run, not per line.
    const src = head!.buf;
    let runStart = -1;
    let runEnd = -1;
    for (let i = 0; i < n; i++) {
      if (!keep![i]) continue;
      const o = i * F.SIZE;
      const s = f[o + F.NAME_START]!;
      if (runStart >= 0 && s === runEnd + 2 && src[runEnd] === 0x0d && src[runEnd + 1] === 0x0a) {
        runEnd = f[o + F.VALUE_END]!;
        continue;
      }
      if (runStart >= 0) p = copyLine(src, out, p, runStart, runEnd);
      runStart = s;
      runEnd = f[o + F.VALUE_END]!;
    }
    if (runStart >= 0) p = copyLine(src, out, p, runStart, runEnd);
  }
  p += out.write(extra, p, 'latin1');
  out[p++] = 0x0d;
  out[p++] = 0x0a;
  if (tail) p += tail.copy(out, p, tailStart, tailEnd);
  return p === size ? out : out.subarray(0, p);
}

/** Copies src[start, end) to out at p and ends it with CRLF; returns the new position. */
function copyLine(src: Buffer, out: Buffer, p: number, start: number, end: number): number {
  p += src.copy(out, p, start, end);
  out[p++] = 0x0d;
  out[p++] = 0x0a;
  return p;
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
