import fs from 'node:fs';
import { log } from '../../log.js';
import { defineStats, type Scope, type StatsOf } from '../stats.js';

/**
 * `filesystem.*`, Envoy's file access log stats, plus Strait's `write_dropped`: lines thrown
 * away because the file stopped taking them (a stalled disk, a pipe nobody reads) and the
 * buffer was full. Dropping keeps the proxy serving; blocking would stall every connection.
 */
export const FILESYSTEM_STATS = defineStats({
  counters: ['write_buffered', 'write_completed', 'write_failed', 'reopen_failed', 'write_dropped'],
  gauges: ['write_total_buffered'],
});

type FsStats = StatsOf<typeof FILESYSTEM_STATS>;

/** Bytes a sink holds while its file is not keeping up; past this, new lines are dropped. */
export const SINK_BUFFER_LIMIT = 1024 * 1024;

/** A pipe in non-blocking mode answers EAGAIN when full: try again shortly instead of dropping. */
const RETRY_MS = 10;

/**
 * One log file (or stdout/stderr), shared by every logger that names it. Lines are queued and
 * written by libuv's thread pool — one write per loop turn with everything queued so far — so
 * the event loop never waits on the disk.
 */
export class FileSink {
  private queue: string[] = [];
  private queued = 0;
  private writing = false;
  private scheduled = false;
  private fd: number | null;
  private opening = false;

  constructor(
    readonly target: string | number,
    private readonly stats: FsStats,
    private readonly limit = SINK_BUFFER_LIMIT,
  ) {
    this.fd = typeof target === 'number' ? target : null;
  }

  /** Queues one line; never blocks. */
  write(line: string): void {
    if (this.queued + line.length > this.limit) {
      this.stats.write_dropped.value++;
      return;
    }
    this.queue.push(line);
    this.queued += line.length;
    this.stats.write_buffered.value++;
    this.stats.write_total_buffered.value += line.length;
    if (!this.writing && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (this.writing || this.queue.length === 0) return;
    if (this.fd === null) {
      this.open();
      return;
    }
    const text = this.queue.length === 1 ? this.queue[0]! : this.queue.join('');
    const chars = this.queued;
    this.queue = [];
    this.writing = true;
    this.writeAll(Buffer.from(text), () => {
      this.writing = false;
      this.queued -= chars;
      this.stats.write_total_buffered.value -= chars;
      if (this.queue.length) this.flush();
    });
  }

  private writeAll(buf: Buffer, done: () => void): void {
    fs.write(this.fd!, buf, 0, buf.length, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.writeAll(buf, done), RETRY_MS).unref();
          return;
        }
        this.stats.write_failed.value++;
        log.warn({ file: this.target, err: err.message }, 'access log write failed');
        done();
        return;
      }
      if (n < buf.length) {
        this.writeAll(buf.subarray(n), done);
        return;
      }
      this.stats.write_completed.value++;
      done();
    });
  }

  private open(): void {
    if (this.opening) return;
    this.opening = true;
    this.writing = true;
    // Opening a FIFO waits for a reader; in the thread pool that waits without stalling the loop.
    fs.open(this.target as string, 'a', 0o644, (err, fd) => {
      this.opening = false;
      this.writing = false;
      if (err) {
        this.stats.reopen_failed.value++;
        log.error({ file: this.target, err: err.message }, 'cannot open access log; its lines are dropped');
        this.stats.write_dropped.value += this.queue.length;
        this.stats.write_total_buffered.value -= this.queued;
        this.queue = [];
        this.queued = 0;
        return;
      }
      this.fd = fd;
      this.flush();
    });
  }

  /** Resolves once everything queued so far is written (shutdown, tests). */
  async drain(): Promise<void> {
    while (this.queue.length || this.writing || this.scheduled) await new Promise((r) => setTimeout(r, 5));
  }
}

/** Sinks by target, one set per stats root (one per server). */
const registries = new WeakMap<Scope, Map<string | number, FileSink>>();

export function sinkFor(root: Scope, target: string | number): FileSink {
  let m = registries.get(root);
  if (!m) registries.set(root, (m = new Map()));
  let s = m.get(target);
  if (!s) m.set(target, (s = new FileSink(target, root.scope('filesystem').table(FILESYSTEM_STATS))));
  return s;
}

/**
 * Writes out what every sink of a server still holds, waiting at most `maxMs` (a stalled disk
 * or an unread FIFO must not hold the exit forever). Called on shutdown and before a hot-restart
 * parent exits, so the last requests' lines are not lost.
 */
export async function drainSinks(root: Scope, maxMs = 2000): Promise<void> {
  const m = registries.get(root);
  if (!m?.size) return;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((r) => (timer = setTimeout(r, maxMs)));
  await Promise.race([Promise.all([...m.values()].map((s) => s.drain())), deadline]);
  clearTimeout(timer);
}
