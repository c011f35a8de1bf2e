/**
 * Walking a binary-protocol struct without decoding it: skip whole values by their type and
 * stop at the one field a caller asked for. Used by Thrift features that read the payload
 * (payload_to_metadata, response accounting); the proxy's data path never calls it otherwise.
 */

const T_STOP = 0;
const T_BOOL = 2;
const T_BYTE = 3;
const T_DOUBLE = 4;
const T_I16 = 6;
const T_I32 = 8;
const T_I64 = 10;
const T_STRING = 11;
const T_STRUCT = 12;
const T_MAP = 13;
const T_SET = 14;
const T_LIST = 15;
const T_UUID = 16;

/** Deeper nesting than any sane IDL: a frame built to exhaust the stack is refused instead. */
const MAX_DEPTH = 64;

/** Where the value of `type` at `p` ends, or -1 when it is malformed or runs past `end`. */
export function skipValue(buf: Buffer, p: number, end: number, type: number, depth = 0): number {
  switch (type) {
    case T_BOOL:
    case T_BYTE:
      return p + 1 <= end ? p + 1 : -1;
    case T_I16:
      return p + 2 <= end ? p + 2 : -1;
    case T_I32:
      return p + 4 <= end ? p + 4 : -1;
    case T_DOUBLE:
    case T_I64:
      return p + 8 <= end ? p + 8 : -1;
    case T_UUID:
      return p + 16 <= end ? p + 16 : -1;
    case T_STRING: {
      if (p + 4 > end) return -1;
      const n = buf.readInt32BE(p);
      return n >= 0 && p + 4 + n <= end ? p + 4 + n : -1;
    }
    case T_STRUCT: {
      if (depth >= MAX_DEPTH) return -1;
      for (;;) {
        if (p >= end) return -1;
        const ft = buf[p]!;
        if (ft === T_STOP) return p + 1;
        if (p + 3 > end) return -1;
        p = skipValue(buf, p + 3, end, ft, depth + 1);
        if (p < 0) return -1;
      }
    }
    case T_MAP: {
      if (depth >= MAX_DEPTH || p + 6 > end) return -1;
      const kt = buf[p]!;
      const vt = buf[p + 1]!;
      let n = buf.readInt32BE(p + 2);
      if (n < 0) return -1;
      p += 6;
      // Every value takes at least one byte: a forged count ends at the frame's end.
      while (n-- > 0) {
        p = skipValue(buf, p, end, kt, depth + 1);
        if (p < 0) return -1;
        p = skipValue(buf, p, end, vt, depth + 1);
        if (p < 0) return -1;
      }
      return p;
    }
    case T_SET:
    case T_LIST: {
      if (depth >= MAX_DEPTH || p + 5 > end) return -1;
      const et = buf[p]!;
      let n = buf.readInt32BE(p + 1);
      if (n < 0) return -1;
      p += 5;
      while (n-- > 0) {
        p = skipValue(buf, p, end, et, depth + 1);
        if (p < 0) return -1;
      }
      return p;
    }
    default:
      return -1;
  }
}

/**
 * The scalar at a path of field ids through nested structs, starting in the struct at `p`, as
 * Envoy's payload extractors print it: strings as they are, integers in decimal (a byte
 * unsigned, a bool as 1/0), doubles with six decimals. null when a field on the path is absent,
 * is not a struct where the path goes on, is not a scalar at its end, or the struct is malformed.
 */
export function scalarAt(buf: Buffer, p: number, end: number, ids: readonly number[]): string | null {
  let level = 0;
  for (;;) {
    if (p >= end) return null;
    const ft = buf[p]!;
    if (ft === T_STOP || p + 3 > end) return null;
    const id = buf.readInt16BE(p + 1);
    p += 3;
    if (id === ids[level]) {
      if (level === ids.length - 1) return scalar(buf, p, end, ft);
      if (ft !== T_STRUCT) return null;
      level++; // go on inside this struct
      continue;
    }
    p = skipValue(buf, p, end, ft);
    if (p < 0) return null;
  }
}

function scalar(buf: Buffer, p: number, end: number, type: number): string | null {
  if (skipValue(buf, p, end, type) < 0) return null;
  switch (type) {
    case T_BOOL:
      return buf[p] ? '1' : '0';
    case T_BYTE:
      return String(buf[p]);
    case T_I16:
      return String(buf.readInt16BE(p));
    case T_I32:
      return String(buf.readInt32BE(p));
    case T_I64:
      return buf.readBigInt64BE(p).toString();
    case T_DOUBLE:
      return buf.readDoubleBE(p).toFixed(6);
    case T_STRING:
      return buf.toString('utf8', p + 4, p + 4 + buf.readInt32BE(p));
    default:
      return null;
  }
}

/**
 * Whether a REPLY's result struct at `p` carries the return value (field 0) rather than a
 * declared exception (field 1 and up). Like Envoy, a void method's empty result counts as not
 * a success.
 */
export function replyIsSuccess(buf: Buffer, p: number, end: number): boolean {
  return p + 3 <= end && buf[p] !== T_STOP && buf.readInt16BE(p + 1) === 0;
}
