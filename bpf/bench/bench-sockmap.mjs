#!/usr/bin/env node
// App-to-sidecar hop with and without the sockmap accelerator: request/response round trip and
// one-way throughput over loopback TCP, sockmap-redirected TCP and a unix socket, 64 B and
// 4 KiB, both ends on one CPU ("pinned") and on two CPUs ("split"). Root only.
// Writes perf-reports/<date>-<commit>-sockmap.{md,json}.
// Settings: STRAIT_BENCH_SECONDS (per run, default 3), STRAIT_BENCH_ROUNDS (default 3),
// STRAIT_BENCH_ENABLE_ARGS (extra `strait intercept enable` flags, space-separated, e.g.
// "--bulk-detect-bytes 0" to measure without the bulk detector; the report gets a suffix).
// STRAIT_BENCH_REPORT=0 prints the tables without writing perf-reports/.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SECONDS = Number(process.env.STRAIT_BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.STRAIT_BENCH_ROUNDS ?? 3);
const BIN = path.join(REPO, 'build/bpf/pingpong');
const CLI = path.join(REPO, 'bin/strait.js');
const NAME = `bench-${process.pid}`;
const ENABLE_ARGS = (process.env.STRAIT_BENCH_ENABLE_ARGS ?? '').split(' ').filter(Boolean);

if (process.getuid() !== 0) {
  console.error('bench-sockmap: needs root (BPF, cgroups)');
  process.exit(1);
}
fs.mkdirSync(path.dirname(BIN), { recursive: true });
execFileSync('cc', ['-O2', '-o', BIN, path.join(REPO, 'bpf/bench/pingpong.c')]);

const cg2 = execFileSync('findmnt', ['-n', '-t', 'cgroup2', '-o', 'TARGET'], { encoding: 'utf8' }).trim().split('\n')[0];
const cgroup = path.join(cg2, `strait-bench-${process.pid}`);
const bpffsBefore = execFileSync('sh', ['-c', 'findmnt -n -t bpf /sys/fs/bpf || true'], { encoding: 'utf8' }).trim() !== '';
const intercept = (...args) => JSON.parse(execFileSync(process.execPath, [CLI, 'intercept', ...args], { encoding: 'utf8' }));

/** A command inside the cgroup (when `inCgroup`) on CPU `cpu`. */
function argv(inCgroup, cpu, args) {
  const join = inCgroup ? `echo $$ > ${cgroup}/cgroup.procs && ` : '';
  return ['sh', '-c', `${join}exec taskset -c ${cpu} ${BIN} ${args.join(' ')}`];
}

function startServer(kind, inCgroup, cpu) {
  const addr = kind === 'unix' ? path.join(os.tmpdir(), `strait-bench-${process.pid}.sock`) : '0';
  const [cmd, ...rest] = argv(inCgroup, cpu, ['server', kind, addr]);
  const p = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => p.stdout.once('data', (d) => resolve({ p, addr: String(d).trim() })));
}

