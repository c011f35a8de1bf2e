/**
 * A minimal hessian2 reader for routing: it finds where a value is and how far it reaches,
 * without building it. Every read is bounds-checked against `end` and returns the position
 * after the value, or -1 when the bytes are malformed or run past `end`. Results of a string
 * read go to `span` (absolute offset and byte length) so nothing is allocated.
 *
 * Only what Dubbo and SOFARPC bodies need is decoded (strings and ints); anything else is
 * skipped by walking the grammar of the hessian 2.0 spec.
 */

export const span = { off: 0, len: 0 };

/** Java counts string lengths in UTF-16 units: walk UTF-8 to find the byte end of `chars`. */
export function utf8SkipChars(buf: Buffer, pos: number, end: number, chars: number): number {
  while (chars > 0) {
    if (pos >= end) return -1;
    const b = buf[pos]!;
    if (b < 0x80) {
      pos += 1;
      chars -= 1;
    } else if (b < 0xe0) {
      pos += 2;
      chars -= 1;
    } else if (b < 0xf0) {
      pos += 3;
      chars -= 1;
    } else {
      // A 4-byte sequence is a surrogate pair: two UTF-16 units.
      pos += 4;
      chars -= 2;
    }
  }
  return pos > end ? -1 : pos;
}

/**
 * Reads a string into `span`. A string in one piece ('S' with a 16-bit length, or the short and
 * medium forms) spans its bytes. A chunked string ('R' chunks, then any final form) is accepted
 * for skipping, and `span` then covers the chunks with their markers, so it never compares
 * equal to a plain name (routing names are never 32 KiB long). Null ('N') reads as empty.
 */
export function readString(buf: Buffer, pos: number, end: number): number {
  if (pos >= end) return -1;
  const tag = buf[pos]!;
  if (tag === 0x4e) {
    span.off = pos + 1;
    span.len = 0;
    return pos + 1;
  }
  let chars: number;
  let start: number;
  if (tag <= 0x1f) {
    chars = tag;
    start = pos + 1;
  } else if (tag >= 0x30 && tag <= 0x33) {
    if (pos + 2 > end) return -1;
    chars = ((tag - 0x30) << 8) | buf[pos + 1]!;
    start = pos + 2;
  } else if (tag === 0x53) {
    if (pos + 3 > end) return -1;
    chars = buf.readUInt16BE(pos + 1);
    start = pos + 3;
  } else if (tag === 0x52) {
    const first = pos;
    let p = pos;
    while (p < end && buf[p] === 0x52) {
      if (p + 3 > end) return -1;
      p = utf8SkipChars(buf, p + 3, end, buf.readUInt16BE(p + 1));
      if (p < 0) return -1;
    }
    // The last chunk may take any one-piece form (Java and hessian.js write a short one).
    if (p >= end || buf[p] === 0x52 || buf[p] === 0x4e) return -1;
    p = readString(buf, p, end);
    if (p < 0) return -1;
    span.off = first;
    span.len = p - first;
    return p;
  } else return -1;
  const after = utf8SkipChars(buf, start, end, chars);
  if (after < 0) return -1;
  span.off = start;
  span.len = after - start;
  return after;
}

/** The int read by `readInt`. */
export let intValue = 0;

