/**
 * The contract between the RPC proxy engine and a protocol codec. A codec does the byte work
 * of one wire protocol and nothing else: it finds frame boundaries and the offsets of the
 * fields routing may need, rewrites request ids in place, and builds the few frames the proxy
 * writes itself (heartbeat acks, local error replies). It never deserializes a body.
 *
 * Decoded headers are written into a caller-owned Int32Array indexed by `H`, so the data path
 * allocates nothing per frame and the native decoder can fill the same layout.
 */

/** Slots of a decoded frame header. Offsets are absolute into the buffer; -1 = absent/not decoded. */
export const H = {
  /** 1 = a whole frame is present; 0 = need more bytes; < 0 = a DecodeError. */
  STATE: 0,
  /** Bytes of the whole frame, header included (valid when STATE = 1, and when STATE = 0 once the header is in). */
  FRAME_LEN: 1,
  KIND: 2,
  /** Request id: Bolt uses ID_LO only (u32 as int32); Dubbo's int64 is split in two. */
  ID_HI: 3,
  ID_LO: 4,
  /** The caller's own timeout in ms carried by the frame (Bolt), 0 = none. */
  TIMEOUT_MS: 5,
  /** Response status as the protocol numbers it. */
  STATUS: 6,
  SERVICE_OFF: 7,
  SERVICE_LEN: 8,
  VERSION_OFF: 9,
  VERSION_LEN: 10,
  METHOD_OFF: 11,
  METHOD_LEN: 12,
  GROUP_OFF: 13,
  GROUP_LEN: 14,
  /** Where the body (Dubbo) or content (Bolt) starts. */
  BODY_OFF: 15,
  /** Offset of the target application name (Bolt `sofa_head_target_app`), -1 if absent. */
  APP_OFF: 16,
  APP_LEN: 17,
  /** Serialization as the protocol numbers it (Dubbo flag bits, Bolt codec byte). */
  SERIALIZATION: 18,
  SIZE: 19,
} as const;

export const FrameKind = {
  REQUEST: 1,
  ONEWAY: 2,
  RESPONSE: 3,
  HEARTBEAT: 4,
  HEARTBEAT_RESPONSE: 5,
  /** Any other event/control frame: tolerated and counted, never routed. */
  EVENT: 6,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export const DecodeError = {
  BAD_MAGIC: -1,
  TOO_LARGE: -2,
  BAD_HEADER: -3,
  UNKNOWN_TYPE: -4,
  BAD_BODY: -5,
} as const;

export function decodeErrorName(code: number): string {
  for (const [k, v] of Object.entries(DecodeError)) if (v === code) return k.toLowerCase();
  return `error_${code}`;
}

/** Why the proxy answers a request itself; each codec maps it onto its own status codes. */
export type LocalReplyKind = 'no_route' | 'no_upstream' | 'overflow' | 'timeout' | 'bad_request';

export type ResponseClass = 'success' | 'failed' | 'overloaded' | 'timeout';

/** A routing field a codec decodes only on demand (it costs a body walk). */
export type LazyField = 'method' | 'group';

export interface RpcCodec {
  readonly name: string;
  /**
   * Decodes the header of the frame starting at `off` (the frame may extend past `end`, in which
   * case STATE = 0). Fills every slot of `out`; lazy slots get -1 unless they come for free.
   * Must never read past `end` and must reject a frame longer than `maxFrame`.
   */
  decodeHeader(buf: Buffer, off: number, end: number, maxFrame: number, out: Int32Array): void;
  /** Fills METHOD_* or GROUP_* of a whole request frame at `off` (-2 in *_OFF if undecodable). */
  decodeLazy(buf: Buffer, off: number, out: Int32Array, field: LazyField): void;
  /** Rewrites the request id of the frame at `off` in place. */
  writeRequestId(buf: Buffer, off: number, hi: number, lo: number): void;
  /** The ack for the heartbeat frame at `off`, with the same id. */
  heartbeatResponse(buf: Buffer, off: number, hdr: Int32Array): Buffer;
  /** A heartbeat request with the given id (keeps idle upstream connections alive); null if the protocol has none. */
  heartbeatRequest(hi: number, lo: number): Buffer | null;
  /**
   * The value of a request metadata entry (Bolt header map, Dubbo attachment) for header
   * matching in routes; walks the frame, so it is only called when a route asks.
   */
  lookup(buf: Buffer, off: number, hdr: Int32Array, key: string): string | undefined;
  /**
   * Argument `index` (0-based) of a request as text (a string, or an integer in decimal), for
   * routes matching on method parameters (dubbo_proxy `params_match`); undefined when the call
   * has no such argument or it is of another type. Optional: only codecs with typed arguments.
   */
  param?(buf: Buffer, off: number, hdr: Int32Array, index: number): string | undefined;
  /**
   * What a response says about the provider's health, for outlier detection: `failed` for
   * server-side errors, `overloaded` for a provider shedding load, `timeout` for a provider
   * timeout; business exceptions are `success`. Optional: a codec without it counts every
   * response as a success.
   */
  classify?(hdr: Int32Array): ResponseClass;
  /** An error response to the request at `off`, in the protocol's own format, carrying its id. */
  localReply(buf: Buffer, off: number, hdr: Int32Array, kind: LocalReplyKind, message: string): Buffer;
}
