#!/usr/bin/env node
// CPU per HTTP/2 connection, two Strait builds side by side (as bench/ab-cpu.js does per request):
//   node bench/ab-h2conn.js --a DIR --b DIR [--rounds 6] [--runs 100] [--connections 64] [--requests 1]
//                           [--b-peer haproxy]
// Each round, both builds serve h2c-64's upstream while two h2load loops run at once, one per
// build: `--runs` times `h2load -c<connections> -m4 -n<connections x requests>`, each run opening
// its connections, sending `--requests` per connection and closing them. CPU of each proxy
// (utime + stime of its processes) per connection, and the median per-round B/A. `--b-peer`
// puts another peer (haproxy, nginx) on side B instead of a Strait build. A connection's set-up
// and teardown is what the h2c row's p99 pays at the start of every run; steady-state rows
// never see it.
import path from 'node:path';
import { flagArgs } from './lib/flags.js';
import { cpuSeconds, runPinned } from './lib/proc.js';
import { makeCtx, startPeer } from './lib/runner.js';
import { parseArgs, resolveSettings } from './lib/settings.js';
import { findTool } from './lib/tools.js';
import { PEERS } from './peers/index.js';
import { straitPeer } from './peers/strait.js';
import { UPSTREAMS } from './upstreams/index.js';
import { WORKLOADS } from './workloads/index.js';

const o = flagArgs(process.argv.slice(2), { a: '', b: '', rounds: 6, runs: 100, connections: 64, requests: 1, 'b-peer': '' });
if (!o.a || (!o.b && !o['b-peer'])) throw new Error('--a DIR and --b DIR (or --b-peer NAME) are required');
const tool = findTool('h2load');
if (!tool.ok) throw new Error(`h2load: ${tool.reason}`);
const w = WORKLOADS.find((x) => x.name === 'h2c-64');
const settings = resolveSettings({ ...parseArgs([]), durationS: 2 });
const ctx = makeCtx(settings, (m) => process.stderr.write(`${m}\n`));
const up = await UPSTREAMS[w.upstream.kind].start(ctx, w.upstream);
const t = {};

/** `runs` h2load runs against one target, one after another. */
async function loop(target, runs) {
  const a = ['-t1', `-c${o.connections}`, '-m4', '-n', String(o.connections * o.requests), `http://127.0.0.1:${target.port}/64`];
  for (let i = 0; i < runs; i++) {
    const r = await runPinned('h2load', tool.path, a, { cpu: ctx.cpus.loadgen, timeoutMs: 30000 });
    const m = /(\d+) succeeded/.exec(r.stdout);
    if (!m || Number(m[1]) !== o.connections * o.requests) throw new Error(`h2load against ${target.peer}: ${r.stdout.slice(-300)}`);
  }
}

try {
  for (const side of ['a', 'b']) {
    let peer;
    if (side === 'b' && o['b-peer']) peer = PEERS.find((p) => p.name === o['b-peer']);
    else {
      // straitPeer reads BENCH_STRAIT_DIR when the peer's command line is built.
      process.env.BENCH_STRAIT_DIR = path.resolve(o[side]);
      peer = straitPeer('native');
    }
    if (!peer) throw new Error(`unknown peer ${o['b-peer']}`);
    t[side] = await startPeer(peer, w, up, ctx);
    // Warm: the code that sets connections up, not only the code that serves their requests.
    await loop(t[side], 50);
  }
  const per = { a: [], b: [] };
  const ratios = [];
  for (let r = 0; r < o.rounds; r++) {
    const pids = { a: t.a.pids(), b: t.b.pids() };
    const c0 = { a: cpuSeconds(pids.a), b: cpuSeconds(pids.b) };
    await Promise.all([loop(t.a, o.runs), loop(t.b, o.runs)]);
    for (const s of ['a', 'b']) per[s].push(((cpuSeconds(pids[s]) - c0[s]) / (o.runs * o.connections)) * 1e6);
    ratios.push(per.b[r] / per.a[r]);
    console.log(`round ${r}: A ${per.a[r].toFixed(1)} us/connection, B ${per.b[r].toFixed(1)} us/connection, B/A ${ratios[r].toFixed(3)}`);
  }
  const med = (x) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
  console.log(`median: A ${med(per.a).toFixed(1)} us/connection, B ${med(per.b).toFixed(1)} us/connection (${o.requests} request(s) each); median per-round B/A ${med(ratios).toFixed(3)} (min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)})`);
} finally {
  for (const s of Object.values(t)) await s.stop(5000);
  await up.stop();
}
