/**
 * Earliest-deadline-first schedule over entries 0..n-1, as Envoy weights round robin and least
 * request: an entry picked at time t is due again at t + 1/weight, the earliest deadline goes
 * next, ties go to the entry queued first. Over any window an entry's share is its share of the
 * total weight, and picks of heavy entries are spread between light ones rather than bunched.
 *
 * The heap lives in typed arrays and a pick re-queues in place, so `pick` allocates nothing.
 * `weight(i)` is asked when an entry is (re)queued, so a weight that changes with load (least
 * request) takes effect at that entry's next turn, exactly as in Envoy.
 */
export class EdfScheduler {
  private deadline = new Float64Array(0);
  /** Queue order, the tie-breaker. Float64 counts exactly far past any realistic pick count. */
  private order = new Float64Array(0);
  private entry = new Int32Array(0);
  private size = 0;
  private now = 0;
  private nextOrder = 0;

  constructor(private readonly weight: (index: number) => number) {}

  get length(): number {
    return this.size;
  }

  /**
   * Rebuilds the schedule for entries 0..n-1 as if `picks` picks had already been made (Envoy's
   * createWithPicks): a balancer seeded with a random count starts at a random point of the
   * rotation, so a fleet of sidecars does not hit the same host in lockstep. Most of the picks
   * are placed in closed form, the remainder (< n) are made one by one.
   */
  reset(n: number, picks: number): void {
    this.deadline = new Float64Array(n);
    this.order = new Float64Array(n);
    this.entry = new Int32Array(n);
    this.size = n;
    this.now = 0;
    this.nextOrder = n;
    if (n === 0) return;
    picks = (picks >>> 0) % 429496729;
    // A tiny epsilon keeps weights that are multiples of each other from rounding a closed-form
    // deadline to the wrong side of a tie (Envoy found and fixed the same case).
    let sum = 0;
    const w = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      w[i] = this.weight(i) + 1e-13;
      sum += w[i]!;
    }
    let done = 0;
    let maxPickTime = 0;
    for (let i = 0; i < n; i++) {
      let floor = Math.floor((w[i]! * picks) / sum);
      if (floor > 0 && floor / w[i]! >= picks / sum) floor--;
      maxPickTime = Math.max(maxPickTime, floor / w[i]!);
      this.deadline[i] = (floor + 1) / w[i]!;
      this.order[i] = i;
      this.entry[i] = i;
      done += floor;
    }
    this.now = maxPickTime;
    for (let i = (n >>> 1) - 1; i >= 0; i--) this.siftDown(i);
    for (; done < picks; done++) this.pick();
  }

  /** The entry with the earliest deadline, re-queued with its current weight; -1 when empty. */
  pick(): number {
    if (this.size === 0) return -1;
    const e = this.entry[0]!;
    this.now = this.deadline[0]!;
    // Deadlines only grow; rebasing keeps 1/weight steps from vanishing into the rounding of a
    // large clock after a very long run.
    if (this.now > 1e6) this.rebase();
    this.deadline[0] = this.now + 1 / this.weight(e);
    this.order[0] = this.nextOrder++;
    this.siftDown(0);
    return e;
  }

  private rebase(): void {
    const base = this.now;
    for (let i = 0; i < this.size; i++) this.deadline[i]! -= base;
    this.now = 0;
  }

  private less(a: number, b: number): boolean {
    const da = this.deadline[a]!;
    const db = this.deadline[b]!;
    return da < db || (da === db && this.order[a]! < this.order[b]!);
  }

  private siftDown(i: number): void {
    const n = this.size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const c = r < n && this.less(r, l) ? r : l;
      if (!this.less(c, i)) return;
      this.swap(i, c);
      i = c;
    }
  }

  private swap(a: number, b: number): void {
    const d = this.deadline[a]!;
    this.deadline[a] = this.deadline[b]!;
    this.deadline[b] = d;
    const o = this.order[a]!;
    this.order[a] = this.order[b]!;
    this.order[b] = o;
    const e = this.entry[a]!;
    this.entry[a] = this.entry[b]!;
    this.entry[b] = e;
  }
}
