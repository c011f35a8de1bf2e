// The runner: plan (which workload x peer runs, and why not), then per workload start the
// upstream and the peers, warm up, and measure in rounds of alternating peer order. It knows
// nothing about particular workloads, peers or layers: those live in bench/workloads and
// bench/peers and meet here only through their interfaces.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { coreBusySeconds, cpuSeconds, freePorts, removeOnExit, spawnPinned, waitHttp200, waitPort } from './proc.js';
import { fmtNum } from './svg.js';
import { UPSTREAMS } from '../upstreams/index.js';

/**
 * Round r's peer order: rotate by floor(r / 2) and reverse every other round, so over a few
 * rounds each peer runs early, late and next to different neighbours.
 */
export function roundOrder(names, r) {
  const n = names.length;
  if (!n) return [];
  const k = Math.floor(r / 2);
  const rot = names.map((_, i) => names[(i + k) % n]);
  return r % 2 ? rot.reverse() : rot;
}

/**
 * Detects peers and decides every workload x peer cell:
 *   { status: 'run' | 'skipped' | 'n/a', reason }
 */
export function buildPlan({ settings, peers, workloads }) {
  const peerInfo = peers.map((p) => {
    let d;
    try {
      d = p.detect();
    } catch (err) {
      d = { ok: false, reason: `detect failed: ${err.message}` };
    }
    return { peer: p, ok: d.ok, version: d.version ?? null, reason: d.reason ?? null };
  });
  const plan = [];
  for (const w of workloads) {
    const rounds = w.rounds ? w.rounds(settings) : settings.rounds;
    const up = UPSTREAMS[w.upstream.kind];
    const skip = w.requires() ?? (up ? up.requires() : `unknown upstream ${w.upstream.kind}`);
    const cells = {};
    for (const pi of peerInfo) {
      const p = pi.peer;
      let cell;
      if (!pi.ok) cell = { status: 'skipped', reason: pi.reason };
      else if (w.peerUnavailable?.(p)) {
        const why = w.peerUnavailable(p);
        cell = { status: why.startsWith('n/a') ? 'n/a' : 'skipped', reason: why.replace(/^n\/a: /, '') };
      } else if (!(w.layer in p.configs)) cell = { status: 'skipped', reason: `no ${w.layer} config generator in bench/peers for ${p.name}` };
      else if (p.layerUnavailable?.(w.layer)) cell = { status: 'skipped', reason: p.layerUnavailable(w.layer) };
      else cell = { status: 'run', reason: null };
      cells[p.name] = cell;
    }
    plan.push({ workload: w, rounds, skip, cells });
  }
  return { peerInfo, plan };
}

/** Seconds the plan will take, roughly (for --dry-run and the quick budget). */
export function estimateSeconds({ settings, plan }) {
  let s = 3;
  for (const p of plan) {
    if (p.skip) continue;
    const n = Object.values(p.cells).filter((c) => c.status === 'run').length;
    const w = p.workload;
    const per = w.name === 'tcp-bulk' ? 1.5 : w.name === 'idle-conns' ? 6 : (w.runSeconds?.(settings) ?? settings.durationS) + 0.1;
    const warm = w.warmup ? (w.name === 'tcp-bulk' ? 0.5 : w.runSeconds ? Math.min(settings.warmupS, w.runSeconds(settings) / 2) + 0.1 : Math.max(1, Math.round(settings.warmupS)) + 0.3) : 0;
    s += 1.5 + n * (warm + p.rounds * per + 0.3);
  }
  if (!settings.hotRestart?.off) s += hotRestartSeconds(settings.hotRestart);
  return s;
}

/** Seconds the hot-restart table takes: per upgrade a ~1 s pause plus the takeover, per engine a start. */
export function hotRestartSeconds({ upgrades, engines }) {
  return 2 + engines.length * (2.3 * upgrades + 1.5);
}

