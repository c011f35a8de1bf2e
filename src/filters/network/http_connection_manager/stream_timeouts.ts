/**
 * The connection manager's `stream_idle_timeout` (no headers, data or trailers either way for
 * that long) and `request_timeout` (the whole request not received in that long). Streams of a
 * connection manager with either set are watched by one sweep timer rather than a timer each: a
 * stream stamps `last` on activity (a field write), the sweep finds the ones past due. A timeout
 * fires at most a quarter of its length late, with a floor of 10 ms between sweeps.
 */
import { now as clockNow } from '../../../protocols/http1/clock.js';

/** One watched stream; the session keeps it and stamps `last`. */
export class TimedStream {
  last: number;
  /** The whole request is in: request_timeout no longer applies. */
  requestDone = false;
  readonly started: number;

  constructor(readonly owner: { onStreamTimeout(kind: 'idle' | 'request'): void }) {
    this.started = this.last = clockNow();
  }

  touch(): void {
    this.last = clockNow();
  }
}

export class StreamTimeouts {
  private readonly streams = new Set<TimedStream>();
  private timer: NodeJS.Timeout | null = null;
  private readonly every: number;

  constructor(
    readonly idleMs: number,
    readonly requestMs: number,
  ) {
    const shortest = Math.min(idleMs > 0 ? idleMs : Infinity, requestMs > 0 ? requestMs : Infinity);
    this.every = Math.max(10, Math.floor(shortest / 4));
  }

  watch(owner: TimedStream['owner']): TimedStream {
    const t = new TimedStream(owner);
    this.streams.add(t);
    if (this.timer === null) {
      this.timer = setInterval(() => this.sweep(), this.every);
      this.timer.unref();
    }
    return t;
  }

  unwatch(t: TimedStream): void {
    this.streams.delete(t);
    if (this.streams.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private sweep(): void {
    const now = clockNow();
    const due: Array<[TimedStream, 'idle' | 'request']> = [];
    for (const t of this.streams) {
      if (this.requestMs > 0 && !t.requestDone && now - t.started >= this.requestMs) due.push([t, 'request']);
      else if (this.idleMs > 0 && now - t.last >= this.idleMs) due.push([t, 'idle']);
    }
    // Owners end their streams (and unwatch them) from here: not while iterating the set.
    for (const [t, kind] of due) {
      if (!this.streams.has(t)) continue;
      this.unwatch(t);
      t.owner.onStreamTimeout(kind);
    }
  }
}
