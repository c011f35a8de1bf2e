// Loaded into a Strait process with --import by bench/tail.js: writes every GC pause as
// "start µs since the epoch\tduration µs\tkind" to $STRAIT_BENCH_GC_LOG when the process exits,
// on the same clock as h2load's --log-file.
import fs from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const file = process.env.STRAIT_BENCH_GC_LOG;
if (file) {
  const lines = [];
  const origin = performance.timeOrigin;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) lines.push(`${Math.round((origin + e.startTime) * 1000)}\t${Math.round(e.duration * 1000)}\t${e.detail?.kind ?? ''}`);
  }).observe({ entryTypes: ['gc'] });
  process.on('exit', () => fs.writeFileSync(file, lines.join('\n') + '\n'));
}
