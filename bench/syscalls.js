#!/usr/bin/env node
// Where a peer's CPU per request goes, user space against kernel, and which system calls it makes:
//   node bench/syscalls.js [--workload h2c-64] [--peers haproxy,strait-native] [--rounds 3] [--duration 3]
// Each round runs every peer twice under the workload's load: once plain, for user and system CPU
// per request (/proc/<pid>/stat of the peer's processes), once under `perf stat` on the
// syscalls:sys_enter_* tracepoints, for system calls per request by name. The counting run is kept
// apart because the tracepoints add kernel time of their own. Peers alternate order each round.
// Counts hardly move with the machine's load, so one or two rounds settle whether a peer's gap is
// in the kernel (more or costlier calls) or in its own code; CPU split figures are medians.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { flagArgs } from './lib/flags.js';
import { makeCtx, roundOrder, startPeer } from './lib/runner.js';
import { parseArgs, resolveSettings } from './lib/settings.js';
import { UPSTREAMS } from './upstreams/index.js';
import { PEERS } from './peers/index.js';
import { WORKLOADS } from './workloads/index.js';

function args(argv) {
  return flagArgs(argv, { workload: 'h2c-64', peers: 'haproxy,strait-native', rounds: 3, duration: 3 });
}

const TICK = 100; // USER_HZ: /proc stat times are in 1/100 s on Linux

/** User and system seconds of the processes `pids` so far (children that exited are not counted). */
function cpuOf(pids) {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    let f;
    try {
      // Fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
      f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    } catch {
      continue; // gone
    }
    user += Number(f[11]) / TICK;
    sys += Number(f[12]) / TICK;
  }
  return { user, sys };
}

/** Why `perf stat` on syscall tracepoints cannot run here, or null. */
function perfMissing() {
  const r = spawnSync('perf', ['stat', '-x,', '-e', 'syscalls:sys_enter_getpid', 'true'], { encoding: 'utf8' });
  if (r.error) return `perf not found (${r.error.code}); Debian: apt-get install linux-perf`;
  if (r.status !== 0) return `perf stat on syscall tracepoints failed: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}`;
  return null;
}

/** Runs the load once with perf counting the peer's system calls; counts per request by name. */
async function countedRun(w, t, ctx) {
  const perf = spawn('perf', ['stat', '-x,', '-e', 'syscalls:sys_enter_*,page-faults,context-switches,cpu-migrations', '-p', t.pids().join(',')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  perf.stderr.on('data', (d) => (err += d));
  // perf attaches asynchronously: give it a moment before the load starts.
  await new Promise((r) => setTimeout(r, 300));
  const res = await w.run(t, ctx);
  perf.kill('SIGINT');
  await new Promise((r) => perf.on('close', r));
  const n = res.metrics.requests;
  const calls = {};
  for (const line of err.split('\n')) {
    const c = line.split(',');
    const count = Number(c[0]);
    if (c.length > 2 && count > 0) calls[c[2].startsWith('syscalls:sys_enter_') ? c[2].slice(19) : `[${c[2]}]`] = count / n;
  }
  return calls;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

async function main() {
  const o = args(process.argv.slice(2));
  const w = WORKLOADS.find((x) => x.name === o.workload);
  if (!w) throw new Error(`unknown workload ${o.workload}; one of ${WORKLOADS.map((x) => x.name).join(', ')}`);
  const peers = o.peers.split(',').map((name) => {
    const p = PEERS.find((x) => x.name === name);
    if (!p) throw new Error(`unknown peer ${name}; one of ${PEERS.map((x) => x.name).join(', ')}`);
    const d = p.detect();
    if (!d.ok) throw new Error(`peer ${name} cannot run: ${d.reason}`);
    if (p.kind === 'direct') throw new Error('direct has no proxy process to measure');
    return p;
  });
  const noPerf = perfMissing();
  if (noPerf) process.stderr.write(`syscalls: counts skipped: ${noPerf}\n`);
  const settings = resolveSettings({ ...parseArgs([]), durationS: o.duration });
  const ctx = makeCtx(settings, (m) => process.stderr.write(`${m}\n`));
  const upstream = await UPSTREAMS[w.upstream.kind].start(ctx, w.upstream);
  const per = new Map(peers.map((p) => [p.name, { user: [], sys: [], rps: [], calls: [] }]));
  try {
    for (let r = 0; r < o.rounds; r++) {
      for (const name of roundOrder(peers.map((p) => p.name), r)) {
        const peer = peers.find((p) => p.name === name);
        const t = await startPeer(peer, w, upstream, ctx);
        try {
          if (w.warm) await w.warm(t, ctx);
          const pids = t.pids();
          const c0 = cpuOf(pids);
          const res = await w.run(t, ctx);
          const c1 = cpuOf(pids);
          const n = res.metrics.requests;
          const m = per.get(name);
          m.user.push(((c1.user - c0.user) / n) * 1e6);
          m.sys.push(((c1.sys - c0.sys) / n) * 1e6);
          m.rps.push(res.metrics.rps);
          if (!noPerf) m.calls.push(await countedRun(w, t, ctx));
          process.stderr.write(`round ${r} ${name}: user ${m.user.at(-1).toFixed(2)} us/req, sys ${m.sys.at(-1).toFixed(2)} us/req, ${res.metrics.rps.toFixed(0)} req/s\n`);
        } finally {
          await t.stop(5000);
        }
      }
    }
  } finally {
    await upstream.stop();
    fs.rmSync(ctx.tmp, { recursive: true, force: true });
  }
  const out = [`workload ${w.name}, ${o.rounds} rounds x ${o.duration} s; medians per request (CPU at ${TICK} Hz ticks)`];
  out.push('peer | user us | sys us | user+sys us | req/s | syscalls | top calls per request');
  for (const [name, m] of per) {
    const calls = {};
    for (const c of m.calls) for (const [k, v] of Object.entries(c)) (calls[k] ??= []).push(v);
    const med = Object.entries(calls).map(([k, v]) => [k, median(v)]).sort((a, b) => b[1] - a[1]);
    const total = med.filter(([k]) => !k.startsWith('[')).reduce((s, [, v]) => s + v, 0);
    const top = med.filter(([, v]) => v >= 0.001).slice(0, Number(process.env.SYSCALLS_TOP ?? 10)).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ');
    const u = median(m.user);
    const s = median(m.sys);
    out.push(`${name} | ${u.toFixed(2)} | ${s.toFixed(2)} | ${median(m.user.map((x, i) => x + m.sys[i])).toFixed(2)} | ${median(m.rps).toFixed(0)} | ${noPerf ? 'skipped' : total.toFixed(2)} | ${noPerf ? '' : top}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((err) => {
  process.stderr.write(`syscalls: ${err.message}\n`);
  process.exit(1);
});
