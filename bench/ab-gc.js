#!/usr/bin/env node
// Garbage per request of two Strait builds under the same load:
//   node bench/ab-gc.js --a DIR --b DIR [--workload grpc-unary-64] [--rounds 4] [--duration 3] [--semi 1]
// Each side runs with --trace-gc; per round this counts the scavenges and mark-compacts the
// proxy did and sums what the heap grew by between collections (used-before of a collection minus
// used-after of the one before it: the bytes allocated, to the 0.1 MB the trace prints), divided
// by the requests the load generator completed. Unlike CPU time, allocation per request hardly
// depends on the machine's noise, so small differences show in a few rounds. Both sides run with a
// small young generation (--max-semi-space-size, MiB, default 1) so that a round holds many
// scavenges and the count is fine-grained; the same on both sides, it does not favour either.
import path from 'node:path';
import { makeCtx, startPeer } from './lib/runner.js';
import { parseArgs, resolveSettings } from './lib/settings.js';
import { UPSTREAMS } from './upstreams/index.js';
import { straitPeer } from './peers/strait.js';
import { WORKLOADS } from './workloads/index.js';

function args(argv) {
  const o = { a: null, b: null, workload: 'grpc-unary-64', rounds: 4, duration: 3, engine: 'native', semi: 1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown argument ${argv[i]}`);
    const v = argv[++i];
    o[k] = ['rounds', 'duration', 'semi'].includes(k) ? Number(v) : v;
  }
  if (!o.a || !o.b) throw new Error('--a DIR and --b DIR are required');
  return o;
}

/** Counts of one side's GC trace lines since the last take(). */
class GcTally {
  constructor(stream) {
    this.rest = '';
    this.reset();
    this.lastAfter = null;
    stream.on('data', (d) => {
      const lines = (this.rest + d).split('\n');
      this.rest = lines.pop();
      for (const l of lines) this.line(l);
    });
  }
  reset() {
    this.scavenges = 0;
    this.markCompacts = 0;
    this.allocatedMb = 0;
  }
  line(l) {
    // "[pid:0x..]   1234 ms: Scavenge 12.3 (20.1) -> 4.5 (21.0) MB, ..."
    const m = /: (Scavenge|Mark-Compact|Mark-sweep)[^\d]*([\d.]+) \([\d.]+\) -> ([\d.]+) \(/.exec(l);
    if (!m) return;
    if (m[1] === 'Scavenge') this.scavenges++;
    else this.markCompacts++;
    const before = Number(m[2]);
    if (this.lastAfter !== null && before > this.lastAfter) this.allocatedMb += before - this.lastAfter;
    this.lastAfter = Number(m[3]);
  }
  take() {
    const r = { scavenges: this.scavenges, markCompacts: this.markCompacts, allocatedMb: this.allocatedMb };
    this.reset();
    return r;
  }
}

const o = args(process.argv.slice(2));
const w = WORKLOADS.find((x) => x.name === o.workload);
if (!w) throw new Error(`unknown workload ${o.workload}`);
const settings = resolveSettings({ ...parseArgs([]), durationS: o.duration });
const ctx = makeCtx(settings, (m) => process.stderr.write(`${m}\n`));
const up = await UPSTREAMS[w.upstream.kind].start(ctx, w.upstream);
const t = {};
const gc = {};
try {
  for (const side of ['a', 'b']) {
    process.env.BENCH_STRAIT_DIR = path.resolve(o[side]);
    t[side] = await startPeer(straitPeer(o.engine), w, up, ctx, { nodeArgs: ['--trace-gc', `--max-semi-space-size=${o.semi}`] });
    gc[side] = new GcTally(t[side].child.proc.stdout);
    if (w.warm) await w.warm(t[side], ctx);
  }
  const per = { a: [], b: [] };
  for (let r = 0; r < o.rounds; r++) {
    gc.a.take();
    gc.b.take();
    const [ra, rb] = await Promise.all([w.run(t.a, ctx), w.run(t.b, ctx)]);
    // Let the last trace lines of the round arrive.
    await new Promise((res) => setTimeout(res, 200));
    const line = [];
    for (const [s, res] of [['a', ra], ['b', rb]]) {
      const g = gc[s].take();
      const k = res.metrics.requests / 10000;
      const v = { scav: g.scavenges / k, kb: (g.allocatedMb * 1024 * 1024) / res.metrics.requests / 1024, mc: g.markCompacts };
      per[s].push(v);
      line.push(`${s.toUpperCase()} ${v.scav.toFixed(2)} scavenges/10k req, ${v.kb.toFixed(2)} KiB/req allocated, ${v.mc} mark-compact (${res.metrics.requests} req)`);
    }
    console.log(`round ${r}: ${line.join('; ')}`);
  }
  const med = (x) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
  for (const s of ['a', 'b']) {
    console.log(`median ${s.toUpperCase()}: ${med(per[s].map((v) => v.scav)).toFixed(2)} scavenges/10k req, ${med(per[s].map((v) => v.kb)).toFixed(2)} KiB/req`);
  }
} finally {
  for (const s of Object.values(t)) await s.stop(5000);
  await up.stop();
}
