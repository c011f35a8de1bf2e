/**
 * Finds where an HTTP/1.1 body ends without copying or decoding it: Content-Length counts bytes,
 * chunked walks the chunk-size lines and skips the data, and the proxy forwards the very bytes it
 * received (chunk framing and trailers included). Only the framing bytes are inspected.
 */

import { TCHAR, VALUE_OK } from './decoder.js';

export const BodyMode = {
  /** No body (or it has been read completely). */
  NONE: 0,
  LENGTH: 1,
  CHUNKED: 2,
  /** A response delimited by the upstream closing the connection. */
  UNTIL_CLOSE: 3,
} as const;
export type BodyMode = (typeof BodyMode)[keyof typeof BodyMode];

/** Chunked parse states. */
const S = {
  SIZE: 0,
  /** After a ';': a chunk extension, up to the line end. */
  EXT: 1,
  SIZE_LF: 2,
  DATA: 3,
  DATA_CR: 4,
  DATA_LF: 5,
  /** At the start of a trailer line (or the final blank line). */
  TRAILER_START: 6,
  /** A trailer field's value, up to the line end. */
  TRAILER: 7,
  TRAILER_LF: 8,
  END_LF: 9,
  /** Whitespace after the hex digits: only a ';' may follow it (BWS, RFC 9112 §7.1.1). */
  SIZE_WS: 10,
  /** A trailer field's name, up to its ':'. */
  TRAILER_NAME: 11,
} as const;

/** Chunk sizes beyond 2^52 cannot be counted exactly in a double; no real body is that large. */
const MAX_SIZE_DIGITS = 13;

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** `feed` returns this when the framing is invalid (400 downstream, reset upstream). */
export const BODY_ERROR = -1;

export class BodyFramer {
  mode: BodyMode = BodyMode.NONE;
  /** LENGTH: bytes still to come. CHUNKED: data bytes left in the current chunk. */
  private remaining = 0;
  private state: number = S.SIZE;
  private digits = 0;
  /** Bytes in the current chunk-size or trailer line, against `maxLine`. */
  private lineBytes = 0;
  private trailerBytes = 0;
  /** Payload bytes seen (chunk data only, for chunked), for limits and stats. */
  payloadBytes = 0;
  /**
   * Called with each run of chunk data when set: lets a proxy strip the chunk framing for a peer
   * that cannot take it (an HTTP/1.0 client). Unset, nothing but the framing is looked at.
   */
  onPayload: ((buf: Buffer, start: number, end: number) => void) | null = null;

  constructor(private readonly maxLine = 4096, private readonly maxTrailers = 60 * 1024) {}

  /** Starts a new body. `length` matters for LENGTH only. */
  reset(mode: BodyMode, length = 0): void {
    this.mode = mode === BodyMode.LENGTH && length === 0 ? BodyMode.NONE : mode;
    this.remaining = length;
    this.state = S.SIZE;
    this.digits = 0;
    this.lineBytes = 0;
    this.trailerBytes = 0;
    this.payloadBytes = 0;
  }

  /** Takes `o`'s place in a body under way (a drained response, http1_drain.ts); not its onPayload. */
  assign(o: BodyFramer): void {
    this.mode = o.mode;
    this.remaining = o.remaining;
    this.state = o.state;
    this.digits = o.digits;
    this.lineBytes = o.lineBytes;
    this.trailerBytes = o.trailerBytes;
    this.payloadBytes = o.payloadBytes;
  }

  get done(): boolean {
    return this.mode === BodyMode.NONE;
  }

  /**
   * Consumes body bytes from buf[off, end). Returns the offset where this body's bytes stop (end
   * when the body continues past this chunk, earlier when the message completes inside it and
   * the rest belongs to the next message), or BODY_ERROR.
   */
  feed(buf: Buffer, off: number, end: number): number {
    switch (this.mode) {
      case BodyMode.NONE:
        return off;
      case BodyMode.UNTIL_CLOSE:
        this.payloadBytes += end - off;
        return end;
      case BodyMode.LENGTH: {
        const n = Math.min(this.remaining, end - off);
        this.remaining -= n;
        this.payloadBytes += n;
        if (this.remaining === 0) this.mode = BodyMode.NONE;
        return off + n;
      }
      default:
        return this.feedChunked(buf, off, end);
    }
  }

