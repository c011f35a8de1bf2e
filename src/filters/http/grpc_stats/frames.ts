/**
 * Counts gRPC length-prefixed messages (1 flag byte, 4-byte big-endian length, payload) in a body
 * that comes in chunks, without copying: a frame counts when its flag byte is seen, and payloads
 * are stepped over, so a chunk costs one step per frame header byte. A flag byte other than 0 or
 * 1 (compressed) is not gRPC framing: counting stops there for good.
 */
export class FrameCounter {
  /** Frames started so far. */
  count = 0;
  /** 0: at a frame's flag byte; 1-4: in its length; 5: in its payload; -1: not gRPC framing. */
  private pos = 0;
  private len = 0;
  private left = 0;

  /** Counts the frames that start in `b`; returns how many did. */
  inspect(b: Buffer): number {
    const n = b.length;
    let i = 0;
    let found = 0;
    let pos = this.pos;
    while (i < n && pos >= 0) {
      if (pos === 5) {
        const take = Math.min(this.left, n - i);
        i += take;
        if ((this.left -= take) === 0) pos = 0;
        continue;
      }
      const c = b[i++]!;
      if (pos === 0) {
        if (c > 1) {
          pos = -1;
          break;
        }
        found++;
        this.len = 0;
        pos = 1;
        continue;
      }
      this.len = this.len * 256 + c;
      if (pos < 4) pos++;
      else if (this.len === 0) pos = 0;
      else {
        this.left = this.len;
        pos = 5;
      }
    }
    this.pos = pos;
    this.count += found;
    return found;
  }
}
