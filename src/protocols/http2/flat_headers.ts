/**
 * Outgoing HTTP/2 header lists in the addon's flat form ("name\0value\0..."), written as bytes
 * into one reused buffer that the addon copies during the call (native/http2/session.cc FlatArg).
 * A response or request then crosses the boundary without a header object, a string per field or
 * a concatenated string: the bytes come straight from where they arrived (an HTTP/1 head's buffer,
 * the downstream's flat request) plus the few values the proxy adds.
 */

/** Writes one header list; `reset()` starts the next. Use one list at a time, up to its addon call. */
export class FlatWriter {
  buf: Buffer;
  /** Bytes written. */
  len = 0;
  /** Pairs written (the addon checks it: a NUL inside a value would shift every later pair). */
  pairs = 0;

  constructor(size = 4096) {
    this.buf = Buffer.allocUnsafe(size);
  }

  reset(): this {
    this.len = 0;
    this.pairs = 0;
    return this;
  }

  /** Room for `n` more bytes. */
  private room(n: number): Buffer {
    const need = this.len + n;
    if (need > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < need) size *= 2;
      const b = Buffer.allocUnsafe(size);
      this.buf.copy(b, 0, 0, this.len);
      this.buf = b;
    }
    return this.buf;
  }

  /** A name/value pair of strings (latin1; names given lower-case). */
  pair(name: string, value: string): void {
    this.str(name);
    this.str(value);
    this.pairs++;
  }

  /** Only a name; a value follows with valueBytes() or value(). */
  name(name: string): void {
    this.str(name);
  }

  value(value: string): void {
    this.str(value);
    this.pairs++;
  }

  /**
   * `s[from, to)` as is: already flat pairs ("name\0value\0..."), which the caller counts. Latin1,
   * as the addon reads a string list.
   */
  raw(s: string, from: number, to: number): void {
    const n = to - from;
    const b = this.room(n);
    let o = this.len;
    // As str(): a loop below the size where one native write costs less.
    if (n < 48) for (let i = from; i < to; i++) b[o++] = s.charCodeAt(i);
    else o += b.write(from === 0 && to === s.length ? s : s.slice(from, to), o, n, 'latin1');
    this.len = o;
  }

  /** One NUL, ending a value raw() left open. */
  nul(): void {
    this.room(1)[this.len++] = 0;
  }

  /** A string and its NUL. */
  private str(s: string): void {
    const n = s.length;
    const b = this.room(n + 1);
    let o = this.len;
    if (n < 48) for (let i = 0; i < n; i++) b[o++] = s.charCodeAt(i);
    else o += b.write(s, o, n, 'latin1');
    b[o++] = 0;
    this.len = o;
  }
}

/** The one writer responses, requests and trailers share: each is written and handed over synchronously. */
export const FLAT = new FlatWriter();

/** Whether `src[s, e)` is `lit` (lower-case ASCII) ignoring the case of letters in src. */
export function nameIs(src: Uint8Array, s: number, e: number, lit: string): boolean {
  if (e - s !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) {
    const c = src[s + i]!;
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== lit.charCodeAt(i)) return false;
  }
  return true;
}
