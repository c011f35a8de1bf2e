#!/usr/bin/env node
// Strait's macro benchmark suite: every peer side by side in one run (see perf-reports/README.md).
//   node bench/run.js            full run (npm run bench)
//   node bench/run.js --quick    CI profile, <= 3 minutes (npm run bench:quick)
//   node bench/run.js --quick --dry-run   print the plan (every workload x peer) without load
import path from 'node:path';
import { FAILOVER_HOW } from './failover.js';
import { HOT_RESTART_HOW, hotRestartUnavailable } from './hot-restart.js';
import { INTERCEPT_HOW } from './intercept.js';
import { XDS_SCALE_HOW } from './xds-scale.js';
import { loadavg, machineInfo } from './lib/machine.js';
import { runPinned } from './lib/proc.js';
import { writeReport } from './lib/report.js';
import { buildPlan, hotRestartSeconds, printPlan, runPlan } from './lib/runner.js';
import { parseArgs, resolveSettings, USAGE } from './lib/settings.js';
import { summarize } from './lib/summarize.js';
import { BENCH_DIR, findTool, versionOf } from './lib/tools.js';
import { listMicro } from './micro/index.js';
import { PEERS } from './peers/index.js';
import { straitDir } from './peers/strait.js';
import { WORKLOADS } from './workloads/index.js';

const REPO = path.resolve(BENCH_DIR, '..');

