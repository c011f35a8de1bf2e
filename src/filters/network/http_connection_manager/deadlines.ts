/**
 * Route timeouts of HTTP/2 exchanges and HTTP/1 streams, and the idle timeouts of HTTP/1
 * connections (and, once closing, their wait for the client's FIN): one Node timer per timeout
 * length instead of a setTimeout and clearTimeout per request or connection. Owners with the
 * same timeout fall due in the order they were armed, so each length keeps a FIFO list (links
 * kept in the owner, nothing allocated per request) and one timer set for its head; a disarmed
 * owner just leaves the list, and the timer then fires early at worst and sleeps again for the
 * new head.
 */
import { now as clockNow } from '../../../protocols/http1/clock.js';

/** What a list holds; the links are the owner's own fields. */
export interface DeadlineOwner {
  dlPrev: DeadlineOwner | null;
  dlNext: DeadlineOwner | null;
  /** clock.ts now() at which onDeadline is due. */
  dlDue: number;
  /** The list it is armed in; null when not armed. */
  dlList: DeadlineList | null;
  /** The deadline passed; the owner is already disarmed. */
  onDeadline(): void;
}

/** Lists by timeout in ms; one goes once its timer finds it empty (grpc-timeout lengths vary per request). */
const LISTS = new Map<number, DeadlineList>();
/**
 * Empty lists kept, with their timers, for the next request of that length. Beyond this many
 * lengths (gRPC clients send a different grpc-timeout on nearly every call) an emptied list goes
 * at once, so idle lists and their timers never pile up.
 */
const KEEP_LENGTHS = 8;

/** Arms `o` to be told in `ms` milliseconds (ms > 0), replacing a deadline it has. */
export function armDeadline(o: DeadlineOwner, ms: number): void {
  if (o.dlList !== null) o.dlList.remove(o);
  let l = LISTS.get(ms);
  if (l === undefined) LISTS.set(ms, (l = new DeadlineList(ms)));
  l.add(o);
}

/** @internal for tests: timeout lengths with a list now. */
export function deadlineLengths(): number {
  return LISTS.size;
}

/** Takes `o` out of its list, if it is in one. */
export function disarmDeadline(o: DeadlineOwner): void {
  const l = o.dlList;
  if (l !== null) l.remove(o);
}

export class DeadlineList {
  private head: DeadlineOwner | null = null;
  private tail: DeadlineOwner | null = null;
  /** Due no later than the head's deadline, or null. */
  private timer: NodeJS.Timeout | null = null;
  /** The timer keeps the process alive only while someone waits on it, as a request's own timer did. */
  private refed = false;

  constructor(private readonly ms: number) {}

  add(o: DeadlineOwner): void {
    o.dlDue = clockNow() + this.ms;
    o.dlList = this;
    o.dlNext = null;
    const t = this.tail;
    o.dlPrev = t;
    if (t !== null) t.dlNext = o;
    else this.head = o;
    this.tail = o;
    // Every later owner is due no earlier (one length, a clock that never runs back): a running
    // timer is early enough. None runs while fire() calls owners: set one for the head.
    if (this.timer === null) {
      const h = this.head!;
      this.start(h === o ? this.ms : Math.max(1, Math.ceil(h.dlDue - o.dlDue + this.ms)));
    } else if (!this.refed) {
      this.timer.ref();
      this.refed = true;
    }
  }

  remove(o: DeadlineOwner): void {
    const p = o.dlPrev;
    const n = o.dlNext;
    if (p !== null) p.dlNext = n;
    else this.head = n;
    if (n !== null) n.dlPrev = p;
    else this.tail = p;
    o.dlPrev = o.dlNext = null;
    o.dlList = null;
    if (this.head !== null) return;
    if (LISTS.size > KEEP_LENGTHS) {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      this.refed = false;
      if (LISTS.get(this.ms) === this) LISTS.delete(this.ms);
    } else if (this.refed) {
      this.timer!.unref();
      this.refed = false;
    }
  }

  private start(ms: number): void {
    this.timer = setTimeout(() => this.fire(), ms);
    this.refed = true;
  }

  private fire(): void {
    this.timer = null;
    this.refed = false;
    const now = clockNow();
    try {
      // libuv's loop time trails the monotonic clock by under a millisecond: within one counts as due.
      for (let o = this.head; o !== null && o.dlDue - now < 1; o = this.head) {
        this.remove(o);
        o.onDeadline();
      }
    } finally {
      // Also after a throwing owner: the others still time out.
      const h = this.head;
      if (h !== null) {
        if (this.timer === null) this.start(Math.max(1, Math.ceil(h.dlDue - clockNow())));
      } else if (this.timer === null && LISTS.get(this.ms) === this) LISTS.delete(this.ms);
    }
  }
}
