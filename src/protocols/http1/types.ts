/**
 * HTTP/1.1 message heads as the proxy sees them: the request or status line as strings (routing
 * needs them), every header as offsets into the bytes it arrived in (forwarding copies those bytes
 * and never builds a string for a header nobody asked about), and the framing facts decoded once.
 */

/** What `parseRequestHead` / `parseResponseHead` return besides a head. */
export const HeadStatus = {
  /** The head is not complete yet; call again with more bytes. */
  NEED_MORE: 0,
  /** Syntax error, conflicting framing, bad version: answer 400 and close. */
  MALFORMED: -1,
  /** Head longer than the limit or too many headers: answer 431 and close. */
  TOO_LARGE: -2,
} as const;

/** Headers the parser recognizes while scanning, so framing and hop-by-hop handling need no lookup. */
// HeaderKind and F are const enums: tsc writes their numbers in place. As `as const` objects each
// use was a module-variable load, a hole check, a map check and a field load in TurboFan's code
// (~8 instructions), five or more per header field in the HTTP/1 loops.
export const enum HeaderKind {
  OTHER = 0,
  HOST = 1,
  CONTENT_LENGTH = 2,
  TRANSFER_ENCODING = 3,
  CONNECTION = 4,
  KEEP_ALIVE = 5,
  PROXY_CONNECTION = 6,
  UPGRADE = 7,
  EXPECT = 8,
  TE = 9,
  /** Not framing: tagged so that a proxy replacing it (server_header_transformation) needs no name check. */
  SERVER = 10,
}

/** Slots per header in `MessageHead.fields`. */
export const enum F {
  KIND = 0,
  NAME_START = 1,
  NAME_END = 2,
  VALUE_START = 3,
  VALUE_END = 4,
  SIZE = 5,
}

export interface MessageHead {
  /** The bytes the offsets in `fields` point into (kept alive by this head). */
  readonly buf: Buffer;
  /** Offset of the first byte of the head in `buf`. */
  readonly start: number;
  /** Bytes of the whole head including the blank line (and any leading empty lines skipped). */
  readonly headBytes: number;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly versionMinor: number;
  /** Requests only ('' on responses). */
  readonly method: string;
  /** Requests only: the request-target as sent ('' on responses). */
  readonly target: string;
  /** Responses only (0 on requests). */
  readonly status: number;
  /**
   * The headers, F.SIZE numbers each in arrival order, are fieldSlots[fieldsAt, fieldsEnd). The
   * array is shared: the native parser writes each head's records where they then stay, one head
   * after another along a large array (a copy per head cost ~80 instructions a header), so
   * nothing outside the range belongs to this head.
   */
  readonly fieldSlots: Int32Array;
  readonly fieldsAt: number;
  readonly fieldsEnd: number;
  /** -1 when absent. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** A `Connection: close` token was present. */
  readonly connectionClose: boolean;
  /** A `Connection: keep-alive` token was present (matters for HTTP/1.0). */
  readonly connectionKeepAlive: boolean;
  /** `Connection: upgrade` with an Upgrade header. */
  readonly upgrade: boolean;
  /** `Expect: 100-continue`. */
  readonly expectContinue: boolean;
  /** The Host header value, '' when absent. */
  readonly host: string;
}

/** A head's field records as a plain array of their own: for tests and diagnostics, not the data path. */
export function fieldsOf(head: MessageHead): number[] {
  return Array.from(head.fieldSlots.subarray(head.fieldsAt, head.fieldsEnd));
}