function fail(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

let args;
let settings;
try {
  args = parseArgs(process.argv.slice(2));
  settings = resolveSettings(args);
} catch (err) {
  fail(`${err.message}\n\n${USAGE}`);
}
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const known = new Set(WORKLOADS.map((w) => w.name));
for (const n of settings.workloads ?? []) if (!known.has(n)) fail(`unknown workload ${n}; known: ${[...known].join(', ')}`);
const knownPeers = new Set(PEERS.map((p) => p.name));
for (const n of settings.peers ?? []) if (!knownPeers.has(n)) fail(`unknown peer ${n}; known: ${[...knownPeers].join(', ')}`);

const workloads = WORKLOADS.filter((w) => (settings.workloads ? settings.workloads.includes(w.name) : settings.mode === 'full' || w.quick));
const peers = PEERS.filter((p) => !settings.peers || settings.peers.includes(p.name));
const { peerInfo, plan } = buildPlan({ settings, peers, workloads });

if (args.dryRun) {
  printPlan({ settings, peerInfo, plan });
  process.stdout.write(`micro benchmarks: ${settings.micro ? listMicro().map((f) => path.basename(f, '.js')).join(', ') || 'none' : 'off'}\n`);
  process.exit(0);
}

const t0 = Date.now();
const log = (msg) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
printPlan({ settings, peerInfo, plan }, process.stderr);

const meta = machineInfo(straitDir());
meta.tools.taskset = findTool('taskset').ok ? versionOf('taskset', ['--version']) : null;

/** Micro benchmarks in their own process, pinned to the (now idle) proxy core. */
async function micro(ctx) {
  log('micro benchmarks');
  const r = await runPinned('micro', process.execPath, [path.join(BENCH_DIR, 'micro/index.js'), '--json', '--time', String(settings.microTimeMs)], {
    cpu: ctx.cpus.proxy,
    timeoutMs: 300_000,
    env: { ...process.env, BENCH_STRAIT_DIR: straitDir() },
  });
  const m = r.stdout.match(/^BENCH_MICRO (.*)$/m);
  if (!m) return [{ name: 'micro', status: 'failed', reason: `micro runner exited ${r.code}: ${r.stderr.slice(-500)}`, tasks: [] }];
  return JSON.parse(m[1]);
}

/**
 * The hot-restart table (bench/hot-restart.js) in its own process: it loads sofa-rpc-node, whose
 * timers must not keep this process alive, and a hung upgrade is killed by the timeout.
 */
async function hotRestart(ctx) {
  const hr = settings.hotRestart;
  const out = { status: 'ran', reason: null, upgrades: hr.upgrades, engines: hr.engines, how: HOT_RESTART_HOW, rows: [] };
  const skip = (status, reason) => {
    log(`hot restart: ${status}: ${reason}`);
    return { ...out, status, reason };
  };
  if (hr.off) return skip('skipped', hr.off);
  const why = hotRestartUnavailable();
  if (why) return skip('skipped', why);
  const need = hotRestartSeconds(hr);
  if (ctx.budgetLeftS() < need) return skip('not run', `time budget of ${settings.budgetS} s: ${Math.max(0, Math.round(ctx.budgetLeftS()))} s left, it needs ~${Math.round(need)} s`);
  log(`hot restart: ${hr.upgrades} upgrade(s) on ${hr.engines.join(', ')}`);
  const r = await runPinned('hot-restart', process.execPath, [path.join(BENCH_DIR, 'hot-restart.js'), '--json', '--upgrades', String(hr.upgrades), '--engines', hr.engines.join(',')], {
    timeoutMs: (need + 60) * 1000,
    env: { ...process.env, BENCH_STRAIT_DIR: straitDir() },
  });
  let rows = null;
  try {
    rows = r.code === 0 ? JSON.parse(r.stdout) : null;
  } catch {
    // reported below
  }
  if (!Array.isArray(rows)) return skip('failed', `bench/hot-restart.js exited ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).trim().slice(-600)}`);
  for (const row of rows) log(`hot restart strait-${row.engine}: ${row.calls_ok} calls ok, ${row.calls_failed} failed, ${row.client_connections} client connection(s)`);
  return { ...out, rows };
}

/**
 * The failover table (bench/failover.js) in its own process: one of three HTTP upstreams killed
 * and revived under load. Runs when the profile's time budget still has room for it.
 */
async function failover() {
  const engines = settings.hotRestart.engines.length ? settings.hotRestart.engines : ['native'];
  const seconds = 4;
  const out = { status: 'ran', reason: null, how: FAILOVER_HOW, rows: [] };
  if (settings.failoverOff) return { ...out, status: 'skipped', reason: settings.failoverOff };
  const need = engines.length * (seconds + 3);
  const left = settings.budgetS - (Date.now() - t0) / 1000;
  if (left < need) {
    log(`failover: not run: ${Math.max(0, Math.round(left))} s of the budget left, it needs ~${need} s`);
    return { ...out, status: 'not run', reason: `time budget of ${settings.budgetS} s: ${Math.max(0, Math.round(left))} s left, it needs ~${need} s` };
  }
  log(`failover: one of three HTTP upstreams killed and revived, ${seconds} s on ${engines.join(', ')}`);
  const r = await runPinned('failover', process.execPath, [path.join(BENCH_DIR, 'failover.js'), '--json', '--engines', engines.join(','), '--seconds', String(seconds)], {
    timeoutMs: (need + 60) * 1000,
    env: { ...process.env, BENCH_STRAIT_DIR: straitDir() },
  });
  let rows = null;
  try {
    rows = r.code === 0 ? JSON.parse(r.stdout) : null;
  } catch {
    // reported below
  }
  if (!Array.isArray(rows)) return { ...out, status: 'failed', reason: `bench/failover.js exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-600)}` };
  for (const x of rows) log(`failover strait-${x.engine}: ${x.requests_failed} failed of ${x.requests_ok + x.requests_failed}, ${x.failed_after_detection} after detection`);
  return { ...out, rows };
}

/**
 * The interception table (bench/intercept.js) in its own process: app → Strait → upstream over
 * sockmap, iptables, loopback TCP and a unix socket. It creates a network namespace and cgroup and
 * removes them; ~17 s in the quick profile, so it is not gated on the budget.
 */
async function interceptTable() {
  const out = { status: 'ran', reason: null, how: INTERCEPT_HOW, rows: [] };
  if (settings.interceptOff) return { ...out, status: 'skipped', reason: settings.interceptOff };
  log(`intercept: app -> Strait -> upstream over sockmap, iptables, tcp, unix (${settings.mode})`);
  const r = await runPinned('intercept', process.execPath, [path.join(BENCH_DIR, 'intercept.js'), '--json', ...(settings.mode === 'quick' ? ['--quick'] : [])], {
    // Full: 7 columns x 8 rows x 3 rounds of paired 3 s runs is ~17 min before set-up.
    timeoutMs: (settings.mode === 'quick' ? 90 : 1800) * 1000,
    env: { ...process.env, BENCH_STRAIT_DIR: straitDir() },
  });
  try {
    if (r.code === 0) return JSON.parse(r.stdout);
  } catch {
    // reported below
  }
  return { ...out, status: 'failed', reason: `bench/intercept.js exited ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).trim().slice(-600)}` };
}

/**
 * The xDS scale table (bench/xds-scale.js) in its own process: 1,000 clusters / 10,000 endpoints
 * over delta ADS, then an EDS update replacing half of them under HTTP load. 11 to 25 s on the
 * shared 2-core machine at full size (over quick's 20 s when it is busy), so the quick profile
 * runs 200 / 2,000 and the report says so; the full profile adds the on-demand sidecar row.
 */
async function xdsScale() {
  const full = settings.mode !== 'quick';
  const size = full ? { clusters: 1000, endpoints: 10_000, seconds: 3 } : { clusters: 200, endpoints: 2000, seconds: 2 };
  const out = { status: 'ran', reason: null, how: XDS_SCALE_HOW, size, reduced: !full, result: null };
  if (settings.xdsScaleOff) return { ...out, status: 'skipped', reason: settings.xdsScaleOff };
  log(`xds scale: ${size.clusters} clusters / ${size.endpoints} endpoints over delta ADS, then half of the endpoints replaced under load`);
  const r = await runPinned('xds-scale', process.execPath, [path.join(BENCH_DIR, 'xds-scale.js'), '--json', '--clusters', String(size.clusters), '--endpoints', String(size.endpoints), '--seconds', String(size.seconds), ...(full ? ['--on-demand'] : [])], {
    timeoutMs: 240_000,
    env: { ...process.env, BENCH_STRAIT_DIR: straitDir() },
  });
  try {
    if (r.code === 0) {
      const result = JSON.parse(r.stdout);
      log(`xds scale: applied in ${result.apply.apply_ms} ms (+${result.apply.rss_delta_mib} MiB); EDS churn ${result.churn.requests_failed} failed of ${result.churn.requests_ok + result.churn.requests_failed}, applied in ${result.churn.apply_ms} ms`);
      return { ...out, result };
    }
  } catch {
    // reported below
  }
  return { ...out, status: 'failed', reason: `bench/xds-scale.js exited ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).trim().slice(-600)}` };
}

const results = await runPlan({ settings, peerInfo, plan, meta, log, micro: settings.micro ? micro : null, hotRestart });
results.failover = await failover();
results.intercept = await interceptTable();
results.xdsScale = await xdsScale();
results.meta.loadavgEnd = loadavg();
const outDir = path.resolve(args.out ?? path.join(REPO, 'perf-reports'));
const files = writeReport(results, outDir);

// Headline: throughput ratios per workload.
const sum = summarize(results);
process.stdout.write('\nheadline (median; fraction of direct / relative to best proxy; - where a side did not run):\n');
for (const w of results.workloads) {
  const s = sum[w.name];
  if (s.status !== 'ran') {
    process.stdout.write(`  ${w.name}: ${s.status}: ${s.reason}\n`);
    continue;
  }
  const cells = Object.entries(s.peers)
    .filter(([n]) => n !== 'direct')
    .map(([n, p]) => {
      if (p.status !== 'ran') return `${n} ${p.status}`;
      if (!p.clean) return `${n} ${p.runs ? 'errors' : 'not run'}`;
      const r = w.primary.better === 'higher' ? `${p.ratios.vs_direct?.toFixed(2) ?? '-'}/${p.ratios.vs_best?.toFixed(2) ?? '-'}` : `${p.stats[w.primary.key].median.toFixed(1)} ${w.primary.unit}`;
      return `${n} ${r}${p.flagged ? '!' : ''}`;
    });
  process.stdout.write(`  ${w.name}: ${cells.join(', ')}\n`);
}
const fo = results.failover;
if (fo) {
  const cells = fo.rows.map((x) => `strait-${x.engine} ${x.requests_failed} failed of ${x.requests_ok + x.requests_failed} (${x.failed_after_detection} after detection)`);
  process.stdout.write(`  failover (1 of 3 upstreams killed): ${fo.status === 'ran' ? cells.join('; ') : `${fo.status}: ${fo.reason}`}\n`);
}
const ic = results.intercept;
if (ic) {
  const rr = ic.rows?.find((x) => x.kind === 'rr' && x.size === 64 && x.placement === 'pinned');
  const sm = rr?.cells.sockmap;
  // The tcp run paired with the sockmap runs (see bench/intercept.js).
  const tcp = sm?.tcpRef ?? rr?.cells.tcp;
  const cell = !rr ? 'no rows' : sm?.skipped || tcp?.skipped ? `skipped: ${sm?.skipped ?? tcp?.skipped}` : `sockmap/tcp round trip 64 B pinned ${(sm.pairRatio ?? sm.rttMedianUs / tcp.rttMedianUs).toFixed(2)}`;
  process.stdout.write(`  intercept (app -> Strait -> upstream): ${ic.status === 'ran' ? cell : `${ic.status}: ${ic.reason}`}\n`);
}
const hr = results.hotRestart;
if (hr) {
  const cells = hr.rows.map((x) => `strait-${x.engine} ${x.calls_failed} failed of ${x.calls_ok + x.calls_failed}, ${x.client_connections} connection(s)`);
  process.stdout.write(`  hot restart (${hr.upgrades} upgrade(s)): ${hr.status === 'ran' ? cells.join('; ') : `${hr.status}: ${hr.reason}`}\n`);
}
const xs = results.xdsScale;
if (xs) {
  const x = xs.result;
  const cell = x ? `${x.apply.clusters} clusters / ${x.apply.endpoints} endpoints applied in ${x.apply.apply_ms} ms, +${x.apply.rss_delta_mib} MiB; EDS churn ${x.churn.requests_failed} failed of ${x.churn.requests_ok + x.churn.requests_failed}` : `${xs.status}: ${xs.reason}`;
  process.stdout.write(`  xds scale${xs.reduced ? ' (quick: reduced size)' : ''}: ${cell}\n`);
}
process.stdout.write(`\nreport: ${files.md}\n        ${files.json}\n        ${files.svg}\nwall time ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
