import { H, type RpcCodec } from '../../../protocols/types.js';

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
  ) {}

  push(data: Buffer): void {
    let buf = data;
    if (this.rest) {
      buf = Buffer.concat([this.rest, data]);
      this.rest = null;
    }
    const hdr = this.hdr;
    const end = buf.length;
    let off = 0;
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
    if (off < end) this.rest = buf.subarray(off);
  }

  /** Bytes held for an incomplete frame (bounded by maxFrame through the decoder). */
  get buffered(): number {
    return this.rest?.length ?? 0;
  }
}