export function printPlan({ settings, peerInfo, plan }, out = process.stdout) {
  out.write(`bench plan: mode ${settings.mode}, ${settings.rounds} rounds x ${settings.durationS} s, cpus proxy=${settings.cpus.proxy} loadgen=${settings.cpus.loadgen} upstream=${settings.cpus.upstream}\n`);
  out.write('peers:\n');
  for (const pi of peerInfo) out.write(`  ${pi.peer.name.padEnd(14)} ${pi.ok ? `ok   ${pi.version}` : `skipped: ${pi.reason}`}\n`);
  out.write('workload x peer:\n');
  for (const p of plan) {
    const w = p.workload;
    out.write(`  ${w.name} [${w.layerLabel}] ${p.skip ? `skipped: ${p.skip}` : `${p.rounds} round(s)`}\n`);
    for (const [name, c] of Object.entries(p.cells)) {
      const st = p.skip ? `skipped: ${p.skip}` : c.status === 'run' ? 'run' : `${c.status}: ${c.reason}`;
      out.write(`    ${w.name} x ${name.padEnd(14)} ${st}\n`);
    }
  }
  const hr = settings.hotRestart;
  if (hr) out.write(`  hot-restart [L7 Bolt, rpc_proxy] ${hr.off ? `off: ${hr.off}` : `${hr.upgrades} upgrade(s) on ${hr.engines.map((e) => `strait-${e}`).join(', ')}`}\n`);
  out.write(`estimated wall time: ~${Math.round(estimateSeconds({ settings, plan }))} s\n`);
}

/**
 * The context workloads and upstreams run in: settings, a scratch directory (removed at exit)
 * with mkdir() for each part, free ports. Shared by run.js and the side tools (ab-cpu, ab-gc, profile).
 */
export function makeCtx(settings, log, parent = os.tmpdir()) {
  const tmp = fs.mkdtempSync(path.join(parent, 'strait-bench-'));
  removeOnExit(tmp);
  let n = 0;
  const t0 = Date.now();
  return {
    settings,
    overBudget: () => (Date.now() - t0) / 1000 > settings.budgetS,
    /** Seconds left before the budget is spent (negative once it is). */
    budgetLeftS: () => settings.budgetS - (Date.now() - t0) / 1000,
    cpus: settings.cpus,
    tmp,
    log,
    freePorts,
    mkdir(name) {
      const d = path.join(tmp, `${String(++n).padStart(3, '0')}-${name.replace(/[^\w.-]/g, '_')}`);
      fs.mkdirSync(d, { recursive: true });
      return d;
    },
  };
}

/** Starts a peer for a workload and runs the workload's preflight through it; returns a target. */
export async function startPeer(peer, w, upstream, ctx, extra = {}) {
  // A proxy may speak to another endpoint than the client does (h2c in front, HTTP/1.1 behind).
  const upstreamPort = upstream.endpoints[peer.kind === 'direct' ? w.upstream.endpoint : (w.upstream.proxyEndpoint ?? w.upstream.endpoint)];
  if (peer.kind === 'direct') {
    const t = { peer: peer.name, port: upstreamPort, child: null, upstream, pids: () => [], alive: () => true, stop: async () => {}, configs: null };
    t.preflight = await w.preflight(t, ctx);
    return t;
  }
  const dir = ctx.mkdir(`${w.name}-${peer.name}`);
  const [listenPort, adminPort] = await freePorts(2);
  const launch = peer.configs[w.layer]({ dir, listenPort, adminPort, upstreamPort, fdLimit: ctx.settings.fdLimit, connections: ctx.settings.connections, nodeArgs: extra.nodeArgs });
  for (const [name, text] of Object.entries(launch.files)) fs.writeFileSync(path.join(dir, name), text);
  const args = launch.args.map((a) => a.replace(/^\{file:(.+)\}$/, (_, f) => path.join(dir, f)));
  const child = spawnPinned(peer.name, launch.cmd, args, { cpu: ctx.cpus.proxy, nofile: ctx.settings.fdLimit, cwd: extra.cwd ?? dir });
  const target = {
    peer: peer.name,
    port: listenPort,
    child,
    upstream,
    configs: launch.files,
    command: [launch.cmd, ...args].join(' '),
    pids: () => child.snapshotTree(),
    alive: () => child.running,
    stop: (graceMs) => child.stop(graceMs),
  };
  try {
    if (launch.ready?.http) await waitHttp200(launch.ready.http, child);
    await waitPort(listenPort, child);
    target.preflight = await w.preflight(target, ctx);
    child.snapshotTree();
  } catch (err) {
    await child.stop(1000);
    const st = child.stderr.trim().slice(-600);
    throw new Error(st && !err.message.includes(st.slice(-80)) ? `${err.message} [${peer.name} stderr: ${st}]` : err.message);
  }
  return target;
}

