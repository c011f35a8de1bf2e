// Shared set-up for the kernel interception tests: a network namespace and a cgroup of the
// test's own, processes started inside them, and a snapshot of the host's BPF, iptables,
// bpffs, cgroup and netns state to prove the tests leave nothing behind.
import { execFile, execFileSync, spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { cgroup2Mount, detectHost, isBpffs } from '../../src/intercept/detect.js';
import { CLI, REPO } from '../helpers/strait.js';

const execFileP = promisify(execFile);
export const PEER = path.join(REPO, 'test/bpf/fixtures/peer.cjs');

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why these tests cannot run here, or null. Printed loudly by the caller when not null. */
export async function kernelSkipReason(need: { sockmap?: boolean; iptables?: boolean }): Promise<string | null> {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'needs root (CI runs these as root)';
  for (const tool of ['ip', 'nsenter', 'bpftool', 'iptables-save']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (scripts/setup.sh)`;
    }
  }
  const host = await detectHost({ probe: !!need.sockmap });
  if (need.sockmap && !host.sockmap.available) return `sockmap unavailable: ${host.sockmap.reason}`;
  if (need.iptables && !host.iptables.available) return `iptables unavailable: ${host.iptables.reason}`;
  return null;
}

/** A network namespace of this test, with lo up. */
export class Netns {
  readonly name: string;
  constructor(tag: string) {
    this.name = `strait-${tag}-${process.pid}`;
    sh('ip', ['netns', 'add', this.name]);
    sh('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
  }
  get path(): string {
    return `/run/netns/${this.name}`;
  }
  /** Runs a command inside (nsenter --net keeps our /sys, unlike `ip netns exec`). */
  run(cmd: string, args: string[]): string {
    return sh('nsenter', [`--net=${this.path}`, cmd, ...args]);
  }
  remove(): void {
    sh('ip', ['netns', 'del', this.name]);
  }
}

/** A child cgroup v2 directory of this test. */
export class Cgroup {
  readonly path: string;
  constructor(tag: string) {
    this.path = path.join(cgroup2Mount()!, `strait-${tag}-${process.pid}`);
    fs.mkdirSync(this.path);
  }
  /** Removing a cgroup needs it empty: wait for exited members to be gone. */
  async remove(): Promise<void> {
    for (let i = 0; ; i++) {
      try {
        fs.rmdirSync(this.path);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || i > 100) throw err;
        await sleep(50);
      }
    }
  }
}

/** A peer.cjs process, optionally inside a netns and/or a cgroup (joined before node starts). */
export class Peer {
  readonly proc: ChildProcessWithoutNullStreams;
  private buf = '';
  readonly first: Promise<Record<string, any>>;
  stderr = '';

  constructor(args: string[], where: { netns?: Netns; cgroup?: Cgroup; gid?: number } = {}) {
    // The shell moves itself into the cgroup, then execs node: every socket node creates
    // belongs to the cgroup from the start.
    const join = where.cgroup ? `echo $$ > ${where.cgroup.path}/cgroup.procs && ` : '';
    const script = `${join}exec "${process.execPath}" "${PEER}" ${args.join(' ')}`;
    const argv = where.netns ? [`--net=${where.netns.path}`, 'sh', '-c', script] : ['sh', '-c', script];
    this.proc = spawn(where.netns ? 'nsenter' : argv.shift()!, argv, where.gid === undefined ? {} : { gid: where.gid });
    this.proc.stderr.on('data', (d) => (this.stderr += d));
    this.first = new Promise((resolve, reject) => {
      this.proc.stdout.on('data', (d) => {
        this.buf += d;
        const nl = this.buf.indexOf('\n');
        if (nl >= 0) resolve(JSON.parse(this.buf.slice(0, nl)));
      });
      this.proc.on('exit', (code) => reject(new Error(`peer ${args.join(' ')} exited (${code}) early: ${this.stderr}${this.buf}`)));
    });
  }

  /** Lets the peer close its sockets and exit. */
  async end(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.stdin.end();
    await exited;
  }
}

export interface CliResult {
  code: number | null;
  json: any;
  stderr: string;
}

/** `strait intercept ARGS`, optionally inside a netns, with a reduced capability bounding set, and/or extra env. */
export async function intercept(args: string[], where: { netns?: Netns; dropCaps?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  let argv = [process.execPath, CLI, 'intercept', ...args];
  if (where.dropCaps) argv = ['setpriv', `--bounding-set=${where.dropCaps}`, ...argv];
  if (where.netns) argv = ['nsenter', `--net=${where.netns.path}`, ...argv];
  try {
    const env = where.env ? { ...process.env, ...where.env } : process.env;
    const { stdout, stderr } = await execFileP(argv[0]!, argv.slice(1), { maxBuffer: 16 * 1024 * 1024, env });
    return { code: 0, json: JSON.parse(stdout), stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, json: null, stderr: String(e.stderr ?? err) };
  }
}

export interface HostState {
  progs: string[];
  maps: string[];
  links: string[];
  bpffs: boolean;
  pins: string[];
  cgroups: string[];
  iptables: string;
  ip6tables: string;
  netns: string[];
  /** `strait intercept` state records in the default directory. */
  records: string[];
}

function listRecursive(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(path.relative(base, p));
    if (e.isDirectory()) out.push(...listRecursive(p, base));
  }
  return out.sort();
}

const DEFAULT_STATE_DIR = '/run/strait-intercept';

const ids = (json: string) => (JSON.parse(json || '[]') as Array<{ id: number; type?: string; name?: string }>).map((x) => `${x.id}:${x.type ?? ''}:${x.name ?? ''}`).sort();
// Timestamps and packet counters change by themselves; the rules are what must not.
const tables = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n');

export function hostState(): HostState {
  return {
    progs: ids(sh('bpftool', ['-j', 'prog', 'list'])),
    maps: ids(sh('bpftool', ['-j', 'map', 'list'])),
    links: ids(sh('bpftool', ['-j', 'link', 'list'])),
    bpffs: isBpffs('/sys/fs/bpf'),
    pins: isBpffs('/sys/fs/bpf') ? listRecursive('/sys/fs/bpf') : [],
    cgroups: fs.readdirSync(cgroup2Mount()!, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort(),
    iptables: tables(sh('iptables-save', [])),
    ip6tables: tables(sh('ip6tables-save', [])),
    netns: sh('ip', ['netns', 'list']).split('\n').filter(Boolean).sort(),
    records: fs.existsSync(DEFAULT_STATE_DIR) ? ['(dir)', ...listRecursive(DEFAULT_STATE_DIR)] : [],
  };
}

/**
 * A client outside any cgroup in `ns`: 5 echoed rounds of 200 bytes to 127.0.0.1:`port`, all
 * 1000 bytes back or it throws; `inspect` runs while its connection is still open.
 */
export async function echoRounds(ns: Netns, port: number, inspect?: () => Promise<void>): Promise<void> {
  const client = new Peer(['client', '127.0.0.1', String(port), '5'], { netns: ns });
  try {
    const r = await client.first;
    if (r.got !== 1000) throw new Error(`echo client got ${r.got} of 1000 bytes back`);
    await inspect?.();
  } finally {
    await client.end();
  }
}

/** Programs and maps that Strait's objects create (skeleton .rodata maps are named after them). */
const OURS = /:(strait_[a-z0-9_]+|sock_hash|stats|orig_by_cookie|orig_by_tuple|bulk_state|sidecar_conn|sidecar_peer|strait_[src]\.rodata)$/;

/**
 * The state to compare against at the end. Detection loads Strait's programs to probe the
 * kernel, and the kernel frees them asynchronously: wait (bounded) until they are gone, so a
 * probe's leftovers are not mistaken for part of the host.
 */
export async function baselineHostState(): Promise<HostState> {
  let now = hostState();
  for (let i = 0; i < 100 && [...now.progs, ...now.maps].some((x) => OURS.test(x)); i++) {
    await sleep(100);
    now = hostState();
  }
  return now;
}

/**
 * The host state once BPF objects released by a test are gone (the kernel frees programs and
 * maps asynchronously after their last reference drops, so wait for that, bounded).
 */
export async function settledHostState(expected: HostState): Promise<HostState> {
  let now = hostState();
  for (let i = 0; i < 100 && (now.progs.join() !== expected.progs.join() || now.maps.join() !== expected.maps.join()); i++) {
    await sleep(100);
    now = hostState();
  }
  return now;
}

/** Unmounts the bpffs the tests caused to be mounted (the CLI mounts one when none is there). */
export function restoreBpffs(before: HostState): void {
  if (!before.bpffs && isBpffs('/sys/fs/bpf')) sh('umount', ['/sys/fs/bpf']);
}

/** Packets with a TCP payload of at least 48 bytes sent on lo inside `ns` since the counter rule went in. */
export function payloadPackets(ns: Netns): number {
  const line = ns.run('iptables-save', ['-c', '-t', 'filter']).split('\n').find((l) => l.includes('strait-test-payload'));
  const m = line && /^\[(\d+):\d+\]/.exec(line);
  if (!m) throw new Error('payload counter rule missing');
  return Number(m[1]);
}

/**
 * A counting rule (ACCEPT, so it changes nothing) on payload-carrying TCP packets over lo:
 * 100+ byte IP packets are data segments (handshake and pure ACKs are 52-60 bytes here).
 */
export function addPayloadCounter(ns: Netns): void {
  ns.run('iptables', ['-w', '5', '-A', 'OUTPUT', '-o', 'lo', '-p', 'tcp', '-m', 'length', '--length', '100:65535', '-m', 'comment', '--comment', 'strait-test-payload', '-j', 'ACCEPT']);
}

export function zeroCounters(ns: Netns): void {
  ns.run('iptables', ['-w', '5', '-Z', 'OUTPUT']);
}

/** GET on a Strait admin API listening on a unix socket (the tests' admin address). */
export function adminGet(sock: string, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: sock, path: p }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** Strait's identity in these tests: its upstream connects carry this gid and are exempt from capture. */
export const SIDECAR_GID = 1337;

/**
 * A Strait sidecar in `ns` and `cg` under SIDECAR_GID: an outbound listener on `listen`:0 with
 * use_original_dst → an ORIGINAL_DST cluster, admin on a unix socket in `dir`. Strait runs in the
 * cgroup like a sidecar in its pod: its accepted sockets join the sockmap and its
 * SO_ORIGINAL_DST calls reach the getsockopt program; its gid exempts its own connects.
 */
export async function startSidecar(o: { ns: Netns; cg: Cgroup; engine: string; listen: string; dir: string; env: Record<string, string> }): Promise<{ proc: ChildProcess; adminSock: string; port: number }> {
  const tcpProxy = { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'out', cluster: 'passthrough' };
  const listeners = [
    {
      name: 'outbound',
      address: { socket_address: { address: o.listen, port_value: 0 } },
      use_original_dst: true,
      filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: tcpProxy }] }],
    },
  ];
  const clusters = [{ name: 'passthrough', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '2s' }];
  const s = await startStrait({ ...o, listeners, clusters });
  return { proc: s.proc, adminSock: s.adminSock, port: s.ports.outbound! };
}

/**
 * Strait in `ns` and `cg` under SIDECAR_GID with these listeners (port 0) and clusters, admin on a
 * unix socket in `dir`; resolves once every listener is up, with their ports by name.
 */
export async function startStrait(o: { ns: Netns; cg: Cgroup; engine: string; dir: string; env?: Record<string, string>; listeners: Array<{ name: string }>; clusters: unknown[] }): Promise<{ proc: ChildProcess; adminSock: string; ports: Record<string, number> }> {
  const adminSock = path.join(o.dir, 'admin.sock');
  const config = { admin: { address: { pipe: { path: adminSock } } }, static_resources: { listeners: o.listeners, clusters: o.clusters } };
  const cfgPath = path.join(o.dir, 'strait.json');
  fs.writeFileSync(cfgPath, JSON.stringify(config));
  const script = `echo $$ > ${o.cg.path}/cgroup.procs && exec "${process.execPath}" "${CLI}" --io-engine ${o.engine} --config "${cfgPath}"`;
  const proc = spawn('nsenter', [`--net=${o.ns.path}`, 'sh', '-c', script], { gid: SIDECAR_GID, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...o.env } });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const ports: Record<string, number> = {};
  for (let i = 0; i < 400 && Object.keys(ports).length < o.listeners.length; i++) {
    await sleep(25);
    if (proc.exitCode !== null) throw new Error(`strait exited: ${err}`);
    const body = fs.existsSync(adminSock) ? await adminGet(adminSock, '/listeners?format=json').catch(() => '') : '';
    for (const l of body ? (JSON.parse(body).listener_statuses as any[]) : []) ports[l.name] = l.local_address.socket_address.port_value;
  }
  if (Object.keys(ports).length < o.listeners.length) throw new Error(`strait listeners not up: ${err}`);
  return { proc, adminSock, ports };
}

/** SIGKILL and wait for the exit (no-op when already gone). */
export async function stopProcess(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise((res) => proc.once('exit', res));
  proc.kill('SIGKILL');
  await exited;
}

/**
 * Two namespaces joined by a veth pair (`<dev>0` in `ns`, `<dev>1` in `up`): the upstream is
 * reachable from `ns` only through it. IPv6 addresses are optional.
 */
export function vethPair(ns: Netns, up: Netns, a: { dev: string; app: string; upstream: string; app6?: string; upstream6?: string }): void {
  sh('ip', ['-n', ns.name, 'link', 'add', `${a.dev}0`, 'type', 'veth', 'peer', 'name', `${a.dev}1`, 'netns', up.name]);
  sh('ip', ['-n', ns.name, 'addr', 'add', `${a.app}/24`, 'dev', `${a.dev}0`]);
  sh('ip', ['-n', up.name, 'addr', 'add', `${a.upstream}/24`, 'dev', `${a.dev}1`]);
  if (a.app6 && a.upstream6) {
    // nodad: usable at once, no duplicate address detection to wait for.
    sh('ip', ['-n', ns.name, 'addr', 'add', `${a.app6}/64`, 'dev', `${a.dev}0`, 'nodad']);
    sh('ip', ['-n', up.name, 'addr', 'add', `${a.upstream6}/64`, 'dev', `${a.dev}1`, 'nodad']);
  }
  sh('ip', ['-n', ns.name, 'link', 'set', `${a.dev}0`, 'up']);
  sh('ip', ['-n', up.name, 'link', 'set', `${a.dev}1`, 'up']);
}
