/**
 * Outgoing HTTP/2 header lists in the addon's flat form ("name\0value\0..."), written as bytes
 * into one reused buffer that the addon copies during the call (native/http2/session.cc FlatArg).
 * A response or request then crosses the boundary without a header object, a string per field or
 * a concatenated string: the bytes come straight from where they arrived (an HTTP/1 head's buffer,
 * the downstream's flat request) plus the few values the proxy adds.
 */
import { setTable, TableSlot } from '../../native.js';

/** Writes one header list; `reset()` starts the next. Use one list at a time, up to its addon call. */
export class FlatWriter {
  buf: Buffer;
  /** Bytes written. */
  len = 0;
  /** Pairs written (the addon checks it: a NUL inside a value would shift every later pair). */
  pairs = 0;

  /**
   * `table`: the addon slot this writer's buffer is registered in (the shared FLAT writer), so
   * that calls pass null for it; a grown buffer is registered again.
   */
  constructor(
    size = 4096,
    private readonly table: TableSlot | -1 = -1,
  ) {
    this.buf = Buffer.allocUnsafe(size);
    if (table !== -1) setTable(table, this.buf);
  }

  /** Who wrote the bytes kept at the start by keep(), and how many bytes and pairs they are. */
  private keptBy: object | null = null;
  private keptLen = 0;
  private keptPairs = 0;

  reset(): this {
    this.len = 0;
    this.pairs = 0;
    this.keptBy = null;
    return this;
  }

  /**
   * reset(), but when `owner` was the last to keep() a prefix and nothing reset the writer since,
   * that prefix stays written (true): a list that starts as the last one did costs no copy.
   */
  resetTo(owner: object): boolean {
    if (this.keptBy !== owner) {
      this.reset();
      return false;
    }
    this.len = this.keptLen;
    this.pairs = this.keptPairs;
    return true;
  }

  /** What is written so far is `owner`'s prefix, for its next resetTo(). */
  keep(owner: object): void {
    this.keptBy = owner;
    this.keptLen = this.len;
    this.keptPairs = this.pairs;
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
      if (this.table !== -1) setTable(this.table, b);
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

  /**
   * Bytes already in list form ("name\0value\0...", each value with its NUL) holding `pairs`
   * pairs: one copy, where str() stores a character at a time (~4 times the time for the ~50
   * bytes of a response's `:status`, `server` and `date`; FlatBlocks below keeps such blocks).
   */
  block(b: Uint8Array, pairs: number): void {
    const n = b.length;
    this.room(n).set(b, this.len);
    this.len += n;
    this.pairs += pairs;
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

/**
 * The pairs a proxied response head gets whatever the upstream sent, as blocks for
 * FlatWriter.block(): `:status` per code, `server` per name and `date` per second. Each is made
 * on first use and kept; the server and date blocks follow their string (a new name, the next
 * second) by identity first, so the common case costs a pointer compare.
 */
export class FlatBlocks {
  private readonly statuses: (Buffer | undefined)[] = new Array<Buffer | undefined>(600);
  private serverName: string | null = null;
  private serverBlock: Buffer = Buffer.alloc(0);
  private dateStr: string | null = null;
  private dateBlock: Buffer = Buffer.alloc(0);

  /** `:status\0<code>\0`. */
  status(code: number): Buffer {
    if (code >= 0 && code < 600) return (this.statuses[code] ??= pairBlock(':status', String(code)));
    return pairBlock(':status', String(code));
  }

  /** `server\0<name>\0`. */
  server(name: string): Buffer {
    if (name !== this.serverName) {
      this.serverName = name;
      this.serverBlock = pairBlock('server', name);
    }
    return this.serverBlock;
  }

  /** `date\0<value>\0`, for the value httpDate() gives now. */
  date(value: string): Buffer {
    if (value !== this.dateStr) {
      this.dateStr = value;
      this.dateBlock = pairBlock('date', value);
    }
    return this.dateBlock;
  }
}

function pairBlock(name: string, value: string): Buffer {
  return Buffer.from(`${name}\0${value}\0`, 'latin1');
}

/** The one writer responses, requests and trailers share: each is written and handed over synchronously. */
export const FLAT = new FlatWriter(4096, TableSlot.FLAT);

/** Whether `src[s, e)` is `lit` (lower-case ASCII) ignoring the case of letters in src. */
export function nameIs(src: Uint8Array, s: number, e: number, lit: string): boolean {
  if (e - s !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) {
    const c = src[s + i]!;
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== lit.charCodeAt(i)) return false;
  }
  return true;
}
