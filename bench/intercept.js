// App → Strait → upstream through each way an app can reach the sidecar: sockmap (BPF connect4
// capture + sk_msg redirect on the app-to-sidecar hop), iptables REDIRECT, plain loopback TCP to
// the sidecar's port and its unix socket (Envoy `pipe` listener). Request/response round trip
// (64 B and 4 KiB, one connection, ping-pong) and one-way bulk throughput, with every process on
// one CPU ("pinned", taskset) and unpinned.
//
//   node bench/intercept.js [--quick] [--seconds S] [--rounds R] [--modes m,m,...] [--kinds rr,bulk] [--json]
// Also run by bench/run.js, which puts the table in the report. Root is needed for everything
// but the tcp and unix columns (a network namespace, a cgroup, BPF, iptables); without it those
// cells say `skipped: <reason>`.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(process.env.BENCH_STRAIT_DIR || path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const CLI = path.join(REPO, 'bin/strait.js');
/** Strait's gid: its upstream connects are exempt from capture (both BPF and iptables). */
const SIDECAR_GID = 1337;
/** The upstream's address: not loopback, because neither capture takes loopback destinations. */
const UPSTREAM_IP = '10.203.0.1';

export const MODES = ['sockmap', 'sockmap-onehop', 'sockmap-both', 'sockmap-bulk', 'sockmap-nodetect', 'iptables', 'tcp', 'unix'];

export const INTERCEPT_HOW =
  'C client and echo/sink upstream (bpf/bench/pingpong.c), Strait (native engine, tcp_proxy) in between, all in a network namespace and cgroup of the bench. ' +
  '"sockmap": `strait intercept enable --mode sockmap` captures the client\'s connect to the upstream address (cgroup/connect4) and redirects the client-Strait hop with sk_msg, and, Strait being known by `--exempt-gid`, its own connection to the upstream (the Strait-upstream hop, like the sidecar-to-app hop of an inbound request) by default; ' +
  '"sockmap-onehop": the same with `--sidecar-connects tcp` (only the client-Strait hop redirected, the default before 2026-12-03); ' +
  '"sockmap-both": "sockmap" plus `--app-ports <upstream port>` (the same two hops; the way to get the second one before it was the default); ' +
  '"sockmap-bulk": the same as "sockmap" with `--bulk-ports <upstream port>`, which keeps that hop on TCP for captured connections to bulk ports; ' +
  '"sockmap" and the two above run with the sk_msg bulk detector on (the default: a socket streaming small writes with no reply is switched to TCP for good); "sockmap-nodetect": "sockmap" with `--bulk-detect-bytes 0`; ' +
  '"iptables": nat REDIRECT of the same connect, Strait reads SO_ORIGINAL_DST; "tcp": the client connects to Strait\'s loopback port; "unix": to Strait\'s unix socket listener. ' +
  'Strait reaches the upstream at 127.0.0.1 in every mode (redirected in every sockmap column but "sockmap-onehop", loopback TCP in the others); the upstream listens on every address, and the client connects to its non-loopback one (captured). "pinned": client, Strait and upstream on CPU 0; "unpinned": the scheduler decides. Round trip: median (p99) µs of one request at a time on one connection; bulk: MB/s counted at the sender. ' +
  'Each run of a non-tcp column is followed by a tcp run, and its ratio is the median of the per-pair ratios (the columns are measured one after another, and on a shared machine the load drifts between them); a sockmap column\'s capture is switched off for its paired runs, so they are plain loopback TCP on both hops (until 2026-12-03 it stayed on, so the Strait-upstream hop of the reference was redirected too).';

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