async function measure(mode, kind, size, placement) {
  const inCgroup = mode === 'sockmap';
  const transport = mode === 'unix' ? 'unix' : 'tcp';
  const [scpu, ccpu] = placement === 'pinned' ? [0, 0] : [0, 1];
  const srv = await startServer(transport, inCgroup, scpu);
  try {
    const [cmd, ...rest] = argv(inCgroup, ccpu, [kind, transport, srv.addr, String(size), String(SECONDS)]);
    const out = execFileSync(cmd, rest, { encoding: 'utf8' }).trim().split(' ');
    return kind === 'rr' ? { rttMedianUs: Number(out[1]), rttP99Us: Number(out[2]), samples: Number(out[3]) } : { mbPerS: Number(out[1]) };
  } finally {
    srv.p.kill('SIGKILL');
    if (transport === 'unix') fs.rmSync(srv.addr, { force: true });
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

fs.mkdirSync(cgroup);
const results = [];
let redirected = 0;
let switched = 0;
try {
  const en = intercept('enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cgroup, ...ENABLE_ARGS);
  if (en.mode !== 'sockmap') throw new Error(`sockmap not enabled: ${JSON.stringify(en)}`);
  for (const kind of ['rr', 'bulk']) {
    for (const size of kind === 'rr' ? [64, 4096] : [4096, 65536]) {
      for (const placement of ['pinned', 'split']) {
        const row = { kind, size, placement };
        for (const mode of ['tcp', 'sockmap', 'unix']) {
          const runs = [];
          for (let r = 0; r < ROUNDS; r++) runs.push(await measure(mode, kind, size, placement));
          row[mode] = kind === 'rr' ? { rttMedianUs: median(runs.map((x) => x.rttMedianUs)), rttP99Us: median(runs.map((x) => x.rttP99Us)) } : { mbPerS: median(runs.map((x) => x.mbPerS)) };
        }
        results.push(row);
        console.error(JSON.stringify(row));
      }
    }
  }
  const stats = intercept('status', '--name', NAME).sockmap.stats;
  redirected = stats.msgRedirected;
  switched = stats.socketsSwitchedToTcp;
} finally {
  intercept('disable', '--name', NAME);
  for (let i = 0; i < 100; i++) {
    try {
      fs.rmdirSync(cgroup);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  if (!bpffsBefore) execFileSync('sh', ['-c', 'findmnt -n -t bpf /sys/fs/bpf >/dev/null && umount /sys/fs/bpf || true']);
}

const commit = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const date = new Date().toISOString().slice(0, 10);
const base = path.join(REPO, 'perf-reports', `${date}-${commit}-sockmap${ENABLE_ARGS.length ? '-custom' : ''}`);
const machine = { kernel: os.release(), cpus: os.cpus().length, cpu: os.cpus()[0]?.model, seconds: SECONDS, rounds: ROUNDS };
const report = process.env.STRAIT_BENCH_REPORT !== '0';
if (report) fs.writeFileSync(`${base}.json`, JSON.stringify({ machine, enableArgs: ENABLE_ARGS, redirectedMessages: redirected, socketsSwitchedToTcp: switched, results }, null, 2));
const f = (x, d = 1) => x.toFixed(d);
const lines = [
  `# Sockmap hop benchmark (${date}, ${commit})`,
  '',
  `Kernel ${machine.kernel}, ${machine.cpus} CPUs (${machine.cpu}); ${ROUNDS} rounds of ${SECONDS} s each, medians.`,
  `C client and echo server (bpf/bench/pingpong.c); "pinned" = both on CPU 0, "split" = CPUs 0 and 1; throughput counted at the sender.`,
  `Messages redirected by the sk_msg program during the run: ${redirected}; sending sockets the bulk detector switched to TCP: ${switched}.`,
  ...(ENABLE_ARGS.length ? [`Enabled with \`${ENABLE_ARGS.join(' ')}\`.`] : []),
  '',
  '| round trip | size | placement | TCP µs (p99) | sockmap µs (p99) | unix µs (p99) | sockmap / TCP |',
  '|---|---|---|---|---|---|---|',
  ...results.filter((r) => r.kind === 'rr').map((r) => `| rr | ${r.size} B | ${r.placement} | ${f(r.tcp.rttMedianUs)} (${f(r.tcp.rttP99Us)}) | ${f(r.sockmap.rttMedianUs)} (${f(r.sockmap.rttP99Us)}) | ${f(r.unix.rttMedianUs)} (${f(r.unix.rttP99Us)}) | **${f(r.sockmap.rttMedianUs / r.tcp.rttMedianUs, 2)}** |`),
  '',
  '| throughput | write size | placement | TCP MB/s | sockmap MB/s | unix MB/s | sockmap / TCP |',
  '|---|---|---|---|---|---|---|',
  ...results.filter((r) => r.kind === 'bulk').map((r) => `| bulk | ${r.size} B | ${r.placement} | ${f(r.tcp.mbPerS, 0)} | ${f(r.sockmap.mbPerS, 0)} | ${f(r.unix.mbPerS, 0)} | **${f(r.sockmap.mbPerS / r.tcp.mbPerS, 2)}** |`),
  '',
];
if (report) fs.writeFileSync(`${base}.md`, lines.join('\n'));
console.log(lines.join('\n'));
