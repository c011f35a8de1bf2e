// The sk_msg bulk detector for real (bpf/redirect.bpf.c): an app in a cgroup of this test
// reaches an upstream behind a veth pair through a real Strait, captured by connect4, with the
// app-to-Strait hop in the sockmap. A stream of small writes with no reply is switched to plain
// TCP mid-stream, for good, and must arrive intact (SHA-256 at both ends); ping-pong traffic
// beside it stays redirected. Needs root; anywhere else the cases are skipped with the reason.
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, REPO, tmpDir } from '../helpers/strait.js';
import {
  addPayloadCounter,
  baselineHostState,
  Cgroup,
  intercept,
  kernelSkipReason,
  Netns,
  payloadPackets,
  restoreBpffs,
  settledHostState,
  SIDECAR_GID,
  startSidecar,
  stopProcess,
  vethPair,
  zeroCounters,
  type HostState,
} from './helpers.js';

const skip = await kernelSkipReason({ sockmap: true, iptables: true });
if (skip) console.warn(`test/bpf/bulk_detect: SKIPPED: ${skip}`);

const FIXTURE = path.join(REPO, 'test/bpf/fixtures/bulk.cjs');
const APP_IP = '10.203.0.1';
const UPSTREAM_IP = '10.203.0.2';
const MiB = 1 << 20;
const STREAM = 64 * MiB;
const WRITE = 4096;
// The default thresholds ask for 1 MiB within 10 ms (100 MB/s); a Node sender on a shared
// CPU may not get there, so the tests give the run 2 s: the mechanism is what is tested here.
const DETECT = ['--bulk-detect-bytes', String(MiB), '--bulk-detect-window-ms', '2000', '--bulk-detect-max-msg', '16384'];

/** A bulk.cjs process in a netns (and cgroup); its JSON lines are read one at a time. */
class Proc {
  readonly proc: ChildProcessWithoutNullStreams;
  private buf = '';
  private lines: any[] = [];
  private waiters: Array<(v: any) => void> = [];
  private stderr = '';

  constructor(args: string[], where: { netns: Netns; cgroup?: Cgroup }) {
    const join = where.cgroup ? `echo $$ > ${where.cgroup.path}/cgroup.procs && ` : '';
    const script = `${join}exec "${process.execPath}" "${FIXTURE}" ${args.join(' ')}`;
    this.proc = spawn('nsenter', [`--net=${where.netns.path}`, 'sh', '-c', script]);
    this.proc.stderr.on('data', (d) => (this.stderr += d));
    this.proc.stdout.on('data', (d) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const v = JSON.parse(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(v);
        else this.lines.push(v);
      }
    });
  }

  /** The next JSON line; rejects if the process exits first. */
  line(): Promise<any> {
    if (this.lines.length) return Promise.resolve(this.lines.shift());
    return new Promise((resolve, reject) => {
      this.waiters.push(resolve);
      this.proc.once('exit', (code) => reject(new Error(`bulk.cjs exited (${code}): ${this.stderr}`)));
    });
  }

  send(text: string): void {
    this.proc.stdin.write(text);
  }

  async end(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.stdin.end();
    await exited;
  }
}