function have(bin) {
  try {
    sh('sh', ['-c', `command -v ${bin}`]);
    return true;
  } catch {
    return false;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Why the kernel modes cannot run here (null: they can), found without changing anything. */
function kernelReason() {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'needs root (network namespace, cgroup, BPF, iptables)';
  for (const t of ['ip', 'nsenter', 'taskset']) if (!have(t)) return `${t} is not installed`;
  return null;
}

/** Everything the bench creates, removed in reverse order by `close()`. */
/**
 * A bench run that was killed (timeout, ^C) skipped its undo list: remove the netns and cgroup of
 * runs whose process is gone, and disable the interception each of them enabled.
 */
function sweepStale() {
  const dead = (name) => {
    const pid = Number(/^strait-bench-(\d+)$/.exec(name)?.[1]);
    return pid > 0 && pid !== process.pid && !fs.existsSync(`/proc/${pid}`);
  };
  let stale = false;
  for (const n of fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : []) {
    if (!dead(n)) continue;
    stale = true;
    try {
      sh('ip', ['netns', 'del', n]);
    } catch {
      // another sweep got it first
    }
  }
  const cg2 = sh('sh', ['-c', 'findmnt -n -t cgroup2 -o TARGET || true']).trim().split('\n')[0];
  for (const n of cg2 && fs.existsSync(cg2) ? fs.readdirSync(cg2) : []) {
    if (!dead(n)) continue;
    stale = true;
    try {
      // Only that run's own interception (enable --name bench-ic-<pid>), nothing else on the host.
      sh(process.execPath, [CLI, 'intercept', 'disable', '--name', `bench-ic-${n.slice('strait-bench-'.length)}`]);
    } catch {
      // it had none left
    }
    try {
      removeCgroup(path.join(cg2, n));
    } catch {
      // still in use: leave it
    }
  }
  if (stale) process.stderr.write('intercept bench: removed what a killed earlier run left behind\n');
}

class Stage {
  constructor(root) {
    this.root = root;
    try {
      this.setup(root);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  setup(root) {
    this.undo = [];
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-bench-ic-'));
    this.undo.push(() => fs.rmSync(this.dir, { recursive: true, force: true }));
    this.netns = null;
    this.cgroup = null;
    this.bpffsBefore = false;
    if (!root) return;
    sweepStale();
    const name = `strait-bench-${process.pid}`;
    sh('ip', ['netns', 'add', name]);
    this.undo.push(() => sh('ip', ['netns', 'del', name]));
    this.netns = `/run/netns/${name}`;
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    // A local non-loopback address for the upstream (on lo: no dummy/veth module needed).
    sh('ip', ['-n', name, 'addr', 'add', `${UPSTREAM_IP}/32`, 'dev', 'lo']);
    const cg2 = sh('findmnt', ['-n', '-t', 'cgroup2', '-o', 'TARGET']).trim().split('\n')[0];
    if (cg2) {
      this.cgroup = path.join(cg2, name);
      fs.mkdirSync(this.cgroup);
      this.undo.push(() => removeCgroup(this.cgroup));
    }
    this.bpffsBefore = sh('sh', ['-c', 'findmnt -n -t bpf /sys/fs/bpf || true']).trim() !== '';
  }

  /** argv running `args` inside the bench's netns and cgroup, on `cpu` when given. */
  argv(args, cpu) {
    const join = this.cgroup ? `echo $$ > ${this.cgroup}/cgroup.procs && ` : '';
    const pin = cpu === undefined ? '' : `taskset -c ${cpu} `;
    const script = `${join}exec ${pin}"$0" "$@"`;
    return this.netns ? ['nsenter', `--net=${this.netns}`, 'sh', '-c', script, ...args] : ['sh', '-c', script, ...args];
  }

  intercept(args) {
    const [cmd, ...rest] = this.netns ? ['nsenter', `--net=${this.netns}`, process.execPath, CLI, 'intercept', ...args] : [process.execPath, CLI, 'intercept', ...args];
    return JSON.parse(sh(cmd, rest));
  }

  close() {
    for (const f of this.undo.reverse()) {
      try {
        f();
      } catch (err) {
        process.stderr.write(`bench/intercept: cleanup: ${err.message}\n`);
      }
    }
    if (this.root && !this.bpffsBefore) sh('sh', ['-c', 'findmnt -n -t bpf /sys/fs/bpf >/dev/null && umount /sys/fs/bpf || true']);
  }
}

function removeCgroup(dir) {
  // A cgroup can only go once its exited members are gone (the kernel lags a little).
  for (let i = 0; i < 200; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if (err.code !== 'EBUSY') throw err;
      execFileSync('sleep', ['0.05']);
    }
  }
}

function firstLine(proc) {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    proc.stderr?.on('data', (d) => (err += d));
    proc.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl).trim());
    });
    proc.on('exit', (code) => reject(new Error(`exited (${code}) before printing: ${err.slice(-400)}`)));
  });
}

