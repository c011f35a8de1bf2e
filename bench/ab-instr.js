#!/usr/bin/env node
// Instructions per request of two Strait builds, counted by Valgrind's callgrind:
//   node bench/ab-instr.js --a DIR --b DIR [--workload grpc-unary-64] [--warm 40000]
//                          [--requests 16000] [--rounds 3] [--a-env K=V[,K=V]] [--b-env K=V[,K=V]]
//                          [--keep DIR] [--node-args '--flag ...']
// --keep: the last round's loop-thread callgrind file of each side is kept in DIR (a-<row>.callgrind,
// b-<row>.callgrind) for callgrind_annotate, with V8's map of its JIT code (--perf-basic-prof,
// a-<row>.map); the top functions of each side are printed with JIT addresses named.
// AB_INSTR_DUMP_INSTR=1: callgrind counts per instruction (--dump-instr=yes), so the kept files
// show which instructions of a JIT function cost what; pair them with V8's disassembly
// (--node-args '--print-opt-code --print-opt-code-filter=NAME --redirect-code-traces
// --redirect-code-traces-to=FILE').
// CPU time on this shared VM moves ±10% between rounds, so `ab-cpu.js` needs many rounds to see a
// 2% change. An instruction count does not depend on the neighbours: each side runs under
// callgrind (instrumentation off while it starts and warms up), then every round zeroes the
// counters, sends a fixed number of requests with h2load and dumps the count of instructions the
// proxy executed in all its threads. What it cannot see is what instructions do not show: cache
// misses, system call cost, waiting. So it judges changes to the code path (fewer calls, fewer
// checks, less copying), and ab-cpu.js stays the judge of the rest. The sides run one after the
// other (Valgrind is slow: a round of 16,000 requests takes ~15 s); warm-up requests tier the
// JavaScript up as live traffic does, since V8 counts calls, not time. Each round opens the row's
// connections anew (64), so a round must be long enough that their set-up is not what it measures:
// at 4,000 requests (62 a connection) set-up added ~8% to the gRPC count, at 16,000 about 2%.
// Each round also reports the loop thread's count without TurboFan's compiles (compiledOnLoop),
// which moved between rounds of one build more than most changes measured here.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { GRPC_PATH, grpcFrame, grpcMessages } from './lib/grpc.js';
import { freePorts, spawnPinned, waitHttp200, waitPort } from './lib/proc.js';
import { makeCtx } from './lib/runner.js';
import { parseArgs, resolveSettings } from './lib/settings.js';
import { findTool } from './lib/tools.js';
import { straitPeer } from './peers/strait.js';
import { UPSTREAMS } from './upstreams/index.js';
import { WORKLOADS } from './workloads/index.js';

// The rows h2load can send a fixed number of requests for, and what it sends.
const SHAPES = {
  'grpc-unary-64': (dir) => {
    const body = path.join(dir, 'request.bin');
    fs.writeFileSync(body, grpcFrame(grpcMessages(64).request));
    return { urlPath: GRPC_PATH, extra: ['-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers'] };
  },
  'h2c-64': () => ({ urlPath: '/64', extra: [] }),
  // The same row, each request unlike the one before it (h2load cycles through the URLs), as live
  // traffic's request ids and trace headers make them: costs that a repeated list hides show.
  'h2c-64-distinct': () => ({ row: 'h2c-64', urlPaths: Array.from({ length: 64 }, (_, i) => `/64?r=${String(i).padStart(2, '0')}`), extra: [] }),
  'h2c-1k': () => ({ urlPath: '/1024', extra: [] }),
  'http1-keepalive-64': () => ({ urlPath: '/64', extra: ['--h1'], streams: 1 }),
  // A connection per request: h2load opens a new one after each `Connection: close` answer.
  'http1-close-64': () => ({ urlPath: '/64', extra: ['--h1', '-H', 'Connection: close'], streams: 1 }),
};

