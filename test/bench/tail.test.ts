// bench/lib/tail.js, the analysis behind bench/tail.js: h2load's per-request log and the GC
// observer's pauses, read back; a run's slow requests (>= p99) counted at its start, against GC
// pauses, and grouped into episodes (stalls that hold many requests at once). Synthetic runs
// with a known answer.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM JavaScript without type declarations
import { parseGcLog, parseH2loadLog, tailSummary } from '../../bench/lib/tail.js';

const T0 = 1_796_000_000_000_000; // µs since the epoch, as h2load writes them

/** 1,000 requests of 100 µs, one every 100 µs, then `slow` ones of 1 ms starting at the given offsets. */
function run(slowStarts: number[]): { start: number; dur: number }[] {
  const reqs = [];
  for (let i = 0; i < 1000; i++) reqs.push({ start: T0 + i * 100, dur: 100 });
  for (const s of slowStarts) reqs.push({ start: T0 + s, dur: 1000 });
  return reqs;
}

describe('tail analysis (bench/lib/tail.js)', () => {
  it('reads h2load log lines and GC observer lines, skipping anything else', () => {
    const log = `${T0}\t200\t1234\n${T0 + 5}\t200\t99\nnot a line\n\n`;
    expect(parseH2loadLog(log)).toEqual([
      { start: T0, dur: 1234 },
      { start: T0 + 5, dur: 99 },
    ]);
    expect(parseGcLog(`${T0}\t700\tminor\n\n${T0 + 1}\t30\t\n`)).toEqual([
      { start: T0, dur: 700 },
      { start: T0 + 1, dur: 30 },
    ]);
  });

  it('finds the slow requests, where they fall, which GC pauses they overlap and the stalls they form', () => {
    // Three stalls of slow requests: 4 at the run's start, 5 at 80 ms during a GC pause, 5 at 90 ms without one.
    const starts = [0, 10, 20, 30, 80_000, 80_010, 80_020, 80_030, 80_040, 90_000, 90_010, 90_020, 90_030, 90_040];
    const gcs = [
      { start: T0 + 80_500, dur: 600 },
      // Before the run: not counted.
      { start: T0 - 50_000, dur: 600 },
    ];
    const s = tailSummary(run(starts), gcs);
    expect(s).toEqual({
      requests: 1014,
      p50_us: 100,
      p99_us: 1000,
      max_us: 1000,
      slow: 14,
      slow_at_start: 4,
      slow_overlapping_gc: 5,
      episodes: 3,
      episodes_with_gc: 1,
      largest_episode: 5,
      gc_pauses: 1,
      gc_ms: 0.6,
    });
    // Slow requests ending far apart are stalls of their own.
    expect(tailSummary(run(starts), gcs, { gapUs: 5 }).episodes).toBe(14);
  });

  it('writes the GC pauses of the process it is loaded into to the given file', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'strait-gc-')), 'gc.tsv');
    const observer = path.resolve(import.meta.dirname, '../../bench/lib/gc_observer.mjs');
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', observer, '-e', 'globalThis.gc(); setTimeout(() => {}, 50)'], { env: { ...process.env, STRAIT_BENCH_GC_LOG: file }, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const pauses = parseGcLog(fs.readFileSync(file, 'utf8'));
    expect(pauses.length).toBeGreaterThan(0);
    // On h2load's clock: µs since the epoch, within the last minute.
    expect(Math.abs(pauses[0].start - Date.now() * 1000)).toBeLessThan(60_000_000);
  });
});