  private feedChunked(buf: Buffer, off: number, end: number): number {
    let p = off;
    while (p < end) {
      const c = buf[p]!;
      switch (this.state) {
        case S.SIZE: {
          const v = hexVal(c);
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return BODY_ERROR;
            this.remaining = this.remaining * 16 + v;
            p++;
            break;
          }
          // chunk-size = 1*HEXDIG, then a CRLF, a ';' or whitespace before one. Anything else
          // ("0x1", "1 \r\n") is a size another parser may read otherwise: it would frame the
          // forwarded body differently.
          if (this.digits === 0) return BODY_ERROR;
          this.lineBytes = this.digits;
          if (c === 0x0d) this.state = S.SIZE_LF;
          else if (c === 0x3b) this.state = S.EXT;
          else if (c === 0x20 || c === 0x09) this.state = S.SIZE_WS;
          else return BODY_ERROR;
          p++;
          break;
        }
        case S.SIZE_WS:
          if (c === 0x3b) this.state = S.EXT;
          else if (c !== 0x20 && c !== 0x09) return BODY_ERROR;
          if (++this.lineBytes > this.maxLine) return BODY_ERROR;
          p++;
          break;
        case S.EXT:
          // Chunk framing lines end in CRLF only (RFC 9112 §7.1; the bare-LF leniency of §2.2
          // covers the start-line and header fields). The body is forwarded as received, and a
          // recipient after us that ends these lines differently would frame the rest otherwise.
          if (c === 0x0d) this.state = S.SIZE_LF;
          else if (c < 0x20 && c !== 0x09) return BODY_ERROR; // a bare LF included
          else if (++this.lineBytes > this.maxLine) return BODY_ERROR;
          p++;
          break;
        case S.SIZE_LF:
          if (c !== 0x0a) return BODY_ERROR;
          this.endSizeLine();
          p++;
          break;
        case S.DATA: {
          const n = Math.min(this.remaining, end - p);
          this.remaining -= n;
          this.payloadBytes += n;
          if (this.onPayload && n > 0) this.onPayload(buf, p, p + n);
          p += n;
          if (this.remaining === 0) this.state = S.DATA_CR;
          break;
        }
        case S.DATA_CR:
          // Each chunk's data must be followed by CRLF: anything else means the size lied.
          if (c === 0x0d) this.state = S.DATA_LF;
          else return BODY_ERROR;
          p++;
          break;
        case S.DATA_LF:
          if (c !== 0x0a) return BODY_ERROR;
          this.nextChunk();
          p++;
          break;
        case S.TRAILER_START:
          if (c === 0x0d) this.state = S.END_LF;
          else if (!TCHAR[c]) return BODY_ERROR; // a bare LF, obs-fold, or no field name
          else {
            this.state = S.TRAILER_NAME;
            break; // the byte starts a trailer field's name
          }
          p++;
          break;
        // Trailer fields are forwarded as received: held to the header fields' syntax (field-name
        // ":" value, RFC 9112 §7.1.2), or a recipient after us could read a different message.
        case S.TRAILER_NAME:
          if (++this.trailerBytes > this.maxTrailers) return BODY_ERROR;
          if (c === 0x3a) this.state = S.TRAILER;
          else if (!TCHAR[c]) return BODY_ERROR;
          p++;
          break;
        case S.TRAILER:
          if (++this.trailerBytes > this.maxTrailers) return BODY_ERROR;
          if (c === 0x0d) this.state = S.TRAILER_LF;
          else if (!VALUE_OK[c]) return BODY_ERROR;
          p++;
          break;
        case S.TRAILER_LF:
          if (c !== 0x0a) return BODY_ERROR;
          this.state = S.TRAILER_START;
          p++;
          break;
        case S.END_LF:
          if (c !== 0x0a) return BODY_ERROR;
          this.mode = BodyMode.NONE;
          return p + 1;
      }
    }
    return p;
  }

  private endSizeLine(): void {
    this.state = this.remaining === 0 ? S.TRAILER_START : S.DATA;
  }

  private nextChunk(): void {
    this.state = S.SIZE;
    this.digits = 0;
    this.remaining = 0;
  }
}
