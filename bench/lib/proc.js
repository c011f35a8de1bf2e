// Child processes for the bench: spawning pinned and with a raised fd limit, process-tree CPU and
// RSS from /proc, free ports, readiness polling, and a cleanup registry that stops everything the
// bench started even when it fails or is interrupted (Ctrl-C).
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // getconf missing: 100 is the Linux value on every architecture we run on.
}

/** @type {Set<Child>} */
const live = new Set();
let handlersInstalled = false;

function installHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL every pid we know, tree members included
  // (killing an nginx master with SIGKILL would otherwise orphan its worker).
  process.on('exit', () => killAllSync());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping every process the bench started\n`);
      killAllSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

const cleanupDirs = new Set();

/** Removes `dir` when the bench exits, however it exits (unless BENCH_KEEP_TMP is set). */
export function removeOnExit(dir) {
  cleanupDirs.add(dir);
  installHandlers();
}

export function killAllSync() {
  for (const c of live) c.killSync();
  live.clear();
  if (!process.env.BENCH_KEEP_TMP) {
    for (const d of cleanupDirs) fs.rmSync(d, { recursive: true, force: true });
    cleanupDirs.clear();
  }
}

function tail(s, n = 4000) {
  return s.length > n ? s.slice(s.length - n) : s;
}

/** A spawned process with captured output (the last 64 KiB of each stream). */
export class Child {
  constructor(name, proc) {
    this.name = name;
    this.proc = proc;
    this.pid = proc.pid;
    this.stdout = '';
    this.stderr = '';
    this.exitCode = undefined;
    this.signal = undefined;
    /** pids of the process tree seen at the last snapshot (root first). */
    this.knownPids = [proc.pid];
    proc.stdout?.on('data', (d) => (this.stdout = tail(this.stdout + d, 65536)));
    proc.stderr?.on('data', (d) => (this.stderr = tail(this.stderr + d, 65536)));
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        live.delete(this);
        resolve(code);
      });
      proc.on('error', (err) => {
        this.stderr += `\nspawn error: ${err.message}`;
        this.exitCode = -1;
        live.delete(this);
        resolve(-1);
      });
    });
    // 'exit' may come before the last stdout/stderr chunks are read; 'close' comes after them.
    this.closed = new Promise((resolve) => proc.on('close', resolve));
    live.add(this);
    installHandlers();
  }

  get running() {
    return this.exitCode === undefined;
  }

  /** Refreshes the known tree (call once the process is ready: nginx forks its worker late). */
  snapshotTree() {
    if (this.running) this.knownPids = treePids(this.pid);
    return this.knownPids;
  }

  describeExit() {
    return `${this.name} exited (${this.signal ?? `code ${this.exitCode}`}): ${tail(this.stderr.trim() || this.stdout.trim(), 1500)}`;
  }

  killSync() {
    for (const pid of new Set([...this.knownPids, ...(this.running ? treePids(this.pid) : [])])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** SIGTERM (graceful), then SIGKILL for the whole tree after `graceMs`. */
  async stop(graceMs = 3000) {
    if (this.running) {
      this.snapshotTree();
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        // gone
      }
      const t = setTimeout(() => this.killSync(), graceMs);
      await this.exited;
      clearTimeout(t);
    }
    // Children of a tree whose root exited (an nginx worker whose master died) must not survive.
    this.killSync();
    live.delete(this);
  }
}

let tasksetOk;
export function haveTaskset() {
  if (tasksetOk === undefined) tasksetOk = which('taskset') !== null;
  return tasksetOk;
}

/**
 * Spawns `cmd args` pinned to `cpu` (when taskset exists and cpu is a number) with RLIMIT_NOFILE
 * raised to `nofile` (falling back to the hard limit when we may not raise it). A shell wrapper
 * does the raise and then `exec`s, so the pid we hold is the real program's pid.
 */
export function spawnPinned(name, cmd, args, { cpu, nofile, cwd, env, stdin = 'ignore' } = {}) {
  const pin = typeof cpu === 'number' && haveTaskset() ? `taskset -c ${cpu} ` : '';
  const lim = nofile ? `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ` : '';
  const script = `${lim}exec ${pin}"$0" "$@"`;
  const proc = spawn('/bin/sh', ['-c', script, cmd, ...args], {
    cwd,
    env: env ?? process.env,
    stdio: [stdin, 'pipe', 'pipe'],
  });
  return new Child(name, proc);
}

/** Runs a program to completion with a timeout; resolves { code, stdout, stderr, timedOut }. */
export async function runPinned(name, cmd, args, opts = {}) {
  const c = spawnPinned(name, cmd, args, opts);
  let timedOut = false;
  const t = opts.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        c.killSync();
      }, opts.timeoutMs)
    : null;
  const code = await c.exited;
  if (t) clearTimeout(t);
  // Read the output to its end: resolving on 'exit' alone lost a tool's summary now and then
  // ("gave no summary (exit 0)"). Bounded, for a grandchild that keeps the pipe open.
  await Promise.race([c.closed, new Promise((r) => setTimeout(r, 2000).unref())]);
  return { code, stdout: c.stdout, stderr: c.stderr, timedOut, signal: c.signal };
}

export function which(bin) {
  if (bin.includes('/')) return fs.existsSync(bin) ? bin : null;
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = `${dir}/${bin}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return null;
}

