// Where a closed-loop run's slow requests come from: h2load's per-request log (--log-file:
// start time in µs since the epoch, status, duration in µs) against the proxy's GC pauses
// (bench/lib/gc_observer.mjs), for bench/tail.js. Pure functions, unit-tested.

/** h2load --log-file lines as { start, dur } (µs), skipping anything else. */
export function parseH2loadLog(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    if (f.length < 3) continue;
    const start = Number(f[0]);
    const dur = Number(f[2]);
    if (Number.isFinite(start) && Number.isFinite(dur)) out.push({ start, dur });
  }
  return out;
}

/** gc_observer.mjs lines ("start µs\tduration µs\tkind") as { start, dur }. */
export function parseGcLog(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    if (f.length < 2 || f[0] === '') continue;
    const start = Number(f[0]);
    const dur = Number(f[1]);
    if (Number.isFinite(start) && Number.isFinite(dur)) out.push({ start, dur });
  }
  return out;
}

/**
 * Summary of one run. Slow requests are those at or above p99. An episode is a group of slow
 * requests ending within `gapUs` of each other: the proxy stalled them together (a GC pause,
 * the machine taking the core, a burst of connection set-ups). An episode or request "overlaps
 * a GC" when a pause falls inside its time. `startMs`: the span from the run's first request
 * counted as its start, where a closed loop sets up its connections.
 */
export function tailSummary(reqs, gcs = [], { gapUs = 300, startMs = 60 } = {}) {
  if (reqs.length === 0) return null;
  const durs = reqs.map((r) => r.dur).sort((a, b) => a - b);
  const at = (q) => durs[Math.min(durs.length - 1, Math.floor(durs.length * q))];
  const p99 = at(0.99);
  // Loops, not Math.min(...): a run has hundreds of thousands of requests.
  let t0 = Infinity;
  let tEnd = -Infinity;
  for (const r of reqs) {
    if (r.start < t0) t0 = r.start;
    if (r.start + r.dur > tEnd) tEnd = r.start + r.dur;
  }
  const pauses = [...gcs].sort((a, b) => a.start - b.start);
  const overlaps = (from, to) => pauses.some((g) => g.start <= to && g.start + g.dur >= from);
  const slow = reqs.filter((r) => r.dur >= p99).sort((a, b) => a.start + a.dur - (b.start + b.dur));
  const episodes = [];
  for (const r of slow) {
    const end = r.start + r.dur;
    const e = episodes[episodes.length - 1];
    if (e && end - e.lastEnd < gapUs) {
      e.n++;
      e.lastEnd = end;
      e.firstStart = Math.min(e.firstStart, r.start);
    } else episodes.push({ n: 1, firstStart: r.start, lastEnd: end });
  }
  const inRun = pauses.filter((g) => g.start >= t0 && g.start <= tEnd);
  return {
    requests: reqs.length,
    p50_us: at(0.5),
    p99_us: p99,
    max_us: durs[durs.length - 1],
    slow: slow.length,
    slow_at_start: slow.filter((r) => r.start - t0 < startMs * 1000).length,
    slow_overlapping_gc: slow.filter((r) => overlaps(r.start, r.start + r.dur)).length,
    episodes: episodes.length,
    episodes_with_gc: episodes.filter((e) => overlaps(e.firstStart, e.lastEnd)).length,
    largest_episode: episodes.reduce((m, e) => Math.max(m, e.n), 0),
    gc_pauses: inRun.length,
    gc_ms: inRun.reduce((s, g) => s + g.dur, 0) / 1000,
  };
}
