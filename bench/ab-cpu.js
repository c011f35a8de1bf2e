#!/usr/bin/env node
// CPU time per request of two Strait builds, measured side by side:
//   node bench/ab-cpu.js --a DIR --b DIR [--workload http1-keepalive-64] [--rounds 8] [--duration 3]
//                        [--engine native|node] [--connections 64] [--a-node-args "..."] [--b-node-args "..."]
//                        [--a-env K=V[,K=V]] [--b-env K=V[,K=V]]
// DIR is a checkout with bin/ and a built dist/ (keep a copy of the old dist/ to measure a change
// against). Both proxies run at once on the proxy core and each round loads both at the same time,
// so the machine's noise hits both alike; CPU is user+system from /proc/<pid>/stat (whole process
// tree) over the round, divided by the requests the load generator completed. Prints per-round
// microseconds per request and the B/A ratio per round; read the median ratio. Run it once with
// the same DIR on both sides to see this machine's bias and spread. --a-node-args/--b-node-args:
// Node/V8 flags for one side (space-separated), to measure a runtime setting with one build.
// --a-env/--b-env: environment variables for one side's Strait (e.g. STRAIT_H2_ENGINE=native).
import path from 'node:path';
import { cpuSeconds } from './lib/proc.js';
import { makeCtx, startPeer } from './lib/runner.js';
import { parseArgs, resolveSettings } from './lib/settings.js';
import { UPSTREAMS } from './upstreams/index.js';
import { straitPeer } from './peers/strait.js';
import { WORKLOADS } from './workloads/index.js';

function args(argv) {
  const o = { a: null, b: null, workload: 'http1-keepalive-64', rounds: 8, duration: 3, engine: 'native', connections: null, 'a-node-args': '', 'b-node-args': '', 'a-env': '', 'b-env': '' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown argument ${argv[i]}`);
    const v = argv[++i];
    o[k] = ['rounds', 'duration', 'connections'].includes(k) ? Number(v) : v;
  }
  if (!o.a || !o.b) throw new Error('--a DIR and --b DIR are required');
  return o;
}

const o = args(process.argv.slice(2));
const w = WORKLOADS.find((x) => x.name === o.workload);
if (!w) throw new Error(`unknown workload ${o.workload}`);
const settings = resolveSettings({ ...parseArgs([]), durationS: o.duration });
if (o.connections) settings.connections = o.connections;
const ctx = makeCtx(settings, (m) => process.stderr.write(`${m}\n`));
const up = await UPSTREAMS[w.upstream.kind].start(ctx, w.upstream);
const t = {};
try {
  for (const side of ['a', 'b']) {
    // straitPeer reads BENCH_STRAIT_DIR when the peer's command line is built.
    process.env.BENCH_STRAIT_DIR = path.resolve(o[side]);
    const nodeArgs = o[`${side}-node-args`].split(' ').filter(Boolean);
    // The peer inherits process.env when it is spawned (inside startPeer): set this side's
    // variables for that moment only.
    const env = o[`${side}-env`].split(',').filter(Boolean).map((kv) => {
      const i = kv.indexOf('=');
      if (i <= 0) throw new Error(`--${side}-env wants K=V, got "${kv}"`);
      return [kv.slice(0, i), kv.slice(i + 1)];
    });
    const saved = env.map(([k]) => [k, process.env[k]]);
    for (const [k, v] of env) process.env[k] = v;
    try {
      t[side] = await startPeer(straitPeer(o.engine), w, up, ctx, nodeArgs.length ? { nodeArgs } : undefined);
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    if (w.warm) await w.warm(t[side], ctx);
  }
  const us = { a: [], b: [] };
  const ratios = [];
  for (let r = 0; r < o.rounds; r++) {
    const pids = { a: t.a.pids(), b: t.b.pids() };
    const c0 = { a: cpuSeconds(pids.a), b: cpuSeconds(pids.b) };
    const [ra, rb] = await Promise.all([w.run(t.a, ctx), w.run(t.b, ctx)]);
    const res = { a: ra, b: rb };
    for (const s of ['a', 'b']) {
      const bad = Object.entries(res[s].errors ?? {}).filter(([, v]) => v);
      if (bad.length) throw new Error(`round ${r} side ${s}: errors ${JSON.stringify(Object.fromEntries(bad))}`);
      us[s].push(((cpuSeconds(pids[s]) - c0[s]) / res[s].metrics.requests) * 1e6);
    }
    ratios.push(us.b[r] / us.a[r]);
    console.log(`round ${r}: A ${us.a[r].toFixed(2)} us/req (${ra.metrics.rps.toFixed(0)} req/s), B ${us.b[r].toFixed(2)} us/req (${rb.metrics.rps.toFixed(0)} req/s), B/A ${ratios[r].toFixed(3)}`);
  }
  const med = (x) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
  console.log(`median: A ${med(us.a).toFixed(2)} us/req, B ${med(us.b).toFixed(2)} us/req; median per-round B/A ${med(ratios).toFixed(3)} (min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)})`);
} finally {
  for (const s of Object.values(t)) await s.stop(5000);
  await up.stop();
}
