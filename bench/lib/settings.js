// Run settings: the quick (CI) and full profiles, overridable by env vars (STYLE item 12:
// settings as env vars) and a few flags. Everything here is copied into the report's JSON.
import os from 'node:os';
import { nofileLimit } from './proc.js';

function envNum(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}=${v} is not a number`);
  return n;
}

function envList(name) {
  const v = process.env[name];
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : null;
}

/**
 * The two profiles. quick must finish in 3 minutes on 2 noisy cores with 5 peers (Envoy off):
 * its budget is mostly 2 L7 HTTP workloads x 5 peers x 2 rounds x (duration + ~0.4 s overhead),
 * 10,000 idle connections through 4 proxies, 2 RPC workloads with short runs (rpcDurationS),
 * then one hot-restart upgrade.
 */
export const PROFILES = {
  quick: {
    rounds: 2,
    durationS: 2,
    // RPC runs are shorter so the two RPC workloads fit the 3 minutes: a closed loop of 64 calls
    // is at steady state within milliseconds, and half a second is still tens of thousands of
    // calls per run. Their warm-up is half a run (see bench/workloads/rpc.js).
    rpcDurationS: 0.5,
    warmupS: 0.5,
    bulkBytes: 1 << 30,
    idleConnections: 10000,
    idleRounds: 1,
    microTimeMs: 150,
    // One upgrade on the native engine: the proof that connections survive, in ~6 s.
    hotRestartUpgrades: 1,
    hotRestartEngines: ['native'],
    // Rounds, then the hot-restart table, start only before this; the micro benchmarks (~12 s)
    // and the report follow, so the whole run stays within 3 minutes.
    budgetS: 160,
  },
  full: {
    rounds: 5,
    durationS: 5,
    // 3 s of a closed loop is hundreds of thousands of calls; the 4 RPC workloads add ~6 minutes.
    rpcDurationS: 3,
    warmupS: 1,
    bulkBytes: 1 << 30,
    idleConnections: 10000,
    idleRounds: 2,
    microTimeMs: 1000,
    hotRestartUpgrades: 3,
    hotRestartEngines: ['native', 'node'],
    // Rows and the hot-restart table took ~1820 s on 2026-12-04 (the 1770 s this was first sized
    // to left no room for the failover table, which then reported "not run").
    budgetS: 2100,
  },
};

/**
 * CPU placement. With 2 cores the proxy gets core 0 alone and the load generator and upstream
 * share core 1: every peer then pays the same client+server cost on core 1, so "direct" (client
 * and server alone on core 1) is a true ceiling for the proxied rows. With >= 3 cores the
 * upstream gets its own core. With 1 core nothing is pinned (and the report says so).
 */
export function cpuPlan(ncpu = os.availableParallelism()) {
  const dflt =
    ncpu >= 3 ? { proxy: 0, loadgen: 1, upstream: 2 } : ncpu === 2 ? { proxy: 0, loadgen: 1, upstream: 1 } : { proxy: null, loadgen: null, upstream: null };
  const pick = (k, d) => {
    const v = process.env[`BENCH_CPU_${k.toUpperCase()}`];
    if (v === undefined || v === '') return d;
    if (v === 'none') return null;
    return Number(v);
  };
  return { proxy: pick('proxy', dflt.proxy), loadgen: pick('loadgen', dflt.loadgen), upstream: pick('upstream', dflt.upstream) };
}

export function parseArgs(argv) {
  const o = { quick: false, dryRun: false, only: null, peers: null, out: null, rounds: null, durationS: null, noMicro: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--dry-run') o.dryRun = true;
    else if (a === '--only' || a === '--workloads') o.only = val().split(',');
    else if (a === '--peers') o.peers = val().split(',');
    else if (a === '--out') o.out = val();
    else if (a === '--rounds') o.rounds = Number(val());
    else if (a === '--duration') o.durationS = Number(val());
    else if (a === '--no-micro') o.noMicro = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

export const USAGE = `usage: node bench/run.js [--quick] [--dry-run] [--only w1,w2] [--peers p1,p2]
                        [--rounds N] [--duration S] [--out DIR] [--no-micro]
  --quick      the CI profile (<= 3 minutes); default is the full profile
  --dry-run    print the plan (every workload x peer, with skip reasons) and exit