function strait(stage, upstreamAddr, upstreamPort) {
  const pipePath = path.join(stage.dir, 'strait.sock');
  const adminFile = path.join(stage.dir, 'admin.addr');
  const tcpProxy = (cluster) => [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: cluster, cluster } }] }];
  const config = {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        // Captured connections are served like the others (to the upstream at 127.0.0.1), so
        // every column crosses the same Strait-to-upstream hop.
        { name: 'outbound', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, use_original_dst: true, filter_chains: tcpProxy('upstream') },
        { name: 'direct', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: tcpProxy('upstream') },
        { name: 'pipe', address: { pipe: { path: pipePath } }, filter_chains: tcpProxy('upstream') },
      ],
      clusters: [
        {
          name: 'upstream',
          connect_timeout: '2s',
          load_assignment: { cluster_name: 'upstream', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: upstreamAddr, port_value: upstreamPort } } } }] }] },
        },
      ],
    },
  };
  const cfg = path.join(stage.dir, 'strait.json');
  fs.writeFileSync(cfg, JSON.stringify(config));
  const [cmd, ...rest] = stage.argv([process.execPath, CLI, '--config', cfg, '--log-level', 'error', '--admin-address-path', adminFile]);
  const proc = spawn(cmd, rest, { stdio: ['ignore', 'ignore', 'pipe'], ...(stage.root ? { gid: SIDECAR_GID } : {}) });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  return { proc, pipePath, adminFile, err: () => err };
}

async function listenerPorts(s) {
  for (let i = 0; i < 400; i++) {
    if (s.proc.exitCode !== null) throw new Error(`strait exited: ${s.err().slice(-600)}`);
    const admin = fs.existsSync(s.adminFile) ? fs.readFileSync(s.adminFile, 'utf8').trim() : '';
    if (admin) {
      // The admin address is in the bench's netns: ask from inside it.
      try {
        const ls = JSON.parse(s.get(`http://${admin}/listeners?format=json`));
        const port = (n) => ls.listener_statuses.find((x) => x.name === n)?.local_address?.socket_address?.port_value;
        if (port('outbound') && port('direct')) return { outbound: port('outbound'), direct: port('direct') };
      } catch {
        // not up yet
      }
    }
    await sleep(25);
  }
  throw new Error('strait did not start');
}

