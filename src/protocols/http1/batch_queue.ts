/**
 * Items queued while a read batch is handled and served once at its end (an onBatchEnd hook):
 * the sessions holding response bytes, the upstream connections holding a request head. At a
 * fixed request rate a batch carries one or two reads, so the `[]` swapped in per batch and the
 * backing store its first push grows (~180 bytes) came to about a tenth of the garbage of a
 * keep-alive exchange. Two arrays are reused instead: the one being served is set aside while
 * its items run, and its slots are cleared so a served item is not kept alive.
 */
export class BatchQueue<T> {
  private items: (T | null)[] = [];
  private n = 0;
  /** The array not in use; null while drain() runs over it. */
  private spare: (T | null)[] | null = [];

  get length(): number {
    return this.n;
  }

  push(x: T): void {
    this.items[this.n++] = x;
  }

  /**
   * Calls `fn` on every item queued so far, in order; items queued meanwhile (by `fn`) wait for
   * the next drain, as with a fresh array swapped in. A throw from `fn` drops the items after it.
   */
  drain(fn: (x: T) => void): void {
    const n = this.n;
    if (n === 0) return;
    const q = this.items;
    this.items = this.spare ?? [];
    this.spare = null;
    this.n = 0;
    for (let i = 0; i < n; i++) {
      const x = q[i]!;
      q[i] = null;
      fn(x);
    }
    this.spare = q;
  }
}