describe('bulk detection flags', () => {
  it('rejects a bad value naming the flag, before touching the kernel', async () => {
    for (const [flag, value] of [
      ['--bulk-detect-bytes', 'lots'],
      ['--bulk-detect-window-ms', '-1'],
      ['--bulk-detect-max-msg', '1.5'],
    ]) {
      const r = await intercept(['enable', '--mode', 'sockmap', '--name', 'never-enabled', `${flag}=${value}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${flag} needs an integer`);
    }
  });
});

describe.skipIf(!!skip)(skip ? `bulk detection (skipped: ${skip})` : 'bulk detection: streams of small writes leave sk_msg for TCP, for good', () => {
  const NAME = `test-bulkdetect-${process.pid}`;
  let before: HostState;
  let ns: Netns;
  let up: Netns;
  let cg: Cgroup;
  let dir: string;
  let env: Record<string, string>;
  let strait: ChildProcess | undefined;
  let outboundPort: number;
  let echo: Proc;
  let sink: Proc;
  let sinkPort: number;
  let greeter: Proc;
  let greeterPort: number;
  let replier: Proc;
  let replierPort: number;
  let source: Proc;
  let sourcePort: number;
  let echoPort: number;

  const status = async () => {
    const r = await intercept(['status', '--name', NAME], { env });
    expect(r.code, r.stderr).toBe(0);
    return r.json.sockmap;
  };
  const enable = async (extra: string[]) => {
    const r = await intercept(
      ['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--outbound-port', String(outboundPort), '--exempt-gid', String(SIDECAR_GID), ...extra],
      { netns: ns, env },
    );
    expect(r.code, r.stderr).toBe(0);
    return r.json;
  };
  /** The app uploads STREAM bytes in `write`-byte writes to `to` (the sink) through Strait; both reports. */
  const upload = async (write = WRITE, to: { proc: Proc; port: number } = { proc: sink, port: sinkPort }, extra: string[] = []) => {
    const app = new Proc(['send', UPSTREAM_IP, String(to.port), String(STREAM), String(write), ...extra], { netns: ns, cgroup: cg });
    try {
      const [sent, got] = await Promise.all([app.line(), to.proc.line()]);
      return { sent, got };
    } finally {
      await app.end();
    }
  };

  beforeAll(async () => {
    before = await baselineHostState();
    ns = new Netns('bulkdet');
    up = new Netns('bulkdetup');
    vethPair(ns, up, { dev: 'bd', app: APP_IP, upstream: UPSTREAM_IP });
    cg = new Cgroup('bulkdet');
    addPayloadCounter(ns);
    sink = new Proc(['sink', UPSTREAM_IP], { netns: up });
    greeter = new Proc(['sink', UPSTREAM_IP, 'greet'], { netns: up });
    replier = new Proc(['sink', UPSTREAM_IP, 'reply'], { netns: up });
    source = new Proc(['source', UPSTREAM_IP, String(STREAM), String(WRITE)], { netns: up });
    echo = new Proc(['echo', UPSTREAM_IP], { netns: up });
    sinkPort = (await sink.line()).port;
    greeterPort = (await greeter.line()).port;
    replierPort = (await replier.line()).port;
    sourcePort = (await source.line()).port;
    echoPort = (await echo.line()).port;
    dir = tmpDir('strait-bulkdet-');
    env = { STRAIT_INTERCEPT_STATE_DIR: path.join(dir, 'state') };
    ({ proc: strait, port: outboundPort } = await startSidecar({ ns, cg, engine: ENGINES[0]!, listen: '127.0.0.1', dir, env }));
    const r = await enable(DETECT);
    expect(r.details.bulkDetect).toEqual({ bytes: MiB, windowMs: 2000, maxMsg: 16384 });
  });

  afterAll(async () => {
    const r = await intercept(['disable', '--name', NAME], { netns: ns, env });
    await stopProcess(strait);
    for (const p of [echo, sink, greeter, replier, source]) await p?.end();
    await cg?.remove();
    ns?.remove();
    up?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    restoreBpffs(before);
    expect(r.code, r.stderr).toBe(0);
    expect(await settledHostState(before)).toEqual(before);
  });

  it('an upload of 64 MiB in 4 KiB writes is redirected, then switched to TCP, and arrives intact', async () => {
    const s0 = (await status()).stats;
    zeroCounters(ns);
    const { sent, got } = await upload();
    expect(got.bytes).toBe(STREAM);
    expect(got.sha256).toBe(sent.sha256);
    const s = (await status()).stats;
    // One sending socket (the app's; Strait sends nothing back on an upload) switched once.
    expect(s.socketsSwitchedToTcp - s0.socketsSwitchedToTcp).toBe(1);
    // Before the switch about 1 MiB went by redirect, in messages of at most 4 KiB (the message
    // that completes the run is the first to go through TCP) ...
    expect(s.msgRedirected - s0.msgRedirected).toBeGreaterThanOrEqual(MiB / WRITE - 1);
    // ... and after it the rest went through TCP over lo: the switching message through the
    // verdict, the others once sockops took the socket out of the map (Strait never sent to it).
    expect(s.msgSwitchedToTcp - s0.msgSwitchedToTcp).toBeGreaterThan(0);
    expect(s.socketsUnmapped - s0.socketsUnmapped).toBe(1);
    expect(payloadPackets(ns)).toBeGreaterThan(0);
    expect(s.msgPassed - s0.msgPassed).toBe(0);
  });

  it('a ping-pong connection beside a bulk stream keeps being redirected; only the bulk socket switches', async () => {
    const pp = new Proc(['pingpong', UPSTREAM_IP, String(echoPort), String(WRITE)], { netns: ns, cgroup: cg });
    try {
      await pp.line(); // connected
      const s0 = (await status()).stats;
      // 2000 round trips of 4 KiB (8 MiB each way) while 64 MiB stream beside them.
      pp.send('2000\n');
      const [rounds, { sent, got }] = await Promise.all([pp.line(), upload()]);
      expect(rounds.rounds).toBe(2000);
      expect(got.sha256).toBe(sent.sha256);
      const s1 = (await status()).stats;
      expect(s1.socketsSwitchedToTcp - s0.socketsSwitchedToTcp).toBe(1);
      // After the stream: the same ping-pong connection, every message redirected, none on lo.
      zeroCounters(ns);
      pp.send('500\n');
      expect((await pp.line()).rounds).toBe(2500);
      const s2 = (await status()).stats;
      expect(s2.msgRedirected - s1.msgRedirected).toBeGreaterThanOrEqual(1000);
      expect(s2.socketsSwitchedToTcp).toBe(s1.socketsSwitchedToTcp);
      expect(s2.msgSwitchedToTcp).toBe(s1.msgSwitchedToTcp);
      expect(s2.socketsUnmapped).toBe(s1.socketsUnmapped);
      expect(payloadPackets(ns)).toBe(0);
    } finally {
      await pp.end();
    }
  });

  it('a stream after the peer has spoken is switched but kept in the map (its ingress may hold data)', async () => {
    const s0 = (await status()).stats;
    const { sent, got } = await upload(WRITE, { proc: greeter, port: greeterPort }, ['greet']);
    expect(got.bytes).toBe(STREAM);
    expect(got.sha256).toBe(sent.sha256);
    const s = (await status()).stats;
    expect(s.socketsSwitchedToTcp - s0.socketsSwitchedToTcp).toBe(1);
    // Strait sent the greeting through the verdict, so the app's socket stays in the map and
    // every later message goes through the verdict, to TCP: at least the 63 MiB after the switch.
    expect(s.socketsUnmapped - s0.socketsUnmapped).toBe(0);
    expect(s.msgSwitchedToTcp - s0.msgSwitchedToTcp).toBeGreaterThanOrEqual((STREAM - MiB) / WRITE);
  });

  it('a reply after the switch reaches the unmapped socket through TCP: the replying end switches too', async () => {
    const s0 = (await status()).stats;
    const { sent, got } = await upload(WRITE, { proc: replier, port: replierPort });
    expect(got.sha256).toBe(sent.sha256);
    // The upstream's answer crossed Strait after the app's socket had left the map.
    expect(sent.reply).toBe(got.sha256);
    const s = (await status()).stats;
    expect(s.socketsUnmapped - s0.socketsUnmapped).toBe(1);
    // The app's socket, and Strait's, whose first message came after the app's switch: it must
    // not be redirected to a socket that may be leaving the map, so it went to TCP for good.
    expect(s.socketsSwitchedToTcp - s0.socketsSwitchedToTcp).toBe(2);
  });

  it('an upload in 64 KiB writes stays redirected: large messages gain under sk_msg', async () => {
    const s0 = (await status()).stats;
    zeroCounters(ns);
    const { sent, got } = await upload(64 * 1024);
    expect(got.sha256).toBe(sent.sha256);
    const s = (await status()).stats;
    expect(s.socketsSwitchedToTcp - s0.socketsSwitchedToTcp).toBe(0);
    expect(s.msgRedirected - s0.msgRedirected).toBeGreaterThanOrEqual(STREAM / (64 * 1024));
    expect(payloadPackets(ns)).toBe(0);
  });

  it('a download of 64 MiB (upstream → Strait → app) switches Strait\'s sending socket and arrives intact', async () => {
    // Strait forwards what each read returned (up to 64 KiB), so the size of its messages
    // depends on how much arrived meanwhile; without the average limit the switch is certain.
    expect((await intercept(['disable', '--name', NAME], { netns: ns, env })).code).toBe(0);
    await enable([...DETECT.slice(0, 4), '--bulk-detect-max-msg', String(MiB)]);
    const s0 = (await status()).stats;
    zeroCounters(ns);
    const app = new Proc(['recv', UPSTREAM_IP, String(sourcePort)], { netns: ns, cgroup: cg });
    try {
      const [got, sent] = await Promise.all([app.line(), source.line()]);
      expect(got.bytes).toBe(STREAM);
      expect(got.sha256).toBe(sent.sha256);
    } finally {
      await app.end();
    }
    const s = (await status()).stats;
    expect(s.socketsSwitchedToTcp - s0.socketsSwitchedToTcp).toBe(1);
    expect(s.socketsUnmapped - s0.socketsUnmapped).toBe(1);
    expect(s.msgRedirected - s0.msgRedirected).toBeGreaterThan(0);
    expect(s.msgSwitchedToTcp - s0.msgSwitchedToTcp).toBeGreaterThan(0);
    expect(payloadPackets(ns)).toBeGreaterThan(0);
  });

  it('with detection off (--bulk-detect-bytes 0) the same upload is never switched', async () => {
    expect((await intercept(['disable', '--name', NAME], { netns: ns, env })).code).toBe(0);
    const r = await enable(['--bulk-detect-bytes', '0']);
    expect(r.details.bulkDetect).toBeNull();
    const s0 = (await status()).stats;
    zeroCounters(ns);
    const { sent, got } = await upload();
    expect(got.sha256).toBe(sent.sha256);
    const s = (await status()).stats;
    expect(s.socketsSwitchedToTcp - s0.socketsSwitchedToTcp).toBe(0);
    expect(s.msgSwitchedToTcp - s0.msgSwitchedToTcp).toBe(0);
    // Every write was redirected: 64 MiB in messages of at most 4 KiB, and no payload on lo.
    expect(s.msgRedirected - s0.msgRedirected).toBeGreaterThanOrEqual(STREAM / WRITE);
    expect(payloadPackets(ns)).toBe(0);
  });

  it('enable without the flags turns detection on with the defaults', async () => {
    expect((await intercept(['disable', '--name', NAME], { netns: ns, env })).code).toBe(0);
    const r = await enable([]);
    expect(r.details.bulkDetect).toEqual({ bytes: MiB, windowMs: 10, maxMsg: 16384 });
  });
});