/** Sets the affinity of every thread of `pid` (and of its children: sh → node). */
function setAffinity(pid, cpus) {
  sh('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
}

/**
 * Runs the table. Resolves with { status, reason, how, seconds, rounds, rows }, where each row is
 * { kind, size, placement, cells: { <mode>: { rttMedianUs, rttP99Us } | { mbPerS } | { skipped } } }.
 */
/** The default columns: sockmap-onehop only on request (--modes), so the full table takes no longer. */
export const DEFAULT_MODES = MODES.filter((m) => m !== 'sockmap-onehop');

export async function runIntercept({ quick = false, seconds, rounds, modes = DEFAULT_MODES, kinds = ['rr', 'bulk'] } = {}) {
  seconds ??= quick ? 0.25 : 3;
  rounds ??= quick ? 1 : 3;
  const out = { status: 'ran', reason: null, how: INTERCEPT_HOW, seconds, rounds, kernel: os.release(), redirectedMessages: null, redirectedMessagesBoth: null, bulkSockets: null, switchedSockets: null, rows: [] };
  if (process.platform !== 'linux') return { ...out, status: 'skipped', reason: 'not Linux' };
  if (!have('cc')) return { ...out, status: 'skipped', reason: 'no C compiler (cc) for bpf/bench/pingpong.c' };
  let bin = path.join(REPO, 'build/bpf/pingpong');
  let tmpBin = null;
  try {
    try {
      fs.mkdirSync(path.dirname(bin), { recursive: true });
      fs.accessSync(path.dirname(bin), fs.constants.W_OK);
    } catch {
      // A read-only checkout (or another user's build/): build the helper in a temp dir.
      tmpBin = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-pingpong-'));
      bin = path.join(tmpBin, 'pingpong');
    }
    sh('cc', ['-O2', '-o', bin, path.join(REPO, 'bpf/bench/pingpong.c')]);
  } catch (err) {
    if (tmpBin) fs.rmSync(tmpBin, { recursive: true, force: true });
    return { ...out, status: 'skipped', reason: `cannot build bpf/bench/pingpong.c: ${String(err.stderr || err.message).trim().slice(-300)}` };
  }

  const why = kernelReason();
  const ncpu = os.cpus().length;
  const shapes = [
    { kind: 'rr', size: 64 },
    { kind: 'rr', size: 4096 },
    { kind: 'bulk', size: 4096 },
    ...(quick ? [] : [{ kind: 'bulk', size: 65536 }]),
  ].filter((s) => kinds.includes(s.kind));
  const placements = ncpu > 1 && have('taskset') ? ['pinned', 'unpinned'] : ['unpinned'];
  for (const s of shapes) for (const placement of placements) out.rows.push({ ...s, placement, cells: {} });

  let stage;
  try {
    stage = new Stage(why === null);
    if (tmpBin) stage.undo.push(() => fs.rmSync(tmpBin, { recursive: true, force: true }));
  } catch (err) {
    if (tmpBin) fs.rmSync(tmpBin, { recursive: true, force: true });
    return { ...out, status: 'failed', reason: `setting up the namespace: ${String(err.stderr || err.message).trim()}` };
  }
  const upHost = stage.root ? UPSTREAM_IP : '127.0.0.1';
  let up;
  let st;
  try {
    const [ucmd, ...urest] = stage.argv([bin, 'server', 'tcp', stage.root ? 'any' : '0']);
    up = spawn(ucmd, urest, { stdio: ['ignore', 'pipe', 'pipe'] });
    const upPort = Number(await firstLine(up));
    st = strait(stage, '127.0.0.1', upPort);
    st.get = (url) => sh(...(stage.netns ? ['nsenter', [`--net=${stage.netns}`, 'curl', '-sf', url]] : ['curl', ['-sf', url]]));
    if (!have('curl')) throw new Error('curl is not installed (reads the admin API inside the namespace)');
    const ports = await listenerPorts(st);
    // nsenter and `sh -c exec` both exec (no fork): the pids are the programs' own.
    const straitPid = st.proc.pid;
    const upPid = up.pid;

    const target = { sockmap: `${upHost}:${upPort}`, 'sockmap-onehop': `${upHost}:${upPort}`, 'sockmap-both': `${upHost}:${upPort}`, 'sockmap-bulk': `${upHost}:${upPort}`, 'sockmap-nodetect': `${upHost}:${upPort}`, iptables: `${upHost}:${upPort}`, tcp: `127.0.0.1:${ports.direct}`, unix: st.pipePath };
    const name = `bench-ic-${process.pid}`;
    for (const mode of MODES) {
      if (!modes.includes(mode)) continue;
      // A sockmap column's capture is switched off for each paired tcp run: with it on, Strait's
      // own connect to the upstream is redirected too (the default since b38ebd6), and the
      // reference would no longer be plain loopback TCP.
      const sockmap = mode.startsWith('sockmap');
      let skipped = null;
      let on = () => undefined;
      let off = () => undefined;
      try {
        if (mode !== 'tcp' && mode !== 'unix' && why) skipped = why;
        else if (sockmap) {
          if (!stage.cgroup) skipped = 'no cgroup v2 hierarchy';
          else {
            const extra = { 'sockmap-bulk': ['--bulk-ports', String(upPort)], 'sockmap-both': ['--app-ports', String(upPort)], 'sockmap-onehop': ['--sidecar-connects', 'tcp'], 'sockmap-nodetect': ['--bulk-detect-bytes', '0'] };
            const flags = extra[mode] ?? [];
            const stat = { sockmap: 'redirectedMessages', 'sockmap-both': 'redirectedMessagesBoth', 'sockmap-bulk': 'bulkSockets' }[mode];
            on = () => {
              const en = stage.intercept(['enable', '--mode', 'sockmap', '--name', name, '--cgroup', stage.cgroup, '--outbound-port', String(ports.outbound), '--exempt-gid', String(SIDECAR_GID), ...flags]);
              if (en.mode !== 'sockmap') throw new Error(`sockmap not enabled: ${JSON.stringify(en.skipped ?? en)}`);
            };
            // Counters live in the maps that disable removes: read them first and add them up.
            off = () => {
              const stats = stage.intercept(['status', '--name', name]).sockmap?.stats;
              const add = (k, v) => (out[k] = (out[k] ?? 0) + (v ?? 0));
              if (stat === 'redirectedMessages') {
                add('redirectedMessages', stats?.msgRedirected);
                add('switchedSockets', stats?.socketsSwitchedToTcp);
              } else if (stat === 'redirectedMessagesBoth') add('redirectedMessagesBoth', stats?.msgRedirected);
              else if (stat === 'bulkSockets') add('bulkSockets', stats?.socketsBulk);
              stage.intercept(['disable', '--name', name]);
            };
            on();
          }
        } else if (mode === 'iptables') {
          stage.intercept(['enable', '--mode', 'iptables', '--name', name, '--outbound-port', String(ports.outbound), '--exempt-gid', String(SIDECAR_GID)]);
          off = () => stage.intercept(['disable', '--name', name]);
        }
      } catch (err) {
        skipped = `${mode} could not be enabled: ${String(err.stderr || err.message).trim().split('\n')[0]}`;
      }
      let enabled = !skipped && mode !== 'tcp' && mode !== 'unix';
      try {
        for (const row of out.rows) {
          if (skipped) {
            row.cells[mode] = { skipped };
            continue;
          }
          const cpu = row.placement === 'pinned' ? 0 : undefined;
          const all = `0-${ncpu - 1}`;
          setAffinity(straitPid, cpu === undefined ? all : '0');
          setAffinity(upPid, cpu === undefined ? all : '0');
          const once = (m) => {
            const [cmd, ...rest] = stage.argv([bin, row.kind, m === 'unix' ? 'unix' : 'tcp', target[m], String(row.size), String(seconds)], cpu);
            const res = sh(cmd, rest, { timeout: (seconds + 20) * 1000 }).trim().split(' ');
            return row.kind === 'rr' ? { rttMedianUs: Number(res[1]), rttP99Us: Number(res[2]) } : { mbPerS: Number(res[1]) };
          };
          const summary = (runs) =>
            row.kind === 'rr' ? { rttMedianUs: median(runs.map((x) => x.rttMedianUs)), rttP99Us: median(runs.map((x) => x.rttP99Us)) } : { mbPerS: median(runs.map((x) => x.mbPerS)) };
          // Each run is paired with a plain tcp run right after it: on a shared machine the
          // load drifts between the columns, which are measured one after another, but hardly
          // within a pair. The tcp listener is never captured, and a sockmap column's capture
          // is off during its reference (see above).
          const runs = [];
          const refs = [];
          for (let r = 0; r < rounds; r++) {
            if (sockmap && !enabled) {
              on();
              enabled = true;
            }
            runs.push(once(mode));
            if (mode === 'tcp') continue;
            if (sockmap) {
              enabled = false;
              off();
            }
            refs.push(once('tcp'));
          }
          // The ratio is the median of the pairs' own ratios: a median of runs over a median of
          // references would mix runs from different moments (unpinned, the scheduler's
          // placement flips between runs and moves both members of a pair together).
          const pairRatio = (x, y) => (row.kind === 'rr' ? x.rttMedianUs / y.rttMedianUs : x.mbPerS / y.mbPerS);
          row.cells[mode] = { ...summary(runs), ...(refs.length ? { tcpRef: summary(refs), pairRatio: median(runs.map((x, i) => pairRatio(x, refs[i]))) } : {}) };
        }
      } catch (err) {
        for (const row of out.rows) row.cells[mode] ??= { skipped: `failed: ${String(err.stderr || err.message).trim().slice(-300)}` };
      } finally {
        if (enabled) off();
      }
    }
  } catch (err) {
    return { ...out, status: 'failed', reason: String(err.stderr || err.message).trim().slice(-600) };
  } finally {
    for (const p of [st?.proc, up]) {
      if (p && p.exitCode === null) {
        const exited = new Promise((r) => p.once('exit', r));
        // The shell chain exec'd into the program, so its pid is the program's.
        p.kill('SIGKILL');
        await exited;
      }
    }
    stage.close();
  }
  return out;
}

const f1 = (x) => x.toFixed(1);

export function interceptMarkdown(r) {
  const cell = (c, kind) => (!c ? 'n/a' : c.skipped ? `skipped: ${c.skipped}` : kind === 'rr' ? `${f1(c.rttMedianUs)} (${f1(c.rttP99Us)})` : `${c.mbPerS.toFixed(0)}`);
  const ratio = (row, m) => {
    const a = row.cells[m];
    const b = a?.tcpRef ?? row.cells.tcp;
    if (!a || !b || a.skipped || b.skipped) return '–';
    if (a.pairRatio !== undefined) return a.pairRatio.toFixed(2);
    return (row.kind === 'rr' ? a.rttMedianUs / b.rttMedianUs : a.mbPerS / b.mbPerS).toFixed(2);
  };
  const vs = ['sockmap', 'sockmap-onehop', 'sockmap-both', 'sockmap-bulk', 'sockmap-nodetect', 'iptables', 'unix'].filter((m) => r.rows.some((row) => row.cells[m]));
  const cols = MODES.filter((m) => r.rows.some((row) => row.cells[m]));
  const sep = vs.length ? ' | ' : '';
  let md = `| workload | size | placement | ${cols.join(' | ')}${sep}${vs.map((m) => `${m} / tcp`).join(' | ')} |\n|---|---|---|${cols.map(() => '---|').join('')}${vs.map(() => '---|').join('')}\n`;
  for (const row of r.rows) {
    const what = row.kind === 'rr' ? 'round trip µs (p99)' : 'bulk MB/s';
    md += `| ${what} | ${row.size} B | ${row.placement} | ${cols.map((m) => cell(row.cells[m], row.kind)).join(' | ')}${sep}${vs.map((m) => ratio(row, m)).join(' | ')} |\n`;
  }
  if (r.redirectedMessages !== null) md += `\nMessages redirected by the sk_msg program during the sockmap column: ${r.redirectedMessages}${r.redirectedMessagesBoth != null ? `; during sockmap-both: ${r.redirectedMessagesBoth} (both hops)` : ''}.\n`;
  if (r.switchedSockets != null) md += `Sending sockets the bulk detector switched to TCP during the sockmap column: ${r.switchedSockets}.\n`;
  if (r.bulkSockets != null) md += `Sockets left on TCP as bulk during the sockmap-bulk column: ${r.bulkSockets} (two per connection).\n`;
  return md;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (n) => {
    const i = args.indexOf(`--${n}`);
    return i >= 0 ? Number(args[i + 1]) : undefined;
  };
  const list = (n) => {
    const i = args.indexOf(`--${n}`);
    return i >= 0 ? args[i + 1].split(',') : undefined;
  };
  const r = await runIntercept({ quick: args.includes('--quick'), seconds: opt('seconds'), rounds: opt('rounds'), modes: list('modes'), kinds: list('kinds') });
  process.stdout.write(args.includes('--json') ? `${JSON.stringify(r)}\n` : `${r.status}${r.reason ? `: ${r.reason}` : ''}\n\n${interceptMarkdown(r)}`);
  process.exit(0);
}
