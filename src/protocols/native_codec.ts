/**
 * Native header decoding for the RPC codecs. `nativeCodec(tsCodec)` returns the same codec with
 * decodeHeader/decodeLazy done by the addon (native/codec/, same slots and results as the
 * TypeScript decoders) and everything that builds frames (heartbeat acks, local replies, id
 * rewrites) left to TypeScript. The wrapped codec also has the `BatchDecoder` ability: one call
 * into the addon decodes every whole frame of a read, which amortizes the cost of crossing
 * the boundary (~100 ns per call) over all of them.
 */
import { NativeLoadError } from '../errors.js';
import { loadNative, NativeCodecProtocol, NativeLazyField, type NativeBinding } from '../native.js';
import { H, type LazyField, type RpcCodec } from './types.js';

/** An optional codec ability: decode consecutive frames in one call. */
export interface BatchDecoder {
  /**
   * Decodes frames from `off` into consecutive H.SIZE-slot records of `out` (at most
   * `maxFrames`, and no more than `out` holds). Returns the number of records filled: every one
   * but the last has STATE 1; the last may be a partial frame (STATE 0) or an error (STATE < 0),
   * where decoding stopped. `end - off` bytes all consumed as whole frames = no trailing record.
   */
  decodeFrames(buf: Buffer, off: number, end: number, maxFrame: number, out: Int32Array, maxFrames: number): number;
  /**
   * decodeFrames with `maxFrame`, `out` and `maxFrames` fixed once (a framer's own records):
   * the returned function takes (buf, off, end). Optional: null when the addon predates it.
   */
  bindFrames?(maxFrame: number, out: Int32Array, maxFrames: number): ((buf: Buffer, off: number, end: number) => number) | null;
}

const PROTOCOLS: Readonly<Record<string, NativeCodecProtocol>> = {
  bolt: NativeCodecProtocol.BOLT,
  dubbo: NativeCodecProtocol.DUBBO,
};

const LAZY: Readonly<Record<LazyField, NativeLazyField>> = {
  method: NativeLazyField.METHOD,
  group: NativeLazyField.GROUP,
};

/** True if the addon has a decoder for the codec named `name`. */
export function hasNativeDecoder(name: string): boolean {
  return Object.hasOwn(PROTOCOLS, name);
}

/**
 * `codec` with its decoding done natively. The result inherits every other member of `codec`
 * (builders, extra abilities) through its prototype. Throws NativeLoadError when the addon cannot
 * be loaded or has no decoder for this protocol: a start-up failure, never a silent fallback.
 */
export function nativeCodec<C extends RpcCodec>(codec: C, binding: NativeBinding = loadNative()): C & BatchDecoder {
  const protocol = PROTOCOLS[codec.name];
  if (protocol === undefined) throw new NativeLoadError(`the native addon has no decoder for protocol "${codec.name}" (it has: ${Object.keys(PROTOCOLS).join(', ')})`);
  const { decodeHeader, decodeLazy, decodeFrames, bindFrameDecoder } = binding;
  if (typeof decodeHeader !== 'function' || typeof decodeLazy !== 'function' || typeof decodeFrames !== 'function') {
    throw new NativeLoadError('the native addon predates codec decoding (no decodeHeader export): rebuild it with "npx node-gyp rebuild"');
  }
  const overrides: Pick<RpcCodec, 'decodeHeader' | 'decodeLazy'> & BatchDecoder = {
    decodeHeader: (buf, off, end, maxFrame, out) => decodeHeader(protocol, buf, off, end, maxFrame, out),
    decodeLazy: (buf, off, out, field) => decodeLazy(protocol, buf, off, out, LAZY[field]),
    decodeFrames: (buf, off, end, maxFrame, out, maxFrames) => decodeFrames(protocol, buf, off, end, maxFrame, out, maxFrames),
    bindFrames: (maxFrame, out, maxFrames) => (typeof bindFrameDecoder === 'function' ? bindFrameDecoder(protocol, maxFrame, out, maxFrames) : null),
  };
  return Object.freeze(Object.assign(Object.create(codec) as C, overrides));
}

export function isBatchDecoder(codec: RpcCodec): codec is RpcCodec & BatchDecoder {
  return typeof (codec as Partial<BatchDecoder>).decodeFrames === 'function';
}

const scratch = new Int32Array(H.SIZE);

/**
 * For the framer: `BatchDecoder.decodeFrames` semantics with any codec — one native call when
 * the codec has the ability, else its decodeHeader frame by frame.
 */
export function decodeFrames(codec: RpcCodec, buf: Buffer, off: number, end: number, maxFrame: number, out: Int32Array, maxFrames: number): number {
  if (isBatchDecoder(codec)) return codec.decodeFrames(buf, off, end, maxFrame, out, maxFrames);
  const cap = Math.min(maxFrames, Math.floor(out.length / H.SIZE));
  let n = 0;
  let pos = off;
  while (n < cap && pos < end) {
    codec.decodeHeader(buf, pos, end, maxFrame, scratch);
    out.set(scratch, n * H.SIZE);
    n++;
    if (scratch[H.STATE] !== 1) break;
    pos += scratch[H.FRAME_LEN]!;
  }
  return n;
}
