/**
 * One monotonic clock read per batch of reads instead of one per event. A keep-alive exchange
 * took five to six performance.now() calls (request start, try start, route deadline, idle
 * mark, the two _rq_time histograms), ~60 ns each; the batch reader reads the clock once when
 * it wakes and every event it hands out sees that time. What is timed in milliseconds (timers,
 * histograms, the idle mark) loses at most the time one batch takes to handle, and the clock
 * never runs backwards: outside a batch (timer callbacks, stream reads, node:http2) it is
 * performance.now() itself, which is never behind a batch's time. The addon's HTTP/2 sessions
 * hand their events over in batches too (native_session.ts onEvents).
 */
import { performance } from 'node:perf_hooks';

/** The current batch's clock reading; -1 outside a batch. */
let batchNow = -1;

/** performance.now(), or the time the batch being handled started. */
export function now(): number {
  return batchNow >= 0 ? batchNow : performance.now();
}

/**
 * Fixes the clock at one reading until leaveBatch; re-entry (a flush inside a batch) keeps the
 * outer reading, the earlier one. Returns what leaveBatch must restore.
 */
export function enterBatch(): number {
  const prev = batchNow;
  if (prev < 0) batchNow = performance.now();
  return prev;
}

/** Ends what enterBatch began; `prev` is what enterBatch returned. */
export function leaveBatch(prev: number): void {
  batchNow = prev;
}