function args(argv) {
  const o = { a: null, b: null, workload: 'grpc-unary-64', warm: 40000, requests: 16000, rounds: 3, engine: 'native', 'a-env': '', 'b-env': '', keep: '', 'node-args': '' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown argument ${argv[i]}`);
    const v = argv[++i];
    o[k] = ['warm', 'requests', 'rounds'].includes(k) ? Number(v) : v;
  }
  if (!o.a || !o.b) throw new Error('--a DIR and --b DIR are required');
  if (!SHAPES[o.workload]) throw new Error(`--workload must be one of ${Object.keys(SHAPES).join(', ')}`);
  return o;
}

function envOf(spec) {
  return Object.fromEntries(
    spec
      .split(',')
      .filter(Boolean)
      .map((kv) => {
        const i = kv.indexOf('=');
        if (i <= 0) throw new Error(`env wants K=V, got "${kv}"`);
        return [kv.slice(0, i), kv.slice(i + 1)];
      }),
  );
}

function control(pid, flag) {
  const r = spawnSync('callgrind_control', [flag, String(pid)], { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) throw new Error(`callgrind_control ${flag} ${pid}: ${r.stderr || r.stdout}`);
}

/**
 * The instructions of the dump just taken: the loop thread's and all threads'. Callgrind writes a
 * file per thread (--separate-threads): the loop thread is 01; the others are V8's and libuv's
 * helpers, where TurboFan compiles (a few late compiles per round were ±2% of the total between
 * two processes of one build).
 */
function dumped(prefix, keepAs) {
  const dir = path.dirname(prefix);
  const base = path.basename(prefix);
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(base))
    .map((f) => path.join(dir, f));
  let main = null;
  let all = 0;
  let compile = 0;
  for (const f of files) {
    const m = /^(?:summary|totals): (\d+)/m.exec(fs.readFileSync(f, 'utf8'));
    if (!m) continue;
    all += Number(m[1]);
    if (/-0*1$/.test(f)) {
      main = Number(m[1]);
      compile = compiledOnLoop(f);
      if (keepAs) fs.copyFileSync(f, keepAs);
    }
  }
  for (const g of files) fs.rmSync(g, { force: true });
  if (main === null) throw new Error(`no callgrind dump of the loop thread under ${prefix}`);
  return { main, all, compile };
}

/**
 * The loop thread's instructions spent in TurboFan (Runtime_CompileOptimized, inclusive). With
 * --no-concurrent-recompilation V8 compiles there; the functions a round's connection set-up and
 * teardown make hot, and the odd re-optimization after a deopt, were compiled during measured
 * rounds even after 40,000 warm-up requests: 1,700 (gRPC) to 3,300 (h2c) instructions a request,
 * and most of the ±5 % between rounds of one build. A live proxy compiles on a helper thread
 * once; the count without them judges the code as it runs.
 */
function compiledOnLoop(file) {
  const r = spawnSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', '--auto=no', file], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const m = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*Runtime_CompileOptimized\b/m.exec(r.stdout ?? '');
  return m ? Number(m[1].replace(/,/g, '')) : 0;
}

async function h2load(port, shape, s, n, ctx) {
  const streams = shape.streams ?? s.h2Streams;
  const urls = (shape.urlPaths ?? [shape.urlPath]).map((p) => `http://127.0.0.1:${port}${p}`);
  const a = ['-t1', `-c${s.connections}`, `-m${streams}`, '-n', String(n), ...shape.extra, ...urls];
  const r = spawnSync(findTool('h2load').path, a, { encoding: 'utf8', timeout: 600000 });
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded/.exec(r.stdout ?? '');
  if (!req) throw new Error(`h2load output not understood: ${(r.stderr || r.stdout || '').slice(-600)}`);
  if (Number(req[4]) !== n) ctx.log(`h2load: ${req[4]} of ${n} requests succeeded`);
  return Number(req[4]);
}

/** callgrind_annotate's top functions of `file`, JIT code named from V8's perf map. */
function top(file, mapFile, requests, n = Number(process.env.AB_INSTR_TOP ?? 30)) {
  const r = spawnSync('callgrind_annotate', [file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const jit = [];
  if (fs.existsSync(mapFile)) {
    for (const l of fs.readFileSync(mapFile, 'utf8').split('\n')) {
      const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(l);
      if (m) jit.push([parseInt(m[1], 16), parseInt(m[2], 16), m[3]]);
    }
    jit.sort((x, y) => x[0] - y[0]);
  }
  const named = (addr) => {
    let lo = 0;
    let hi = jit.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (jit[mid][0] <= addr) lo = mid + 1;
      else hi = mid - 1;
    }
    const e = jit[hi];
    return e && addr < e[0] + e[1] ? e[2] : null;
  };
  const rows = [];
  for (const l of (r.stdout ?? '').split('\n')) {
    const m = /^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(\S.*)$/.exec(l);
    if (!m || m[3].startsWith('PROGRAM TOTALS')) continue;
    let fn = m[3].replace(/^\?\?\?:/, '').replace(/\(.*$/, '').replace(/ \[.*$/, '');
    const a = /^0x([0-9a-f]+)/.exec(fn);
    if (a) fn = `${named(parseInt(a[1], 16)) ?? fn} [JIT]`;
    rows.push(`${String(Math.round(Number(m[1].replace(/,/g, '')) / requests)).padStart(8)}  ${m[2].padStart(5)}%  ${fn.slice(0, 110)}`);
    if (rows.length >= n) break;
  }
  return rows.join('\n');
}

const o = args(process.argv.slice(2));
if (o.keep) fs.mkdirSync(o.keep, { recursive: true });
if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('ab-instr needs valgrind (apt-get install valgrind)');
const settings = resolveSettings({ ...parseArgs([]), durationS: 3 });
const ctx = makeCtx(settings, (m) => process.stderr.write(`${m}\n`));
const shape = SHAPES[o.workload](ctx.mkdir('shape'));
const w = WORKLOADS.find((x) => x.name === (shape.row ?? o.workload));
const up = await UPSTREAMS[w.upstream.kind].start(ctx, w.upstream);
const upstreamPort = up.endpoints[w.upstream.proxyEndpoint ?? w.upstream.endpoint];
const per = { a: [], b: [] };
const all = { a: [], b: [] };
const net = { a: [], b: [] };
try {
  for (const side of ['a', 'b']) {
    process.env.BENCH_STRAIT_DIR = path.resolve(o[side]);
    const dir = ctx.mkdir(`strait-${side}`);
    const [listenPort, adminPort] = await freePorts(2);
    const launch = straitPeer(o.engine).configs[w.layer]({ dir, listenPort, adminPort, upstreamPort, nodeArgs: [...(o.keep ? ['--perf-basic-prof'] : []), ...o['node-args'].split(' ').filter(Boolean)] });
    for (const [name, text] of Object.entries(launch.files)) fs.writeFileSync(path.join(dir, name), text);
    const prefix = path.join(dir, 'callgrind.out');
    // --trace-children: bin/strait.js execs node again with its thread and GC options (same pid), and
    // the proxy is measured as it runs; the config decoder's child stays native.
    const vg = ['--tool=callgrind', '--trace-children=yes', '--trace-children-skip-by-arg=*load_worker.js*', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${prefix}.%p`, `--dump-instr=${process.env.AB_INSTR_DUMP_INSTR ? 'yes' : 'no'}`, launch.cmd];
    const argv = launch.args.map((x) => x.replace(/^\{file:(.+)\}$/, (_, f) => path.join(dir, f)));
    const child = spawnPinned(`strait-${side}`, 'valgrind', [...vg, ...argv], { cpu: ctx.cpus.proxy, nofile: settings.fdLimit, cwd: dir, env: { ...process.env, ...envOf(o[`${side}-env`]) } });
    const pid = child.proc.pid;
    try {
      await waitHttp200(launch.ready.http, child, 300000);
      await waitPort(listenPort, child);
      await h2load(listenPort, shape, settings, o.warm, ctx);
      control(pid, '--instr=on');
      for (let r = 0; r < o.rounds; r++) {
        control(pid, '--zero');
        const done = await h2load(listenPort, shape, settings, o.requests, ctx);
        control(pid, '--dump');
        const keepAs = o.keep && r === o.rounds - 1 ? path.join(path.resolve(o.keep), `${side}-${o.workload}.callgrind`) : null;
        const ir = dumped(prefix, keepAs);
        per[side].push(ir.main / done);
        all[side].push(ir.all / done);
        net[side].push((ir.main - ir.compile) / done);
        console.log(
          `${side.toUpperCase()} round ${r}: ${Math.round(ir.main / done)} instructions/request on the loop thread (${Math.round((ir.main - ir.compile) / done)} without TurboFan compiles), ${Math.round(ir.all / done)} in all threads (${done} requests)`,
        );
      }
      if (o.keep) {
        const map = `/tmp/perf-${pid}.map`;
        const base = path.join(path.resolve(o.keep), `${side}-${o.workload}`);
        if (fs.existsSync(map)) fs.copyFileSync(map, `${base}.map`);
        console.log(`${side.toUpperCase()} top functions (instructions per request):\n${top(`${base}.callgrind`, `${base}.map`, o.requests)}`);
      }
    } finally {
      await child.stop(10000);
    }
  }
  const med = (x) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
  const line = (label, x) => {
    const a = med(x.a);
    const b = med(x.b);
    const ma = Math.min(...x.a);
    const mb = Math.min(...x.b);
    console.log(`${label}: median A ${Math.round(a)}, B ${Math.round(b)}, B/A ${(b / a).toFixed(4)}; least disturbed round A ${Math.round(ma)}, B ${Math.round(mb)}, B/A ${(mb / ma).toFixed(4)}`);
  };
  line('loop thread', per);
  line('loop thread without TurboFan compiles', net);
  line('all threads', all);
} finally {
  await up.stop();
}