function shortMetric(w, m) {
  const parts = [`${fmtNum(m[w.primary.key])} ${w.primary.unit}`];
  if (Number.isFinite(m.p99_ms)) parts.push(`p99 ${fmtNum(m.p99_ms, 3)} ms`);
  if (w.cpu && Number.isFinite(m[w.cpu.key])) parts.push(`${fmtNum(m[w.cpu.key], 4)} ${w.cpu.label}`);
  return parts.join(', ');
}

/** Runs one planned workload; returns its results entry. */
async function runWorkload(p, ctx) {
  const w = p.workload;
  const s = ctx.settings;
  const entry = {
    name: w.name,
    title: w.title,
    layer: w.layer,
    layerLabel: w.layerLabel,
    primary: w.primary,
    latency: w.latency,
    cpu: w.cpu ? { key: w.cpu.key, label: w.cpu.label } : null,
    columns: w.columns,
    chartSecondary: w.chartSecondary ?? null,
    description: w.describe(s),
    status: 'ran',
    reason: null,
    upstream: { kind: w.upstream.kind, endpoint: w.upstream.endpoint, describe: UPSTREAMS[w.upstream.kind]?.describe ?? '', version: null },
    peers: {},
    order: [],
    runs: [],
  };
  if (p.skip) {
    entry.status = 'skipped';
    entry.reason = p.skip;
    ctx.log(`${w.name}: skipped: ${p.skip}`);
    return entry;
  }
  for (const [name, c] of Object.entries(p.cells)) entry.peers[name] = c.status === 'run' ? { status: 'ran' } : { status: c.status, reason: c.reason };
  const runnable = ctx.peers.filter((peer) => p.cells[peer.name].status === 'run');
  if (ctx.overBudget()) {
    // No round could start: record them all as not run, without spending time on set-up.
    for (let r = 0; r < p.rounds; r++) {
      const order = roundOrder(runnable.map((x) => x.name), r);
      entry.order.push(order);
      for (const name of order) entry.runs.push({ peer: name, round: r, ok: false, metrics: null, errors: {}, notes: [], skipped: `time budget of ${s.budgetS} s exhausted` });
    }
    ctx.log(`${w.name}: not run: time budget of ${s.budgetS} s exhausted`);
    return entry;
  }

  let upstream;
  try {
    upstream = await UPSTREAMS[w.upstream.kind].start(ctx, w.upstream);
  } catch (err) {
    entry.status = 'failed';
    entry.reason = `upstream ${w.upstream.kind} did not start: ${err.message}`;
    ctx.log(`${w.name}: ${entry.reason}`);
    return entry;
  }
  entry.upstream.version = upstream.version;
  entry.upstream.config = upstream.config ?? null;
  const targets = {};
  const recordConfig = (name, t) => {
    entry.peers[name].configs ??= t.configs;
    entry.peers[name].command ??= t.command ?? null;
  };
  try {
    if (!w.freshPeerPerRun) {
      for (const peer of runnable) {
        try {
          targets[peer.name] = await startPeer(peer, w, upstream, ctx);
          recordConfig(peer.name, targets[peer.name]);
        } catch (err) {
          entry.peers[peer.name] = { status: 'failed', reason: err.message };
          ctx.log(`${w.name} / ${peer.name}: failed to start: ${err.message}`);
        }
      }
      if (w.warmup && w.warm && !ctx.overBudget()) {
        for (const name of Object.keys(targets)) {
          try {
            await w.warm(targets[name], ctx);
          } catch (err) {
            ctx.log(`${w.name} / ${name}: warm-up failed: ${err.message}`);
          }
        }
      }
    }
    const active = runnable.map((x) => x.name).filter((n) => entry.peers[n].status === 'ran');
    for (let r = 0; r < p.rounds; r++) {
      const order = roundOrder(active, r);
      entry.order.push(order);
      for (const name of order) {
        if (entry.peers[name].status !== 'ran') continue;
        const peer = ctx.peers.find((x) => x.name === name);
        const run = { peer: name, round: r, ok: false, metrics: null, errors: {}, notes: [] };
        if (ctx.overBudget()) {
          // Never silently: the round is recorded as not run, and the report lists it.
          run.skipped = `time budget of ${s.budgetS} s exhausted`;
          entry.runs.push(run);
          continue;
        }
        let target = targets[name];
        try {
          if (w.freshPeerPerRun) {
            try {
              target = await startPeer(peer, w, upstream, ctx);
            } catch (err) {
              // The peer cannot start at all: that is the peer failing, not one bad round.
              entry.peers[name] = { status: 'failed', reason: err.message };
              ctx.log(`${w.name} / ${name}: failed to start: ${err.message}`);
              continue;
            }
            recordConfig(name, target);
          }
          if (!target.alive()) throw new Error(`proxy no longer running: ${target.child.describeExit()}`);
          const pids = target.pids();
          const cpu0 = cpuSeconds(pids);
          const core0 = coreBusySeconds(ctx.cpus.proxy);
          const t0 = performance.now();
          const out = await w.run(target, ctx);
          const wall = (performance.now() - t0) / 1000;
          const cpu1 = cpuSeconds(pids);
          const core1 = coreBusySeconds(ctx.cpus.proxy);
          run.metrics = { ...out.metrics, wall_s: wall };
          // Everything else that ran on the proxy's core during the run, in cores (0..1):
          // other tenants of a shared machine. Approximate (interrupt work on that core counts).
          if (Number.isFinite(core0) && Number.isFinite(core1) && wall > 0) {
            run.metrics.other_load_proxy_core = Math.max(0, (core1 - core0 - (target.child ? cpu1 - cpu0 : 0)) / wall);
          }
          if (w.cpu && target.child) {
            run.metrics.cpu_s = cpu1 - cpu0;
            const units = w.cpu.per(out.metrics);
            run.metrics[w.cpu.key] = units > 0 ? (cpu1 - cpu0) / units : NaN;
            run.metrics.cpu_util = wall > 0 ? (cpu1 - cpu0) / wall : NaN;
          }
          run.errors = Object.fromEntries(Object.entries(out.errors ?? {}).filter(([, v]) => v));
          run.notes = out.notes ?? [];
          run.command = out.command;
          if (!target.alive()) run.errors.proxy_exited = 1;
          run.ok = Object.keys(run.errors).length === 0;
          ctx.log(`${w.name} r${r + 1} ${name}: ${shortMetric(w, run.metrics)}${run.ok ? '' : `  FLAGGED ${JSON.stringify(run.errors)}`}`);
        } catch (err) {
          run.failure = err.message;
          ctx.log(`${w.name} r${r + 1} ${name}: FAILED ${err.message}`);
        } finally {
          if (w.freshPeerPerRun && target) await target.stop();
        }
        entry.runs.push(run);
      }
    }
  } finally {
    for (const t of Object.values(targets)) await t.stop();
    await upstream.stop();
  }
  return entry;
}

