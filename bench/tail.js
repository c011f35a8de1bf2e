#!/usr/bin/env node
// Where a peer's p99 comes from, request by request:
//   node bench/tail.js [--workload h2c-64|http1-keepalive-64] [--peers strait-native,haproxy] [--runs 3] [--duration 3]
//     [--node-args '--v8-flag ...'] (extra node arguments for Strait, to compare settings)
// Each peer serves the workload (its upstream and config, warmed as the bench warms it) while
// h2load runs `--runs` times (-c<connections>, -m<h2 streams> for h2c; --h1 -m1 for HTTP/1.1, the
// shape wrk drives in the bench) with its per-request log. Strait runs with
// bench/lib/gc_observer.mjs, so every GC pause is on the same clock. Per run it prints p50/p99,
// how many slow (>= p99) requests fell in the run's first 60 ms (connection set-up), how many
// overlap a GC pause, and the episodes they form (slow requests ending together: one stall).
// Not a benchmark: one peer at a time, nothing compared across machines.
import fs from 'node:fs';
import path from 'node:path';
import { flagArgs } from './lib/flags.js';
import { makeCtx, startPeer } from './lib/runner.js';
import { runPinned } from './lib/proc.js';
import { parseArgs, resolveSettings } from './lib/settings.js';
import { parseGcLog, parseH2loadLog, tailSummary } from './lib/tail.js';
import { BENCH_DIR, findTool } from './lib/tools.js';
import { PEERS } from './peers/index.js';
import { UPSTREAMS } from './upstreams/index.js';
import { WORKLOADS } from './workloads/index.js';

const SHAPES = {
  'h2c-64': (s) => [`-m${s.h2Streams}`],
  'http1-keepalive-64': () => ['--h1', '-m1'],
};

function args(argv) {
  const o = flagArgs(argv, { workload: 'h2c-64', peers: 'strait-native,haproxy', runs: 3, duration: 3, 'node-args': '' });
  if (!SHAPES[o.workload]) throw new Error(`--workload: one of ${Object.keys(SHAPES).join(', ')}`);
  return o;
}

async function main() {
  const o = args(process.argv.slice(2));
  const w = WORKLOADS.find((x) => x.name === o.workload);
  const tool = findTool('h2load');
  if (!tool.ok) throw new Error(`h2load: ${tool.reason}`);
  const settings = resolveSettings({ ...parseArgs([]), durationS: o.duration });
  const ctx = makeCtx(settings, (m) => process.stderr.write(`${m}\n`));
  const upstream = await UPSTREAMS[w.upstream.kind].start(ctx, w.upstream);
  const rows = [];
  try {
    for (const name of o.peers.split(',')) {
      const peer = PEERS.find((p) => p.name === name);
      if (!peer) throw new Error(`unknown peer ${name}`);
      const strait = peer.name.startsWith('strait');
      const gcFile = path.join(ctx.tmp, `gc-${name}.tsv`);
      process.env.STRAIT_BENCH_GC_LOG = gcFile;
      const t = await startPeer(peer, w, upstream, ctx, strait ? { nodeArgs: [...o['node-args'].split(' ').filter(Boolean), '--import', path.join(BENCH_DIR, 'lib/gc_observer.mjs')] } : {});
      const logs = [];
      try {
        if (w.warm) await w.warm(t, ctx);
        for (let r = 0; r < o.runs; r++) {
          const log = path.join(ctx.tmp, `h2load-${name}-${r}.log`);
          const a = ['-t1', `-c${settings.connections}`, ...SHAPES[o.workload](settings), '-D', `${o.duration}`, '--log-file', log, `http://127.0.0.1:${t.port}/64`];
          const res = await runPinned('h2load', tool.path, a, { cpu: ctx.cpus.loadgen, timeoutMs: (o.duration + 30) * 1000 });
          if (!fs.existsSync(log)) throw new Error(`h2load wrote no log (exit ${res.code}): ${(res.stderr || res.stdout).slice(-400)}`);
          logs.push(log);
        }
      } finally {
        await t.stop(5000);
      }
      const gcs = strait && fs.existsSync(gcFile) ? parseGcLog(fs.readFileSync(gcFile, 'utf8')) : [];
      logs.forEach((log, r) => rows.push({ peer: name, run: r, ...tailSummary(parseH2loadLog(fs.readFileSync(log, 'utf8')), gcs) }));
    }
  } finally {
    await upstream.stop();
    fs.rmSync(ctx.tmp, { recursive: true, force: true });
  }
  const cols = ['peer', 'run', 'requests', 'p50_us', 'p99_us', 'max_us', 'slow', 'slow_at_start', 'slow_overlapping_gc', 'episodes', 'episodes_with_gc', 'largest_episode', 'gc_pauses', 'gc_ms'];
  console.log(`${o.workload}, ${o.runs} h2load runs of ${o.duration} s per peer (slow: at or above the run's p99; GC columns for Strait only)`);
  console.log(`| ${cols.join(' | ')} |`);
  console.log(`|${cols.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${cols.map((c) => (typeof r[c] === 'number' && !Number.isInteger(r[c]) ? r[c].toFixed(1) : r[c])).join(' | ')} |`);
}

main().catch((err) => {
  process.stderr.write(`tail: ${err.stack ?? err}\n`);
  process.exit(1);
});
