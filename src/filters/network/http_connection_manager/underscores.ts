/**
 * `common_http_protocol_options.headers_with_underscores_action`, as Envoy's codecs apply it to
 * request headers before the filter chain sees them: REJECT_REQUEST answers an HTTP/1.1 request
 * 400 and closes (an HTTP/2 stream is reset), DROP_HEADER removes each such field. Backends that
 * read `x_user` and `x-user` as one header (CGI, WSGI, nginx, PHP) cannot then be handed a field a
 * filter meant to own in its dash form. Checked only when the action is not ALLOW.
 */
import type { Scope } from '../../../observability/stats.js';
import { F, type MessageHead } from '../../../protocols/http1/types.js';

export const enum Underscores {
  ALLOW = 0,
  REJECT_REQUEST = 1,
  DROP_HEADER = 2,
}

/** The enum from a decoded config (its name, or its number from a binary one). */
export function underscoresOf(v: unknown): Underscores | null {
  if (v === undefined || v === null || v === 'ALLOW' || v === 0) return Underscores.ALLOW;
  if (v === 'REJECT_REQUEST' || v === 1) return Underscores.REJECT_REQUEST;
  if (v === 'DROP_HEADER' || v === 2) return Underscores.DROP_HEADER;
  return null;
}

/** Envoy's codec counters, rooted at `http1.` / `http2.` as Envoy's are. */
export interface UnderscoreStats {
  readonly rejected: { value: number };
  readonly dropped: { value: number };
}

export function underscoreStats(stats: Scope, codec: 'http1' | 'http2'): UnderscoreStats {
  const s = stats.scope(codec);
  return { rejected: s.counter('requests_rejected_with_underscores_in_headers'), dropped: s.counter('dropped_headers_with_underscores') };
}

/** Whether an HTTP/1.1 head has a field name with `_`. */
export function h1HasUnderscore(head: MessageHead): boolean {
  const f = head.fieldSlots;
  const b = head.buf;
  for (let i = head.fieldsAt; i < head.fieldsEnd; i += F.SIZE) {
    const e = f[i + F.NAME_END]!;
    for (let j = f[i + F.NAME_START]!; j < e; j++) if (b[j] === 0x5f) return true;
  }
  return false;
}

/** Removes the fields whose name has `_` from an HTTP/1.1 head (they are not forwarded either); returns how many. */
export function h1DropUnderscored(head: MessageHead): number {
  const f = head.fieldSlots;
  const b = head.buf;
  // In place: the range is this head's alone.
  let w = head.fieldsAt;
  let dropped = 0;
  for (let r = head.fieldsAt; r < head.fieldsEnd; r += F.SIZE) {
    let has = false;
    const e = f[r + F.NAME_END]!;
    for (let j = f[r + F.NAME_START]!; j < e && !has; j++) has = b[j] === 0x5f;
    if (has) {
      dropped++;
      continue;
    }
    if (w !== r) for (let k = 0; k < F.SIZE; k++) f[w + k] = f[r + k]!;
    w += F.SIZE;
  }
  (head as { fieldsEnd: number }).fieldsEnd = w;
  return dropped;
}

/** Whether an HTTP/2 request's fields ("name\0value\0..." flat list) have a name with `_`. */
export function flatHasUnderscore(flat: string): boolean {
  if (!flat.includes('_')) return false;
  for (let i = 0; i < flat.length; ) {
    const n = flat.indexOf('\0', i);
    if (n < 0) break;
    if (flat.lastIndexOf('_', n) >= i) return true;
    const v = flat.indexOf('\0', n + 1);
    i = v < 0 ? flat.length : v + 1;
  }
  return false;
}

/** The flat list without the fields whose name has `_`, and how many went. */
export function flatDropUnderscored(flat: string): { flat: string; dropped: number } {
  const keep: string[] = [];
  let dropped = 0;
  for (let i = 0; i < flat.length; ) {
    const n = flat.indexOf('\0', i);
    if (n < 0) break;
    let v = flat.indexOf('\0', n + 1);
    if (v < 0) v = flat.length;
    if (flat.lastIndexOf('_', n) >= i) dropped++;
    else keep.push(flat.slice(i, v));
    i = v + 1;
  }
  return { flat: keep.join('\0'), dropped };
}

/** node:http2's header object: whether a field name has `_`. */
export function objectHasUnderscore(headers: Record<string, unknown>): boolean {
  for (const k in headers) if (k.includes('_')) return true;
  return false;
}

/** node:http2's header object: deletes the fields whose name has `_`; returns how many. */
export function objectDropUnderscored(headers: Record<string, unknown>): number {
  let n = 0;
  for (const k of Object.keys(headers)) {
    if (!k.includes('_')) continue;
    delete headers[k];
    n++;
  }
  return n;
}