/** Runs the plan; returns the results object the report writer takes. */
export async function runPlan({ settings, peerInfo, plan, meta, log, micro, hotRestart }) {
  const ctx = makeCtx(settings, log);
  ctx.peers = peerInfo.filter((pi) => pi.ok).map((pi) => pi.peer);
  const t0 = Date.now();
  const results = {
    schema: 1,
    fixture: false,
    meta,
    settings,
    peers: peerInfo.map((pi) => ({
      name: pi.peer.name,
      kind: pi.peer.kind,
      describe: pi.peer.describe,
      status: pi.ok ? 'ok' : 'skipped',
      version: pi.version,
      reason: pi.reason,
    })),
    workloads: [],
    micro: null,
    hotRestart: null,
    warnings: [],
  };
  try {
    for (const p of plan) {
      results.workloads.push(await runWorkload(p, ctx));
      await sleep(200);
    }
    if (hotRestart) results.hotRestart = await hotRestart(ctx);
    if (micro) results.micro = await micro(ctx);
  } finally {
    if (!process.env.BENCH_KEEP_TMP) fs.rmSync(ctx.tmp, { recursive: true, force: true });
    else log(`temp files kept in ${ctx.tmp}`);
  }
  results.meta.wallSeconds = (Date.now() - t0) / 1000;
  return results;
}