env: ENVOY_BIN, BENCH_ROUNDS, BENCH_DURATION_S, BENCH_WARMUP_S, BENCH_BULK_BYTES,
     BENCH_IDLE_CONNECTIONS, BENCH_CONNECTIONS (wrk/h2load connections, 64),
     BENCH_PIPELINE_DEPTH (16), BENCH_H2_STREAMS (4), BENCH_WORKLOADS, BENCH_PEERS,
     BENCH_RPC_DURATION_S (seconds per Bolt/Dubbo run; quick 0.5, full 3),
     BENCH_CPU_PROXY / BENCH_CPU_LOADGEN / BENCH_CPU_UPSTREAM (core number or 'none'),
     BENCH_STRAIT_DIR (repo whose bin/strait.js is benchmarked), BENCH_BUDGET_S,
     BENCH_MICRO_TIME_MS, BENCH_IDLE_ROUNDS, BENCH_KEEP_TMP=1,
     BENCH_HOT_RESTART_UPGRADES (quick 1, full 3; 0 = off), BENCH_HOT_RESTART_ENGINES (quick native, full native,node)
  --only also accepts 'hot-restart'; with --only the hot-restart table runs only when listed.
  Likewise 'failover', 'intercept' and 'xds-scale' (quick runs xds-scale at 200 clusters / 2,000 endpoints).
`;

/** Resolves the effective settings from profile, env vars and flags (flags win). */
export function resolveSettings(args) {
  const mode = args.quick ? 'quick' : 'full';
  const p = { ...PROFILES[mode] };
  const s = {
    mode,
    rounds: args.rounds ?? envNum('BENCH_ROUNDS', p.rounds),
    durationS: args.durationS ?? envNum('BENCH_DURATION_S', p.durationS),
    // --duration sets every workload's run length, RPC included.
    rpcDurationS: args.durationS ?? envNum('BENCH_RPC_DURATION_S', p.rpcDurationS),
    warmupS: envNum('BENCH_WARMUP_S', p.warmupS),
    bulkBytes: envNum('BENCH_BULK_BYTES', p.bulkBytes),
    idleConnections: envNum('BENCH_IDLE_CONNECTIONS', p.idleConnections),
    idleRounds: envNum('BENCH_IDLE_ROUNDS', p.idleRounds),
    connections: envNum('BENCH_CONNECTIONS', 64),
    pipelineDepth: envNum('BENCH_PIPELINE_DEPTH', 16),
    h2Streams: envNum('BENCH_H2_STREAMS', 4),
    microTimeMs: envNum('BENCH_MICRO_TIME_MS', p.microTimeMs),
    // Rounds not started once this many seconds have passed are reported as not run.
    budgetS: envNum('BENCH_BUDGET_S', p.budgetS),
    workloads: args.only ?? envList('BENCH_WORKLOADS'),
    peers: args.peers ?? envList('BENCH_PEERS'),
    cpus: cpuPlan(),
    micro: !args.noMicro,
  };
  const only = s.workloads;
  s.hotRestart = {
    upgrades: envNum('BENCH_HOT_RESTART_UPGRADES', p.hotRestartUpgrades),
    engines: envList('BENCH_HOT_RESTART_ENGINES') ?? p.hotRestartEngines,
    off: null,
  };
  s.failoverOff = null;
  s.interceptOff = null;
  s.xdsScaleOff = null;
  if (only) {
    // The hot-restart and failover tables are not workloads, but --only selects them the same way.
    if (!only.includes('hot-restart')) s.hotRestart.off = '--only / BENCH_WORKLOADS does not list hot-restart';
    if (!only.includes('failover')) s.failoverOff = '--only / BENCH_WORKLOADS does not list failover';
    if (!only.includes('intercept')) s.interceptOff = '--only / BENCH_WORKLOADS does not list intercept';
    if (!only.includes('xds-scale')) s.xdsScaleOff = '--only / BENCH_WORKLOADS does not list xds-scale';
    s.workloads = only.filter((w) => w !== 'hot-restart' && w !== 'failover' && w !== 'intercept' && w !== 'xds-scale');
  }
  if (s.peers) s.hotRestart.engines = s.hotRestart.engines.filter((e) => s.peers.includes(`strait-${e}`));
  if (!(s.hotRestart.upgrades >= 1)) s.hotRestart.off ??= 'BENCH_HOT_RESTART_UPGRADES=0';
  else if (!s.hotRestart.engines.length) s.hotRestart.off ??= 'no Strait engine among the selected peers';
  // A proxied connection costs the proxy two fds (downstream + upstream). Where the fd limit
  // cannot be raised (no CAP_SYS_RESOURCE: the hard limit binds even root), the memory workload
  // opens as many connections as fit and the report says so and why.
  s.fdLimit = nofileLimit();
  s.idleConnectionsRequested = s.idleConnections;
  const fit = Math.floor((s.fdLimit - 256) / 2);
  if (fit < s.idleConnections) {
    s.idleConnections = fit;
    s.idleConnectionsNote = `requested ${s.idleConnectionsRequested} idle connections; ${fit} fit: RLIMIT_NOFILE is ${s.fdLimit} and cannot be raised here (no CAP_SYS_RESOURCE), and each proxied connection needs 2 fds in the proxy`;
  }
  if (!(s.rounds >= 1)) throw new Error('rounds must be >= 1');
  if (!(s.durationS > 0)) throw new Error('duration must be > 0');
  return s;
}
