#!/usr/bin/env node
// CPU profile of Strait under one workload:
//   npm run profile -- <workload> [--engine native|node] [--out DIR] [--duration S] [--top N] [--alloc]
// Starts the workload's upstream and Strait under `node --cpu-prof`, runs the workload's load once
// (after a warm-up), stops Strait with SIGTERM so V8 writes the profile, then prints the top
// self-time functions parsed from the .cpuprofile (no external tools). With --alloc it samples
// allocation instead (V8's sampling heap profiler, freed objects included; lib/alloc_sampler.mjs)
// and prints the functions that allocate most, in bytes per request. CPU_PROF_INTERVAL=<µs> sets
// V8's sampling interval (node's default 1000); on a busy 2-core machine the sampler thread may
// not keep a finer one. With --perf it records the whole process with Linux perf instead (native
// addon, nghttp2, libuv and kernel time included, which V8's sampler counts as idle; JavaScript
// frames named through --perf-basic-prof) and prints the top symbols by self share;
// PERF_CALL_GRAPH=dwarf for stacks through node's C++. With --perf --jit-code it also reads the
// optimized JavaScript functions' machine code out of the live process (/proc/<pid>/mem, at the
// addresses of V8's perf map) and shows, for the JIT functions with most samples, the
// instructions the samples fell on, disassembled by objdump: costs no function-level profile
// shows (a prototype walk inlined into a caller, a cold load) show there.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { removeOnExit } from './lib/proc.js';
import { makeCtx, startPeer } from './lib/runner.js';
import { parseArgs as parseBenchArgs, resolveSettings } from './lib/settings.js';
import { BENCH_DIR } from './lib/tools.js';
import { UPSTREAMS } from './upstreams/index.js';
import { straitPeer } from './peers/strait.js';
import { WORKLOADS } from './workloads/index.js';

const USAGE = `usage: npm run profile -- <workload> [--engine native|node] [--out DIR] [--duration S] [--top N] [--alloc | --perf [--jit-code]]
workloads: ${WORKLOADS.map((w) => w.name).join(', ')}
`;

/**
 * Self time per function from a V8 .cpuprofile: samples[i] is the node that was on top of the
 * stack at sample i, timeDeltas[i] the microseconds since sample i-1; sample i is charged the
 * gap to the next sample (as Chrome DevTools does). Functions are keyed by name + location, so
 * the same function reached through different call paths is summed.
 */
