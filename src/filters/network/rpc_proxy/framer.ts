import { isBatchDecoder, type BatchDecoder } from '../../../protocols/native_codec.js';
import { H, type RpcCodec } from '../../../protocols/types.js';

/** Frames decoded per native call: one crossing into the addon per read, not per frame. */
const BATCH = 32;

/**
 * Cuts a byte stream into frames with a codec's header decoder. Frames are handed out as
 * (buffer, offset) into the bytes as read — no copy unless a frame spans two reads, when the
 * tail is joined with the next read once. `hdr` holds the decoded header of the frame being
 * delivered and is reused for every frame (no per-frame objects).
 */
export class Framer {
  readonly hdr = new Int32Array(H.SIZE);
  private rest: Buffer | null = null;

  constructor(
    private readonly codec: RpcCodec,
    private readonly maxFrame: number,
    /** Called per whole frame; `hdr` is valid only during the call. */
    private readonly onFrame: (buf: Buffer, off: number, hdr: Int32Array) => void,
    /** A malformed frame: the caller closes the connection. */
    private readonly onError: (code: number) => void,
  ) {
    this.batch = isBatchDecoder(codec) ? codec : null;
    this.records = this.batch ? new Int32Array(BATCH * H.SIZE) : null;
    // Bound once: a read then passes three arguments to the addon, not seven.
    this.decode = this.batch?.bindFrames?.(maxFrame, this.records!, BATCH) ?? null;
    if (this.batch) this.initBatch();
  }

  private readonly batch: (RpcCodec & BatchDecoder) | null;
  private readonly decode: ((buf: Buffer, off: number, end: number) => number) | null;
  private readonly records: Int32Array | null;
  private readonly views: Int32Array[] = [];

  /** With a native batch decoder, every whole frame of a read is decoded in one call. */
  private initBatch(): void {
    for (let i = 0; i < BATCH; i++) this.views.push(this.records!.subarray(i * H.SIZE, (i + 1) * H.SIZE));
  }

  push(data: Buffer): void {
    this.pushAt(data, 0, data.length, true);
  }

  /**
   * Frames from `buf[start, end)`. `owned`: the bytes stay valid after the call (a Buffer of
   * the caller's); otherwise (the batch reader's arena) frames are valid only during onFrame
   * and the tail of a partial frame is copied.
   */
  pushAt(buf: Buffer, start: number, end: number, owned: boolean): void {
    if (this.rest) {
      const rest = this.rest;
      this.rest = null;
      const joined = Buffer.allocUnsafe(rest.length + end - start);
      rest.copy(joined, 0);
      buf.copy(joined, rest.length, start, end);
      buf = joined;
      start = 0;
      end = joined.length;
      owned = true;
    }
    if (this.batch) return this.pushBatched(buf, start, end, owned);
    const hdr = this.hdr;
    let off = start;
    while (off < end) {
      this.codec.decodeHeader(buf, off, end, this.maxFrame, hdr);
      const state = hdr[H.STATE]!;
      if (state < 0) {
        this.onError(state);
        return;
      }
      if (state === 0) break;
      const len = hdr[H.FRAME_LEN]!;
      this.onFrame(buf, off, hdr);
      off += len;
    }
    if (off < end) this.keep(buf, off, end, owned);
  }

  /** The bytes of a partial frame wait for the next read (copied out of a borrowed buffer). */
  private keep(buf: Buffer, off: number, end: number, owned: boolean): void {
    this.rest = owned ? buf.subarray(off, end) : Buffer.from(buf.subarray(off, end));
  }

  private pushBatched(buf: Buffer, start: number, end: number, owned: boolean): void {
    let off = start;
    while (off < end) {
      const n = this.decode !== null ? this.decode(buf, off, end) : this.batch!.decodeFrames(buf, off, end, this.maxFrame, this.records!, BATCH);
      let i = 0;
      for (; i < n; i++) {
        const h = this.views[i]!;
        const state = h[H.STATE]!;
        if (state < 0) {
          this.onError(state);
          return;
        }
        if (state === 0) break;
        this.onFrame(buf, off, h);
        off += h[H.FRAME_LEN]!;
      }
      // Fewer records than asked, or a partial frame: everything whole has been delivered.
      if (i < n || n < BATCH) break;
    }
    if (off < end) this.keep(buf, off, end, owned);
  }

  /** Takes the bytes of an incomplete frame (the connection is moving to another process). */
  takeRest(): Buffer {
    const r = this.rest ?? Buffer.alloc(0);
    this.rest = null;
    return r;
  }

  /** Bytes held for an incomplete frame (bounded by maxFrame through the decoder). */
  get buffered(): number {
    return this.rest?.length ?? 0;
  }
}
