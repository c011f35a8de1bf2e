// Transparent capture without iptables, for real: `--mode sockmap --outbound-port P` attaches
// connect4/6 + getsockopt (bpf/capture.bpf.c) next to the sockmap accelerator on a cgroup of
// this test. An app in that cgroup connects to an address that only exists behind a veth pair
// in another network namespace; the connection lands on a real Strait listener
// (use_original_dst + ORIGINAL_DST cluster), which reaches the address the app asked for.
// Needs root; anywhere else the cases are skipped with the reason in their name.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PIN_ROOT } from '../../src/intercept/sockmap.js';
import { ENGINES, tmpDir } from '../helpers/strait.js';
import {
  adminGet,
  addPayloadCounter,
  baselineHostState,
  Cgroup,
  intercept,
  kernelSkipReason,
  Netns,
  payloadPackets,
  Peer,
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
if (skip) console.warn(`test/bpf/capture: SKIPPED: ${skip}`);

const APP_IP = '10.201.0.1';
const UPSTREAM_IP = '10.201.0.2';
const APP_IP6 = 'fd00:201::1';
const UPSTREAM_IP6 = 'fd00:201::2';
const VETH = { dev: 'cap', app: APP_IP, upstream: UPSTREAM_IP };
const VETH6 = { ...VETH, app6: APP_IP6, upstream6: UPSTREAM_IP6 };

async function stat(sock: string, name: string): Promise<number> {
  const line = (await adminGet(sock, '/stats')).split('\n').find((l) => l.startsWith(`${name}: `));
  if (line === undefined) throw new Error(`no stat ${name}`);
  return Number(line.slice(name.length + 2));
}

/** Polls (bounded) until `pred` holds for the value `get` returns; returns the last value. */
async function until<T>(get: () => Promise<T>, pred: (v: T) => boolean): Promise<T> {
  let v = await get();
  for (let i = 0; i < 200 && !pred(v); i++) {
    await sleep(25);
    v = await get();
  }
  return v;
}

for (const engine of ENGINES)
  describe.skipIf(!!skip)(skip ? `connect4 capture + sockmap [${engine}] (skipped: ${skip})` : `connect4 capture + sockmap [${engine}]`, () => {
    const NAME = `test-capture-${engine}-${process.pid}`;
    let before: HostState;
    let ns: Netns;
    let up: Netns;
    let cg: Cgroup;
    let dir: string;
    let stateDir: string;
    let env: Record<string, string>;
    let adminSock: string;
    let strait: ChildProcess | undefined;
    let upstream: Peer;
    let upstreamPort: number;
    let outboundPort: number;
    const listenerCx = () => stat(adminSock, `listener.127.0.0.1_${outboundPort}.downstream_cx_total`);

    const status = async () => {
      const r = await intercept(['status', '--name', NAME], { env });
      expect(r.code, r.stderr).toBe(0);
      return r.json;
    };

    beforeAll(async () => {
      before = await baselineHostState();
      ns = new Netns(`cap-${engine}`);
      up = new Netns(`capup-${engine}`);
      // A connection that reaches the upstream went through the routing, not through loopback.
      vethPair(ns, up, VETH);
      cg = new Cgroup(`cap-${engine}`);
      addPayloadCounter(ns);
      upstream = new Peer(['server', UPSTREAM_IP], { netns: up });
      upstreamPort = (await upstream.first).port;

      dir = tmpDir('strait-cap-');
      stateDir = path.join(dir, 'state');
      env = { STRAIT_INTERCEPT_STATE_DIR: stateDir };
      ({ proc: strait, adminSock, port: outboundPort } = await startSidecar({ ns, cg, engine, listen: '127.0.0.1', dir, env }));

      const r = await intercept(
        ['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--outbound-port', String(outboundPort), '--exempt-gid', String(SIDECAR_GID)],
        { netns: ns, env },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.mode).toBe('sockmap');
      expect(r.json.details.capture).toMatchObject({ outboundPort, ipv6: true, exemptGids: [SIDECAR_GID] });
    });

    afterAll(async () => {
      // Idempotent: the last case disabled already unless it failed half-way.
      const r = await intercept(['disable', '--name', NAME], { netns: ns, env });
      await stopProcess(strait);
      await upstream?.end();
      await cg?.remove();
      ns?.remove(); // takes the veth pair with it
      up?.remove();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      restoreBpffs(before);
      expect(r.code, r.stderr).toBe(0);
      expect(await settledHostState(before)).toEqual(before);
    });

    it('status shows the capture programs attached next to the accelerator', async () => {
      const s = await status();
      expect(s.mode).toBe('sockmap');
      expect(s.sockmap.cgroup).toBe(cg.path);
      expect([...s.sockmap.pins].sort()).toEqual([
        'connect4_link',
        'connect6_link',
        'getpeername4_link',
      'getpeername6_link',
      'getsockopt_link',
        'orig_by_cookie',
        'orig_by_tuple',
        'redirect_prog',
        'sock_hash',
        'sockops_link',
        'sockops_prog',
        'stats',
      ]);
      expect(s.sockmap.capture).toMatchObject({ connect4Attached: true, connect6Attached: true, getsockoptAttached: true, getpeernameAttached: true, connections: [] });
      expect(s.records).toEqual([expect.objectContaining({ name: NAME, mode: 'sockmap', capture: true, accelerated: true, cgroup: cg.path, outboundPort })]);
    });

    it('Strait reports the interception in /stats and /config_dump', async () => {
      expect(await stat(adminSock, 'intercept.mode')).toBe(2);
      expect(await stat(adminSock, 'intercept.capture')).toBe(1);
      expect(await stat(adminSock, 'intercept.accelerated')).toBe(1);
      const dump = JSON.parse(await adminGet(adminSock, '/config_dump')).configs;
      const entry = dump.find((c: any) => c['@type'] === 'type.googleapis.com/strait.admin.v1.InterceptConfigDump');
      expect(entry).toMatchObject({ mode: 'sockmap', capture: true, accelerated: true });
      expect(entry.installations.map((i: any) => [i.name, i.outboundPort, i.cgroup])).toEqual([[NAME, outboundPort, cg.path]]);
    });

    it('an app in the cgroup reaches its upstream through Strait; both loopback ends are in the sockmap', async () => {
      const s0 = (await status()).sockmap.stats;
      const cx0 = await stat(adminSock, 'cluster.passthrough.upstream_cx_total');
      const l0 = await listenerCx();
      zeroCounters(ns);
      const app = new Peer(['client', UPSTREAM_IP, String(upstreamPort), '5'], { netns: ns, cgroup: cg });
      let clientPort: number;
      try {
        const r = await app.first;
        expect(r.got).toBe(1000);
        clientPort = r.clientPort;
        // The connect went to the sidecar, yet getpeername4 shows the address asked for.
        expect(r.peer).toBe(`${UPSTREAM_IP}:${upstreamPort}`);
        const s = (await status()).sockmap;
        // The capture record, re-keyed by the app's 4-tuple, still holds the address asked for.
        expect(s.capture.connections).toEqual([
          expect.objectContaining({ clientAddress: '127.0.0.1', clientPort, sidecarPort: outboundPort, originalAddress: UPSTREAM_IP, originalPort: upstreamPort }),
        ]);
        expect(s.stats.connectCaptured - s0.connectCaptured).toBe(1);
        // Strait asked SO_ORIGINAL_DST once and the getsockopt program answered it.
        expect(s.stats.origDstAnswered - s0.origDstAnswered).toBe(1);
        // Acceleration works on the captured hop: the app's socket and Strait's accepted one.
        expect(s.sockets.find((x: any) => x.localPort === clientPort && x.remotePort === outboundPort), JSON.stringify(s.sockets)).toBeDefined();
        expect(s.sockets.find((x: any) => x.localPort === outboundPort && x.remotePort === clientPort), JSON.stringify(s.sockets)).toBeDefined();
        expect(s.stats.msgRedirected - s0.msgRedirected).toBeGreaterThanOrEqual(10);
        // No data segment of the app <-> Strait hop crossed lo (the upstream hop uses the veth).
        expect(payloadPackets(ns)).toBe(0);
      } finally {
        await app.end();
      }
      expect(await until(listenerCx, (v) => v > l0)).toBe(l0 + 1);
      expect(await until(() => stat(adminSock, 'cluster.passthrough.upstream_cx_total'), (v) => v > cx0)).toBe(cx0 + 1);
      // SO_ORIGINAL_DST gave Strait the real destination: the ORIGINAL_DST host is that address.
      expect(await adminGet(adminSock, '/clusters')).toContain(`passthrough::${UPSTREAM_IP}:${upstreamPort}::`);
      // The record goes when the app's socket closes.
      const left = await until(
        async () => (await status()).sockmap.capture.connections,
        (c: any[]) => !c.some((x) => x.clientPort === clientPort),
      );
      expect(left).toEqual([]);
    });

    it("leaves the sidecar's own connects (the exempt gid) and processes outside the cgroup alone", async () => {
      const s0 = (await status()).sockmap.stats;
      const l0 = await listenerCx();
      const own = new Peer(['client', UPSTREAM_IP, String(upstreamPort), '2'], { netns: ns, cgroup: cg, gid: SIDECAR_GID });
      try {
        const r = await own.first;
        expect(r.got).toBe(400);
        expect(r.peer).toBe(`${UPSTREAM_IP}:${upstreamPort}`);
      } finally {
        await own.end();
      }
      const outside = new Peer(['client', UPSTREAM_IP, String(upstreamPort), '2'], { netns: ns });
      try {
        const r = await outside.first;
        expect(r.got).toBe(400);
        expect(r.peer).toBe(`${UPSTREAM_IP}:${upstreamPort}`);
      } finally {
        await outside.end();
      }
      const s = (await status()).sockmap.stats;
      expect(s.connectCaptured - s0.connectCaptured).toBe(0);
      // Only the process in the cgroup met connect4 at all.
      expect(s.connectExempt - s0.connectExempt).toBe(1);
      expect(await listenerCx()).toBe(l0);
    });

    it('leaves loopback destinations alone (local services, the sidecar itself)', async () => {
      const s0 = (await status()).sockmap.stats;
      const l0 = await listenerCx();
      const local = new Peer(['pair', '2'], { netns: ns, cgroup: cg });
      try {
        expect((await local.first).got).toBe(400);
      } finally {
        await local.end();
      }
      expect((await status()).sockmap.stats.connectCaptured).toBe(s0.connectCaptured);
      expect(await listenerCx()).toBe(l0);
    });

    it('disable removes programs, pins and the record; the app then connects directly', async () => {
      const d = await intercept(['disable', '--name', NAME], { netns: ns, env });
      expect(d.code, d.stderr).toBe(0);
      expect([...d.json.removed.pins].sort()).toEqual([
        'connect4_link',
        'connect6_link',
        'getpeername4_link',
      'getpeername6_link',
      'getsockopt_link',
        'orig_by_cookie',
        'orig_by_tuple',
        'redirect_prog',
        'sock_hash',
        'sockops_link',
        'sockops_prog',
        'stats',
      ]);
      expect(d.json.removed.records).toHaveLength(1);
      expect(fs.existsSync(`${PIN_ROOT}/${NAME}`)).toBe(false);
      expect(fs.existsSync(stateDir)).toBe(false);
      expect(await stat(adminSock, 'intercept.mode')).toBe(0);
      const dump = JSON.parse(await adminGet(adminSock, '/config_dump')).configs;
      expect(dump.map((c: any) => c['@type'])).not.toContain('type.googleapis.com/strait.admin.v1.InterceptConfigDump');
      const l0 = await listenerCx();
      const app = new Peer(['client', UPSTREAM_IP, String(upstreamPort), '1'], { netns: ns, cgroup: cg });
      try {
        const r = await app.first;
        expect(r.got).toBe(200);
        expect(r.peer).toBe(`${UPSTREAM_IP}:${upstreamPort}`);
      } finally {
        await app.end();
      }
      expect(await listenerCx()).toBe(l0);
    });
  });

// IPv6 (connect6) and IPv4 on a dual-stack listener, with one engine: what differs from the
// IPv4 case above is in the kernel programs, not in how the engines read the fd.
describe.skipIf(!!skip)(skip ? `connect6 capture (skipped: ${skip})` : 'connect6 capture, dual-stack sidecar listener', () => {
  const NAME = `test-capture6-${process.pid}`;
  let before: HostState;
  let ns: Netns;
  let up: Netns;
  let cg: Cgroup;
  let dir: string;
  let env: Record<string, string>;
  let adminSock: string;
  let strait: ChildProcess | undefined;
  let upstream: Peer;
  let upstreamPort: number;
  let outboundPort: number;

  const status = async () => {
    const r = await intercept(['status', '--name', NAME], { env });
    expect(r.code, r.stderr).toBe(0);
    return r.json;
  };

  beforeAll(async () => {
    before = await baselineHostState();
    ns = new Netns('cap6');
    up = new Netns('cap6up');
    vethPair(ns, up, VETH6);
    cg = new Cgroup('cap6');
    upstream = new Peer(['server', '::'], { netns: up });
    upstreamPort = (await upstream.first).port;
    dir = tmpDir('strait-cap6-');
    env = { STRAIT_INTERCEPT_STATE_DIR: path.join(dir, 'state') };
    // A listener on :: takes both [::1]:P (connect6) and 127.0.0.1:P (connect4, as ::ffff:127.0.0.1).
    ({ proc: strait, adminSock, port: outboundPort } = await startSidecar({ ns, cg, engine: ENGINES[0]!, listen: '::', dir, env }));
    const r = await intercept(
      ['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--outbound-port', String(outboundPort), '--exempt-gid', String(SIDECAR_GID)],
      { netns: ns, env },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.details.capture.ipv6).toBe(true);
  });

  afterAll(async () => {
    const r = await intercept(['disable', '--name', NAME], { netns: ns, env });
    await stopProcess(strait);
    await upstream?.end();
    await cg?.remove();
    ns?.remove();
    up?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    restoreBpffs(before);
    expect(r.code, r.stderr).toBe(0);
    expect(await settledHostState(before)).toEqual(before);
  });

  it("refuses capture without an exemption for the sidecar's identity, and installs nothing", async () => {
    const other = `${NAME}-noexempt`;
    const r = await intercept(['enable', '--mode', 'sockmap', '--name', other, '--cgroup', cg.path, '--outbound-port', String(outboundPort)], { netns: ns, env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--exempt-uid or --exempt-gid/);
    expect(fs.existsSync(`${PIN_ROOT}/${other}`)).toBe(false);
    expect((await intercept(['status', '--name', other], { env })).json.records.map((x: any) => x.name)).toEqual([NAME]);
  });

  it('an IPv6 connect lands on [::1]:P and Strait reaches the IPv6 address asked for', async () => {
    const s0 = (await status()).sockmap.stats;
    const app = new Peer(['client', UPSTREAM_IP6, String(upstreamPort), '3'], { netns: ns, cgroup: cg });
    try {
      const r = await app.first;
      expect(r.got).toBe(600);
      expect(r.peer).toBe(`${UPSTREAM_IP6}:${upstreamPort}`);
      const s = (await status()).sockmap;
      expect(s.capture.connections).toEqual([
        expect.objectContaining({ family: 'IPv6', clientAddress: '::1', clientPort: r.clientPort, originalFamily: 'IPv6', originalAddress: UPSTREAM_IP6, originalPort: upstreamPort }),
      ]);
      expect(s.stats.connectCaptured - s0.connectCaptured).toBe(1);
      expect(s.stats.origDstAnswered - s0.origDstAnswered).toBe(1);
      // ::1 <-> ::1 is accelerated as well.
      expect(s.sockets.filter((x: any) => x.localPort === r.clientPort || x.remotePort === r.clientPort)).toHaveLength(2);
    } finally {
      await app.end();
    }
    const clusters = await until(
      () => adminGet(adminSock, '/clusters'),
      (t) => t.includes(`passthrough::[${UPSTREAM_IP6}]:${upstreamPort}::cx_total::1`),
    );
    expect(clusters).toContain(`passthrough::[${UPSTREAM_IP6}]:${upstreamPort}::cx_total::1`);
  });

  it('an IPv4 connect accepted on the dual-stack listener gets its IPv4 destination back', async () => {
    const s0 = (await status()).sockmap.stats;
    const app = new Peer(['client', UPSTREAM_IP, String(upstreamPort), '3'], { netns: ns, cgroup: cg });
    try {
      const r = await app.first;
      expect(r.got).toBe(600);
      expect(r.peer).toBe(`${UPSTREAM_IP}:${upstreamPort}`);
      const s = (await status()).sockmap;
      // Keyed as IPv4 from both ends although Strait's accepted socket is AF_INET6.
      expect(s.capture.connections).toEqual([expect.objectContaining({ family: 'IPv4', clientPort: r.clientPort, originalAddress: UPSTREAM_IP, originalPort: upstreamPort })]);
      expect(s.stats.origDstAnswered - s0.origDstAnswered).toBe(1);
    } finally {
      await app.end();
    }
    // Asked on an IPv6 socket, the answer is the IPv4-mapped form of the destination.
    const clusters = await until(
      () => adminGet(adminSock, '/clusters'),
      (t) => t.includes(`passthrough::[::ffff:${UPSTREAM_IP}]:${upstreamPort}::cx_total::1`),
    );
    expect(clusters).toContain(`passthrough::[::ffff:${UPSTREAM_IP}]:${upstreamPort}::cx_total::1`);
  });
});

// --bulk-ports: captured connections to these original ports keep TCP on the app-to-Strait hop
// (bulk streams of small writes lose throughput under sk_msg when both ends share a CPU); the
// others are still accelerated. One engine: the choice is made in sockops, not in Strait.
describe.skipIf(!!skip)(skip ? `capture with --bulk-ports (skipped: ${skip})` : 'capture with --bulk-ports: bulk destinations stay on TCP', () => {
  const NAME = `test-bulk-${process.pid}`;
  let before: HostState;
  let ns: Netns;
  let up: Netns;
  let cg: Cgroup;
  let dir: string;
  let env: Record<string, string>;
  let strait: ChildProcess | undefined;
  let bulk: Peer;
  let other: Peer;
  let bulkPort: number;
  let otherPort: number;
  let outboundPort: number;

  const status = async () => {
    const r = await intercept(['status', '--name', NAME], { env });
    expect(r.code, r.stderr).toBe(0);
    return r.json.sockmap;
  };

  beforeAll(async () => {
    before = await baselineHostState();
    ns = new Netns('bulk');
    up = new Netns('bulkup');
    vethPair(ns, up, VETH);
    cg = new Cgroup('bulk');
    addPayloadCounter(ns);
    bulk = new Peer(['server', UPSTREAM_IP], { netns: up });
    other = new Peer(['server', UPSTREAM_IP], { netns: up });
    bulkPort = (await bulk.first).port;
    otherPort = (await other.first).port;
    dir = tmpDir('strait-bulk-');
    env = { STRAIT_INTERCEPT_STATE_DIR: path.join(dir, 'state') };
    ({ proc: strait, port: outboundPort } = await startSidecar({ ns, cg, engine: ENGINES[0]!, listen: '127.0.0.1', dir, env }));
    const r = await intercept(
      ['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--outbound-port', String(outboundPort), '--exempt-gid', String(SIDECAR_GID), '--bulk-ports', String(bulkPort)],
      { netns: ns, env },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.details.capture.bulkPorts).toEqual([bulkPort]);
  });

  afterAll(async () => {
    const r = await intercept(['disable', '--name', NAME], { netns: ns, env });
    await stopProcess(strait);
    await bulk?.end();
    await other?.end();
    await cg?.remove();
    ns?.remove();
    up?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    restoreBpffs(before);
    expect(r.code, r.stderr).toBe(0);
    expect(await settledHostState(before)).toEqual(before);
  });

  it('a connection to a bulk port is captured, reaches its upstream, and crosses lo as TCP', async () => {
    const s0 = (await status()).stats;
    zeroCounters(ns);
    const app = new Peer(['client', UPSTREAM_IP, String(bulkPort), '5'], { netns: ns, cgroup: cg });
    try {
      const r = await app.first;
      expect(r.got).toBe(1000);
      expect(r.peer).toBe(`${UPSTREAM_IP}:${bulkPort}`);
      const s = await status();
      expect(s.stats.connectCaptured - s0.connectCaptured).toBe(1);
      expect(s.stats.origDstAnswered - s0.origDstAnswered).toBe(1);
      // Both ends of the app <-> Strait hop were left out of the map, as bulk.
      expect(s.stats.socketsBulk - s0.socketsBulk).toBe(2);
      expect(s.sockets.filter((x: any) => x.localPort === r.clientPort || x.remotePort === r.clientPort)).toEqual([]);
      expect(s.stats.msgRedirected - s0.msgRedirected).toBe(0);
      // The 5 requests and 5 replies went through TCP on lo.
      expect(payloadPackets(ns)).toBeGreaterThanOrEqual(10);
    } finally {
      await app.end();
    }
  });

  it('a connection to any other port is still accelerated', async () => {
    const s0 = (await status()).stats;
    zeroCounters(ns);
    const app = new Peer(['client', UPSTREAM_IP, String(otherPort), '5'], { netns: ns, cgroup: cg });
    try {
      const r = await app.first;
      expect(r.got).toBe(1000);
      const s = await status();
      expect(s.stats.socketsBulk - s0.socketsBulk).toBe(0);
      expect(s.sockets.filter((x: any) => x.localPort === r.clientPort || x.remotePort === r.clientPort)).toHaveLength(2);
      expect(s.stats.msgRedirected - s0.msgRedirected).toBeGreaterThanOrEqual(10);
      expect(payloadPackets(ns)).toBe(0);
    } finally {
      await app.end();
    }
  });
});