export function topSelfTime(profile, n = 15) {
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const self = new Map();
  const { samples = [], timeDeltas = [] } = profile;
  let total = 0;
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0;
    if (!(dt > 0)) continue;
    const node = byId.get(samples[i]);
    if (!node) continue;
    const cf = node.callFrame;
    const loc = cf.url ? `${cf.url.replace(/^file:\/\//, '')}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'}\t${loc}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  const rows = [...self.entries()]
    .map(([k, us]) => {
      const [fn, loc] = k.split('\t');
      return { function: fn, location: loc, self_ms: us / 1000, self_pct: total ? (100 * us) / total : 0 };
    })
    .sort((a, b) => b.self_ms - a.self_ms);
  return { total_ms: total / 1000, rows: rows.slice(0, n) };
}

/** Bytes allocated per function (self) from a sampling heap profile, largest first. */
export function topAllocations(profile, n = 15) {
  const self = new Map();
  let total = 0;
  const stack = [profile.head];
  while (stack.length) {
    const node = stack.pop();
    const cf = node.callFrame;
    const loc = cf.url ? `${cf.url.replace(/^file:\/\//, '')}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'}\t${loc}`;
    self.set(key, (self.get(key) ?? 0) + node.selfSize);
    total += node.selfSize;
    for (const c of node.children) stack.push(c);
  }
  const rows = [...self.entries()]
    .map(([k, bytes]) => {
      const [fn, loc] = k.split('\t');
      return { function: fn, location: loc, bytes };
    })
    .sort((a, b) => b.bytes - a.bytes);
  return { total, rows: rows.slice(0, n) };
}

function parse(argv) {
  const o = { workload: null, engine: 'native', out: path.join(BENCH_DIR, '../perf-reports/profiles'), duration: 10, top: 15, alloc: false, perf: false, jitCode: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--engine') o.engine = argv[++i];
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--duration') o.duration = Number(argv[++i]);
    else if (a === '--top') o.top = Number(argv[++i]);
    else if (a === '--alloc') o.alloc = true;
    else if (a === '--perf') o.perf = true;
    else if (a === '--jit-code') o.jitCode = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else if (!a.startsWith('-') && !o.workload) o.workload = a;
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

async function main() {
  let o;
  try {
    o = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n${USAGE}`);
    process.exit(2);
  }
  if (o.help || !o.workload) {
    process.stdout.write(USAGE);
    process.exit(o.help ? 0 : 2);
  }
  const w = WORKLOADS.find((x) => x.name === o.workload);
  if (!w) {
    process.stderr.write(`unknown workload ${o.workload}\n${USAGE}`);
    process.exit(2);
  }
  if (o.alloc && o.perf) {
    process.stderr.write('--alloc and --perf exclude each other\n');
    process.exit(2);
  }
  if (o.jitCode && !o.perf) {
    process.stderr.write('--jit-code needs --perf\n');
    process.exit(2);
  }
  if (o.perf && spawnSync('perf', ['--version']).status !== 0) {
    process.stderr.write('profile: --perf needs Linux perf (apt-get install linux-perf)\n');
    process.exit(1);
  }
  if (!['native', 'node'].includes(o.engine)) {
    process.stderr.write('--engine must be native or node\n');
    process.exit(2);
  }
  const peer = straitPeer(o.engine);
  const d = peer.detect();
  if (!d.ok) {
    process.stderr.write(`profile: cannot run Strait: ${d.reason}\n`);
    process.exit(1);
  }
  const why = w.requires() ?? UPSTREAMS[w.upstream.kind].requires();
  if (why) {
    process.stderr.write(`profile: workload ${w.name} skipped: ${why}\n`);
    process.exit(1);
  }
  // The full profile's load shape (connections, depth, streams, fd limit), with our duration.
  const settings = resolveSettings({ ...parseBenchArgs([]), durationS: o.duration });
  const outDir = path.resolve(o.out);
  fs.mkdirSync(outDir, { recursive: true });
  const profDir = fs.mkdtempSync(path.join(outDir, '.tmp-'));
  removeOnExit(profDir);
  const ctx = makeCtx(settings, (m) => process.stderr.write(`${m}\n`), outDir);
  const upstream = await UPSTREAMS[w.upstream.kind].start(ctx, w.upstream);
  let target;
  let requests = 0;
  let jit = null;
  const allocFile = path.join(profDir, 'alloc.heapprofile');
  try {
    process.stderr.write(`profile: strait-${o.engine} under ${w.name} for ${o.duration} s (${o.alloc ? 'allocation sampling' : o.perf ? 'perf record' : 'node --cpu-prof'})\n`);
    if (o.alloc) process.env.STRAIT_ALLOC_PROFILE = allocFile;
    const nodeArgs = o.alloc
      ? ['--import', path.join(BENCH_DIR, 'lib/alloc_sampler.mjs')]
      : o.perf
        ? ['--perf-basic-prof-only-functions']
        : ['--cpu-prof', `--cpu-prof-dir=${profDir}`, ...(process.env.CPU_PROF_INTERVAL ? [`--cpu-prof-interval=${process.env.CPU_PROF_INTERVAL}`] : [])];
    target = await startPeer(peer, w, upstream, ctx, { nodeArgs });
    if (w.warm) await w.warm(target, ctx);
    if (o.alloc) process.kill(target.child.pid, 'SIGUSR2');
    // cpu-clock, not cycles: VMs often lack hardware counters. Frame-pointer stacks stop in node's
    // own C++ (built without frame pointers): PERF_CALL_GRAPH=dwarf follows them, at a far higher cost.
    const callGraph = process.env.PERF_CALL_GRAPH ?? 'fp';
    const recorder = o.perf ? spawn('perf', ['record', '--call-graph', callGraph, '-e', 'cpu-clock', '-F', callGraph.startsWith('dwarf') ? '499' : '1999', '-p', String(target.child.pid), '-o', path.join(profDir, 'perf.data')], { stdio: 'ignore' }) : null;
    const res = await w.run(target, ctx).finally(() => recorder?.kill('SIGINT'));
    if (recorder) await new Promise((r) => (recorder.exitCode !== null ? r() : recorder.once('exit', r)));
    // While the process lives, with its hot functions optimized: their code at the sampled addresses.
    if (o.jitCode) jit = dumpJitCode(target.child.pid);
    requests = res.metrics.requests ?? 0;
    const flags = Object.entries(res.errors ?? {}).filter(([, v]) => v);
    process.stderr.write(`profile: ${w.primary.key} ${res.metrics[w.primary.key]?.toFixed(1)} ${w.primary.unit}${flags.length ? `; ERRORS ${JSON.stringify(Object.fromEntries(flags))}` : ''}\n`);
  } finally {
    // SIGTERM lets Strait shut down cleanly, which is when V8 writes the profile.
    if (target) await target.stop(20_000);
    await upstream.stop();
    fs.rmSync(ctx.tmp, { recursive: true, force: true });
  }
  await sleep(100);
  if (o.alloc) return reportAllocations(o, w, allocFile, profDir, outDir, requests, target);
  if (o.perf) return reportPerf(o, w, profDir, outDir, jit);
  const written = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  if (!written.length) {
    fs.rmSync(profDir, { recursive: true, force: true });
    process.stderr.write(`profile: no .cpuprofile was written (did Strait exit on SIGTERM?): ${target?.child?.stderr.slice(-800) ?? ''}\n`);
    process.exit(1);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = path.join(outDir, `${w.name}-strait-${o.engine}-${stamp}.cpuprofile`);
  fs.renameSync(path.join(profDir, written[0]), file);
  fs.rmSync(profDir, { recursive: true, force: true });
  const top = topSelfTime(JSON.parse(fs.readFileSync(file, 'utf8')), o.top);
  process.stdout.write(`\nprofile: ${file}\ntop ${o.top} functions by self time (of ${top.total_ms.toFixed(0)} ms sampled):\n`);
  process.stdout.write(`${'self ms'.padStart(10)} ${'self %'.padStart(7)}  function  (location)\n`);
  for (const r of top.rows) {
    process.stdout.write(`${r.self_ms.toFixed(1).padStart(10)} ${r.self_pct.toFixed(1).padStart(7)}  ${r.function}${r.location ? `  (${r.location})` : ''}\n`);
  }
  process.stdout.write('\nOpen the .cpuprofile in Chrome DevTools (Performance > Load profile) or speedscope for the full call tree.\n');
}

/** perf's self share per symbol, with the object it is in (the kernel, node, the addon, JIT code). */
function reportPerf(o, w, profDir, outDir, jit) {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = path.join(outDir, `${w.name}-strait-${o.engine}-${stamp}.perf.data`);
  fs.renameSync(path.join(profDir, 'perf.data'), file);
  fs.rmSync(profDir, { recursive: true, force: true });
  const dsos = spawnSync('perf', ['report', '-i', file, '--stdio', '--no-children', '-g', 'none', '--sort', 'dso', '--percent-limit', '1'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const syms = spawnSync('perf', ['report', '-i', file, '--stdio', '--no-children', '-g', 'none', '--sort', 'dso,sym'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  process.stdout.write(`\nprofile: ${file}\nby object:\n${perfRows(dsos.stdout).join('\n')}\ntop ${o.top} symbols by self share:\n`);
  process.stdout.write(`${perfRows(syms.stdout).slice(0, o.top).join('\n')}\n\nMore: perf report -i ${file}\n`);
  if (jit) process.stdout.write(jitHotspots(file, jit, o.top));
}

/** The optimized (TurboFan, `JS:*`) functions' code read from process `pid`: address, size, name, bytes. */
function dumpJitCode(pid) {
  const code = [];
  let fd;
  try {
    fd = fs.openSync(`/proc/${pid}/mem`, 'r');
    for (const line of fs.readFileSync(`/tmp/perf-${pid}.map`, 'utf8').split('\n')) {
      const m = /^([0-9a-f]+) ([0-9a-f]+) (JS:\*.*)$/.exec(line);
      if (!m) continue;
      const addr = parseInt(m[1], 16);
      const bytes = Buffer.alloc(parseInt(m[2], 16));
      try {
        fs.readSync(fd, bytes, 0, bytes.length, addr);
      } catch {
        continue; // its code space is gone
      }
      code.push({ addr, name: m[3], bytes });
    }
  } catch (err) {
    process.stderr.write(`profile: --jit-code: cannot read the process's code: ${err.message}\n`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  return code;
}

/** For the `top` JIT functions by samples: their hottest instructions, each with its disassembly around it. */
function jitHotspots(file, jit, top) {
  const ips = spawnSync('perf', ['script', '-i', file, '-F', 'ip', '-G'], { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout.split('\n');
  const byFn = new Map();
  let total = 0;
  for (const l of ips) {
    const t = l.trim();
    if (!t) continue;
    total++;
    const ip = parseInt(t, 16);
    // The map lists a function again when it is compiled again: the last entry holding the address wins.
    let fn = null;
    for (const f of jit) if (ip >= f.addr && ip < f.addr + f.bytes.length) fn = f;
    if (fn === null) continue;
    const hits = byFn.get(fn) ?? new Map();
    hits.set(ip, (hits.get(ip) ?? 0) + 1);
    byFn.set(fn, hits);
  }
  const sum = (m) => [...m.values()].reduce((a, b) => a + b, 0);
  const ranked = [...byFn].sort((a, b) => sum(b[1]) - sum(a[1])).slice(0, top);
  const pct = (n) => `${((100 * n) / (total || 1)).toFixed(2)}%`;
  let out = `\nJIT code: the hottest instructions of the top ${ranked.length} optimized functions (samples on an instruction often land on the one after a slow load or a call's return)\n`;
  const tmp = fs.mkdtempSync(path.join(path.dirname(file), '.jit-'));
  try {
    for (const [fn, hits] of ranked) {
      out += `\n${pct(sum(hits))}  ${fn.name}\n`;
      const bin = path.join(tmp, 'code.bin');
      fs.writeFileSync(bin, fn.bytes);
      const dis = spawnSync('objdump', ['-D', '-b', 'binary', '-mi386:x86-64', `--adjust-vma=0x${fn.addr.toString(16)}`, bin], { encoding: 'utf8' });
      if (dis.status !== 0) {
        out += '    (objdump failed: apt-get install binutils)\n';
        continue;
      }
      const lines = dis.stdout.split('\n');
      const at = new Map();
      lines.forEach((l, i) => {
        const m = /^\s+([0-9a-f]+):/.exec(l);
        if (m) at.set(parseInt(m[1], 16), i);
      });
      for (const [ip, n] of [...hits].sort((a, b) => b[1] - a[1]).slice(0, 3)) {
        out += `  ${pct(n)} at +0x${(ip - fn.addr).toString(16)}\n`;
        const i = at.get(ip);
        if (i !== undefined) out += `${lines.slice(Math.max(0, i - 6), i + 3).map((l) => `    ${l.trim()}${l === lines[i] ? '   <==' : ''}`).join('\n')}\n`;
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

/** The share lines of `perf report --stdio` output (comments, blank lines and call chains dropped). */
export function perfRows(text) {
  return text.split('\n').filter((l) => /^\s+\d+\.\d+%\s/.test(l));
}

function reportAllocations(o, w, allocFile, profDir, outDir, requests, target) {
  if (!fs.existsSync(allocFile)) {
    fs.rmSync(profDir, { recursive: true, force: true });
    process.stderr.write(`profile: no heap profile was written (did Strait exit on SIGTERM?): ${target?.child?.stderr.slice(-800) ?? ''}\n`);
    process.exit(1);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = path.join(outDir, `${w.name}-strait-${o.engine}-${stamp}.heapprofile`);
  fs.renameSync(allocFile, file);
  fs.rmSync(profDir, { recursive: true, force: true });
  const top = topAllocations(JSON.parse(fs.readFileSync(file, 'utf8')), o.top);
  // Sampling counts the load's requests plus the few the workload's own checks make.
  const per = (b) => (requests ? b / requests : NaN);
  process.stdout.write(`\nprofile: ${file}\nallocated ${(top.total / 2 ** 20).toFixed(1)} MiB over ${requests} requests: ${per(top.total).toFixed(0)} B/request (sampled)\n`);
  process.stdout.write(`${'B/req'.padStart(8)} ${'%'.padStart(6)}  function  (location)\n`);
  for (const r of top.rows) {
    process.stdout.write(`${per(r.bytes).toFixed(0).padStart(8)} ${((100 * r.bytes) / (top.total || 1)).toFixed(1).padStart(6)}  ${r.function}${r.location ? `  (${r.location})` : ''}\n`);
  }
  process.stdout.write('\nOpen the .heapprofile in Chrome DevTools (Memory > Load) for the call tree.\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) await main();