/** Every pid whose ancestry reaches `root` (root first), from /proc/<pid>/stat. */
export function treePids(root) {
  const parent = new Map();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = readStat(Number(e));
    if (st) parent.set(Number(e), st.ppid);
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    for (const [pid, ppid] of parent) if (ppid === out[i] && !out.includes(pid)) out.push(pid);
  }
  return out.filter((p) => p === root || parent.has(p));
}

function readStat(pid) {
  let s;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm may contain spaces and parentheses: fields start after the last ')'.
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
  return { ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]) };
}

/** CPU seconds (user + system, all threads) consumed so far by the given pids. */
export function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const st = readStat(pid);
    if (st) ticks += st.utime + st.stime;
  }
  return ticks / CLK_TCK;
}

/** Resident set size in bytes summed over the pids (VmRSS). */
export function rssBytes(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
      if (m) kb += Number(m[1]);
    } catch {
      // exited
    }
  }
  return kb * 1024;
}

/** Proportional set size in bytes summed over the pids (shared pages split between sharers). */
export function pssBytes(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+) kB/m);
      if (m) kb += Number(m[1]);
    } catch {
      // exited or no smaps_rollup
    }
  }
  return kb * 1024;
}

/**
 * `n` distinct free loopback ports: bind port 0 `n` times, keep all bound until every one is
 * known (so none repeats), then close. A racing process could still take one before our peer
 * binds it; the peer then fails to start and says so.
 */
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
      servers.push(s);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r()))));
  }
}

export function tryConnect(port, host = '127.0.0.1', timeoutMs = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const t = setTimeout(() => done(false), timeoutMs);
    function done(ok) {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    }
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Polls until `port` accepts a connection; throws with the child's output if it exits first. */
export async function waitPort(port, child, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && !child.running) throw new Error(child.describeExit());
    if (await tryConnect(port)) return;
    await sleep(25);
  }
  throw new Error(`port ${port} not accepting after ${timeoutMs} ms${child ? `; ${child.name} stderr: ${tail(child.stderr, 1500)}` : ''}`);
}

/** Polls `url` until it answers 200. */
export async function waitHttp200(url, child, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && !child.running) throw new Error(child.describeExit());
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms${child ? `; ${child.name} stderr: ${tail(child.stderr, 1500)}` : ''}`);
}

/** Waits until a line matching `re` appears on the child's stdout; returns the match. */
export async function waitStdout(child, re, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = child.stdout.match(re);
    if (m) return m;
    if (!child.running) throw new Error(child.describeExit());
    await sleep(10);
  }
  throw new Error(`${child.name}: no ${re} on stdout within ${timeoutMs} ms; stderr: ${tail(child.stderr, 1500)}`);
}

let nofileCache;
/**
 * The RLIMIT_NOFILE our children can get: 65536 when we may raise it, else the hard limit
 * (containers without CAP_SYS_RESOURCE cannot go above it, even as root).
 */
export function nofileLimit(want = 65536) {
  if (nofileCache !== undefined) return nofileCache;
  const r = spawnSync('/bin/sh', ['-c', `ulimit -n ${want} 2>/dev/null && ulimit -n`], { encoding: 'utf8' });
  if (r.status === 0 && Number(r.stdout.trim()) >= want) return (nofileCache = want);
  let hard = NaN;
  try {
    const m = fs.readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+\S+\s+(\S+)/m);
    hard = m && m[1] === 'unlimited' ? want : Number(m?.[1]);
  } catch {
    // no /proc: fall through
  }
  return (nofileCache = Number.isFinite(hard) ? Math.min(hard, want) : 1024);
}

/**
 * Busy seconds of one core so far (user+nice+system+irq+softirq+steal from /proc/stat), or NaN.
 * Compared with the proxy's own CPU time it shows how much else ran on the proxy's core: on a
 * shared machine that is the noise in a run.
 */
export function coreBusySeconds(cpu) {
  if (typeof cpu !== 'number') return NaN;
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `));
    if (!line) return NaN;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK;
  } catch {
    return NaN;
  }
}