export function readInt(buf: Buffer, pos: number, end: number): number {
  if (pos >= end) return -1;
  const b = buf[pos]!;
  if (b >= 0x80 && b <= 0xbf) {
    intValue = b - 0x90;
    return pos + 1;
  }
  if (b >= 0xc0 && b <= 0xcf) {
    if (pos + 2 > end) return -1;
    intValue = ((b - 0xc8) << 8) | buf[pos + 1]!;
    return pos + 2;
  }
  if (b >= 0xd0 && b <= 0xd7) {
    if (pos + 3 > end) return -1;
    intValue = ((b - 0xd4) << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
    return pos + 3;
  }
  if (b === 0x49) {
    if (pos + 5 > end) return -1;
    intValue = buf.readInt32BE(pos + 1);
    return pos + 5;
  }
  return -1;
}

/**
 * A hessian2 scalar at `pos` as text, for matching on a call's arguments: a one-piece string as
 * it is, an int or a long in decimal; undefined for anything else (null, chunked strings,
 * doubles, dates, objects, lists) or a value cut short.
 */
export function scalarText(buf: Buffer, pos: number, end: number): string | undefined {
  if (pos >= end) return undefined;
  const b = buf[pos]!;
  if (b <= 0x1f || (b >= 0x30 && b <= 0x33) || b === 0x53) return readString(buf, pos, end) < 0 ? undefined : buf.toString('utf8', span.off, span.off + span.len);
  if ((b >= 0x80 && b <= 0xd7) || b === 0x49) return readInt(buf, pos, end) < 0 ? undefined : String(intValue);
  // Longs: one byte (0xd8-0xef), two (0xf0-0xff), three (0x38-0x3f), a 32-bit int ('Y') or all 64 bits ('L').
  if (b >= 0xd8 && b <= 0xef) return String(b - 0xe0);
  if (b >= 0xf0) return pos + 2 > end ? undefined : String(((b - 0xf8) << 8) | buf[pos + 1]!);
  if (b >= 0x38 && b <= 0x3f) return pos + 3 > end ? undefined : String(((b - 0x3c) << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!);
  if (b === 0x59) return pos + 5 > end ? undefined : String(buf.readInt32BE(pos + 1));
  if (b === 0x4c) return pos + 9 > end ? undefined : buf.readBigInt64BE(pos + 1).toString();
  return undefined;
}

/**
 * Per-body reader state: hessian2 class definitions are numbered in order of appearance and an
 * object refers to one by number, so skipping an object needs the field counts seen so far.
 */
export class Hessian2Skipper {
  private readonly fieldCounts: number[] = [];
  private depth = 0;
  static readonly MAX_DEPTH = 64;

  reset(): this {
    this.fieldCounts.length = 0;
    this.depth = 0;
    return this;
  }

  /** Class definitions read so far, in order: the field names' spans are not kept. */
  get classCount(): number {
    return this.fieldCounts.length;
  }

  fieldCount(ref: number): number {
    return ref >= 0 && ref < this.fieldCounts.length ? this.fieldCounts[ref]! : -1;
  }

  /** Registers a class definition the caller has read itself. */
  addClass(fieldCount: number): this {
    this.fieldCounts.push(fieldCount);
    return this;
  }

  /** Reads a class definition ('C' already at `pos`). */
  classDef(buf: Buffer, pos: number, end: number): number {
    let p = readString(buf, pos + 1, end);
    if (p < 0) return -1;
    p = readInt(buf, p, end);
    if (p < 0 || intValue < 0) return -1;
    const n = intValue;
    for (let i = 0; i < n; i++) {
      p = readString(buf, p, end);
      if (p < 0) return -1;
    }
    // A body needs a handful; thousands mean a hostile frame (the native reader stops at 1024 too).
    if (this.fieldCounts.length >= 1024) return -1;
    this.fieldCounts.push(n);
    return p;
  }

  /** A list or map type: a type-name string or an int reference to an earlier one. */
  private type(buf: Buffer, pos: number, end: number): number {
    if (pos >= end) return -1;
    const b = buf[pos]!;
    if (b <= 0x1f || (b >= 0x30 && b <= 0x33) || b === 0x52 || b === 0x53) return readString(buf, pos, end);
    return readInt(buf, pos, end);
  }

  private until(buf: Buffer, pos: number, end: number, perItem: number): number {
    let p = pos;
    for (;;) {
      if (p >= end) return -1;
      if (buf[p] === 0x5a) return p + 1;
      for (let i = 0; i < perItem; i++) {
        p = this.skip(buf, p, end);
        if (p < 0) return -1;
      }
    }
  }

  private times(buf: Buffer, pos: number, end: number, n: number): number {
    let p = pos;
    for (let i = 0; i < n; i++) {
      p = this.skip(buf, p, end);
      if (p < 0) return -1;
    }
    return p;
  }

  /** Skips one value; -1 if malformed, truncated or nested deeper than MAX_DEPTH. */
  skip(buf: Buffer, pos: number, end: number): number {
    if (pos >= end) return -1;
    if (++this.depth > Hessian2Skipper.MAX_DEPTH) return -1;
    const r = this.skipOne(buf, pos, end);
    this.depth--;
    return r;
  }

  private skipOne(buf: Buffer, pos: number, end: number): number {
    const b = buf[pos]!;
    const fixed = (n: number): number => (pos + n <= end ? pos + n : -1);
    if (b <= 0x1f || (b >= 0x30 && b <= 0x33) || b === 0x52 || b === 0x53) return readString(buf, pos, end);
    if (b >= 0x20 && b <= 0x2f) return fixed(1 + (b - 0x20));
    if (b >= 0x34 && b <= 0x37) {
      if (pos + 2 > end) return -1;
      return fixed(2 + (((b - 0x34) << 8) | buf[pos + 1]!));
    }
    if (b >= 0x38 && b <= 0x3f) return fixed(3);
    if (b >= 0x80 && b <= 0xbf) return pos + 1;
    if (b >= 0xc0 && b <= 0xcf) return fixed(2);
    if (b >= 0xd0 && b <= 0xd7) return fixed(3);
    if (b >= 0xd8 && b <= 0xef) return pos + 1;
    if (b >= 0xf0) return fixed(2);
    if (b >= 0x60 && b <= 0x6f) {
      const n = this.fieldCount(b - 0x60);
      return n < 0 ? -1 : this.times(buf, pos + 1, end, n);
    }
    if (b >= 0x70 && b <= 0x77) {
      const p = this.type(buf, pos + 1, end);
      return p < 0 ? -1 : this.times(buf, p, end, b - 0x70);
    }
    if (b >= 0x78 && b <= 0x7f) return this.times(buf, pos + 1, end, b - 0x78);
    switch (b) {
      case 0x41: // 'A' binary chunks, then any one-piece binary form
      case 0x42: {
        let p = pos;
        while (p < end && buf[p] === 0x41) {
          if (p + 3 > end) return -1;
          p += 3 + buf.readUInt16BE(p + 1);
        }
        if (p >= end) return -1;
        const t = buf[p]!;
        if (t === 0x42) {
          if (p + 3 > end) return -1;
          p += 3 + buf.readUInt16BE(p + 1);
        } else if (t >= 0x20 && t <= 0x2f) p += 1 + (t - 0x20);
        else if (t >= 0x34 && t <= 0x37) {
          if (p + 2 > end) return -1;
          p += 2 + (((t - 0x34) << 8) | buf[p + 1]!);
        } else return -1;
        return p <= end ? p : -1;
      }
      case 0x43: {
        // A class definition precedes the value that uses it; walk definitions in a loop so a
        // hostile run of them cannot recurse the stack away.
        let p = pos;
        while (p < end && buf[p] === 0x43) {
          p = this.classDef(buf, p, end);
          if (p < 0) return -1;
        }
        return p < end ? this.skipOne(buf, p, end) : -1;
      }
      case 0x44: // 'D' double
      case 0x4a: // 'J' date
      case 0x4c: // 'L' long
        return fixed(9);
      case 0x46: // 'F'
      case 0x4e: // 'N'
      case 0x54: // 'T'
      case 0x5b: // double 0.0
      case 0x5c: // double 1.0
        return pos + 1;
      case 0x48: // 'H' untyped map
        return this.until(buf, pos + 1, end, 2);
      case 0x4d: {
        // 'M' typed map
        const p = this.type(buf, pos + 1, end);
        return p < 0 ? -1 : this.until(buf, p, end, 2);
      }
      case 0x49: // 'I' int
      case 0x4b: // 'K' date in minutes
      case 0x59: // 'Y' long as int32
      case 0x5f: // double as float
        return fixed(5);
      case 0x4f: {
        // 'O' object: class ref then its fields
        const p = readInt(buf, pos + 1, end);
        if (p < 0) return -1;
        const n = this.fieldCount(intValue);
        return n < 0 ? -1 : this.times(buf, p, end, n);
      }
      case 0x51: // 'Q' ref
        return readInt(buf, pos + 1, end);
      case 0x55: {
        // 'U' variable-length typed list
        const p = this.type(buf, pos + 1, end);
        return p < 0 ? -1 : this.until(buf, p, end, 1);
      }
      case 0x56: {
        // 'V' fixed-length typed list
        let p = this.type(buf, pos + 1, end);
        if (p < 0) return -1;
        p = readInt(buf, p, end);
        return p < 0 || intValue < 0 ? -1 : this.times(buf, p, end, intValue);
      }
      case 0x57: // 'W' variable-length untyped list
        return this.until(buf, pos + 1, end, 1);
      case 0x58: {
        // 'X' fixed-length untyped list
        const p = readInt(buf, pos + 1, end);
        return p < 0 || intValue < 0 ? -1 : this.times(buf, p, end, intValue);
      }
      case 0x5d: // double as byte
        return fixed(2);
      case 0x5e: // double as short
        return fixed(3);
      default:
        return -1;
    }
  }
}

/** Counts the parameters in a JVM method descriptor such as `Ljava/lang/String;I[J`. -1 if malformed. */
export function countJvmParams(buf: Buffer, off: number, len: number): number {
  let n = 0;
  const end = off + len;
  let p = off;
  while (p < end) {
    let c = buf[p]!;
    while (c === 0x5b /* [ */) {
      if (++p >= end) return -1;
      c = buf[p]!;
    }
    if (c === 0x4c /* L */) {
      const semi = buf.indexOf(0x3b, p);
      if (semi < 0 || semi >= end) return -1;
      p = semi + 1;
    } else if ('ZBCDFIJS'.includes(String.fromCharCode(c))) p++;
    else return -1;
    n++;
  }
  return n;
}

/** True if the `span` just read equals the ASCII `name`. */
export function spanEquals(buf: Buffer, name: string): boolean {
  if (span.len !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (buf[span.off + i] !== name.charCodeAt(i)) return false;
  return true;
}

// ---- writing: just enough for the frames the proxy builds itself (local replies) ----

/**
 * Appends a hessian2 string (UTF-8, length in UTF-16 units), truncated at 0xffff units. The
 * 2.0 draft has no 0x30–0x33 medium form, so `draft` writers use 'S' instead.
 */
export function writeString(out: number[], s: string, draft = false): void {
  const bytes = Buffer.from(s, 'utf8');
  const units = s.length;
  if (units <= 0x1f) out.push(units);
  else if (units <= 0x3ff && !draft) out.push(0x30 + (units >> 8), units & 0xff);
  else if (units <= 0xffff) out.push(0x53, units >> 8, units & 0xff);
  else return writeString(out, s.slice(0, 0xffff), draft); // a reply message never needs more
  for (const b of bytes) out.push(b);
}

export function writeInt(out: number[], v: number): void {
  if (v >= -16 && v <= 47) out.push(0x90 + v);
  else if (v >= -2048 && v <= 2047) out.push(0xc8 + (v >> 8), v & 0xff);
  else if (v >= -262144 && v <= 262143) out.push(0xd4 + (v >> 16), (v >> 8) & 0xff, v & 0xff);
  else out.push(0x49, (v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

/**
 * The hessian 2.0 draft that Caucho Hessian 3.1 and the hessian.js/sofa-hessian-node encoders
 * still write (SOFARPC Node clients send it): class definitions are 'O' + int length + raw
 * type name, instances 'o', lists 'V' … 'z', maps 'M' … 'z', and several compact codes mean
 * other things than in the final spec. Only what SofaRequest headers carry is skipped here;
 * anything else makes the walk give up (-1), which leaves the field undecoded, never wrong.
 */
export class Hessian2DraftSkipper {
  private readonly fieldCounts: number[] = [];
  private depth = 0;

  reset(): this {
    this.fieldCounts.length = 0;
    this.depth = 0;
    return this;
  }

  addClass(fieldCount: number): this {
    this.fieldCounts.push(fieldCount);
    return this;
  }

  /** 't' u16-length raw name, or 'u' int reference; absent is fine. */
  private type(buf: Buffer, p: number, end: number): number {
    if (p >= end) return -1;
    if (buf[p] === 0x74) {
      if (p + 3 > end) return -1;
      const q = p + 3 + buf.readUInt16BE(p + 1);
      return q <= end ? q : -1;
    }
    if (buf[p] === 0x75) return readInt(buf, p + 1, end);
    return p;
  }

  /** 'n' u8 or 'l' int32 list length; absent is fine. */
  private length(buf: Buffer, p: number, end: number): number {
    if (p >= end) return -1;
    if (buf[p] === 0x6e) return p + 2 <= end ? p + 2 : -1;
    if (buf[p] === 0x6c) return p + 5 <= end ? p + 5 : -1;
    return p;
  }

  private until(buf: Buffer, p: number, end: number, perItem: number): number {
    for (;;) {
      if (p >= end) return -1;
      if (buf[p] === 0x7a) return p + 1;
      for (let i = 0; i < perItem; i++) {
        p = this.skip(buf, p, end);
        if (p < 0) return -1;
      }
    }
  }

  skip(buf: Buffer, pos: number, end: number): number {
    if (pos >= end || ++this.depth > Hessian2Skipper.MAX_DEPTH) return -1;
    const r = this.skipOne(buf, pos, end);
    this.depth--;
    return r;
  }

  private skipOne(buf: Buffer, pos: number, end: number): number {
    const b = buf[pos]!;
    if (b <= 0x1f || b === 0x53) return readString(buf, pos, end);
    if (b === 0x73) {
      // 's' non-final chunks, then an 'S' or short final chunk
      let p = pos;
      while (p < end && buf[p] === 0x73) {
        if (p + 3 > end) return -1;
        p = utf8SkipChars(buf, p + 3, end, buf.readUInt16BE(p + 1));
        if (p < 0) return -1;
      }
      return readString(buf, p, end);
    }
    let n = -1;
    if (b >= 0x20 && b <= 0x2f) n = 1 + (b - 0x20);
    else if ((b >= 0x80 && b <= 0xbf) || (b >= 0xd8 && b <= 0xef)) n = 1;
    else if ((b >= 0xc0 && b <= 0xcf) || b >= 0xf0) n = 2;
    else if ((b >= 0xd0 && b <= 0xd7) || (b >= 0x38 && b <= 0x3f)) n = 3;
    else if (b === 0x4e || b === 0x54 || b === 0x46 || b === 0x67 || b === 0x68) n = 1;
    else if (b === 0x69 || b === 0x4a) n = 2; // double as byte, ref as byte
    else if (b === 0x6a || b === 0x4b) n = 3; // double as short, ref as short
    else if (b === 0x49 || b === 0x77 || b === 0x6b || b === 0x52) n = 5; // int, long as int, float, ref
    else if (b === 0x44 || b === 0x4c || b === 0x64) n = 9; // double, long, date
    if (n > 0) return pos + n <= end ? pos + n : -1;
    switch (b) {
      case 0x62: // 'b' binary chunks then 'B'
      case 0x42: {
        let p = pos;
        for (;;) {
          if (p + 3 > end) return -1;
          const t = buf[p]!;
          if (t !== 0x62 && t !== 0x42) return -1;
          p += 3 + buf.readUInt16BE(p + 1);
          if (p > end) return -1;
          if (t === 0x42) return p;
        }
      }
      case 0x56: {
        // 'V' type? length? values 'z'
        let p = this.type(buf, pos + 1, end);
        if (p < 0) return -1;
        p = this.length(buf, p, end);
        return p < 0 ? -1 : this.until(buf, p, end, 1);
      }
      case 0x76: {
        // 'v' type-ref int, length int, values
        let p = readInt(buf, pos + 1, end);
        if (p < 0) return -1;
        p = readInt(buf, p, end);
        const count = intValue;
        for (let i = 0; i < count && p >= 0; i++) p = this.skip(buf, p, end);
        return p;
      }
      case 0x4d: {
        const p = this.type(buf, pos + 1, end);
        return p < 0 ? -1 : this.until(buf, p, end, 2);
      }
      case 0x4f: {
        // class definitions, then the value that uses them (a loop: see the final form's 'C')
        let p = pos;
        while (p < end && buf[p] === 0x4f) {
          p = this.classDef(buf, p, end);
          if (p < 0) return -1;
        }
        return p < end ? this.skipOne(buf, p, end) : -1;
      }
      case 0x6f: {
        let p = readInt(buf, pos + 1, end);
        if (p < 0) return -1;
        const count = intValue >= 0 && intValue < this.fieldCounts.length ? this.fieldCounts[intValue]! : -1;
        if (count < 0) return -1;
        for (let i = 0; i < count && p >= 0; i++) p = this.skip(buf, p, end);
        return p;
      }
      default:
        return -1;
    }
  }

  /** 'O' int-length raw-type-name int-field-count field-name-strings. */
  classDef(buf: Buffer, pos: number, end: number): number {
    let p = readInt(buf, pos + 1, end);
    if (p < 0 || intValue < 0) return -1;
    p = utf8SkipChars(buf, p, end, intValue);
    if (p < 0) return -1;
    p = readInt(buf, p, end);
    if (p < 0 || intValue < 0) return -1;
    const count = intValue;
    for (let i = 0; i < count; i++) {
      p = readString(buf, p, end);
      if (p < 0) return -1;
    }
    if (this.fieldCounts.length >= 1024) return -1;
    this.fieldCounts.push(count);
    return p;
  }
}
