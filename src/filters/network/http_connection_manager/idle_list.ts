/**
 * The idle timeout of a connection manager's HTTP/1 connections: one list and one timer for all
 * of them, instead of a Timeout (and its closure) per connection. Every connection of a manager
 * has the same timeout and goes idle at a clock reading no earlier than the one before it
 * (clock.ts never runs backwards), so appending keeps the list in deadline order: the timer only
 * ever waits for the head. A connection that leaves (a request starts, it closes) is unlinked;
 * the timer then may wake early, finds nothing due and sleeps again for the new head.
 */

/** A member: its links and when it went idle, kept on the member itself (no allocation). */
export interface IdleMember {
  idlePrev: IdleMember | null;
  idleNext: IdleMember | null;
  idleLinked: boolean;
  idleSince: number;
  /** Idle for the whole timeout; it has left the list already. */
  onIdle(): void;
}

export class IdleList {
  private head: IdleMember | null = null;
  private tail: IdleMember | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly timeoutMs: number,
    private readonly now: () => number,
  ) {}

  /** `m` is idle from `since` (it moves to the end if it was in already). */
  add(m: IdleMember, since: number): void {
    if (m.idleLinked) this.remove(m);
    m.idleSince = since;
    m.idleLinked = true;
    m.idlePrev = this.tail;
    m.idleNext = null;
    if (this.tail !== null) this.tail.idleNext = m;
    else this.head = m;
    this.tail = m;
    if (this.timer === null) this.schedule(since + this.timeoutMs);
  }

  remove(m: IdleMember): void {
    if (!m.idleLinked) return;
    const p = m.idlePrev;
    const n = m.idleNext;
    if (p !== null) p.idleNext = n;
    else this.head = n;
    if (n !== null) n.idlePrev = p;
    else this.tail = p;
    m.idlePrev = null;
    m.idleNext = null;
    m.idleLinked = false;
  }

  /** How many are idle now (tests, stats). */
  get size(): number {
    let n = 0;
    for (let m = this.head; m !== null; m = m.idleNext) n++;
    return n;
  }

  private schedule(due: number): void {
    // Never 0 ms: a deadline already passed is handled on the next turn, not in this one.
    this.timer = setTimeout(fire, Math.max(1, Math.ceil(due - this.now())), this);
    this.timer.unref();
  }

  /** @internal the timer's callback. */
  expire(): void {
    this.timer = null;
    const t = this.now();
    try {
      for (let m = this.head; m !== null && m.idleSince + this.timeoutMs <= t; m = this.head) {
        this.remove(m);
        m.onIdle();
      }
    } finally {
      // Even if one member's onIdle threw: the others still time out.
      if (this.head !== null && this.timer === null) this.schedule(this.head.idleSince + this.timeoutMs);
    }
  }
}

function fire(l: IdleList): void {
  l.expire();
}
