// Strait's own loopback connections (how an inbound request reaches the local app, or a local
// upstream) are accelerated by default, with no --app-ports: connect4 knows Strait by its exempt
// gid and notes the socket, sockops puts it in the sockmap once established and lets the
// listener's end join when that listener is in the cgroup. Processes outside the cgroup are
// never touched. Clients here run outside the cgroup, so the client-to-Strait hop stays TCP and
// the payload counter on lo shows what the Strait-to-listener hop did.
// Needs root; anywhere else the cases are skipped with the reason in their name.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, tmpDir } from '../helpers/strait.js';
import {
  addPayloadCounter,
  baselineHostState,
  echoRounds,
  Cgroup,
  intercept,
  kernelSkipReason,
  Netns,
  payloadPackets,
  Peer,
  restoreBpffs,
  settledHostState,
  SIDECAR_GID,
  startStrait,
  stopProcess,
  zeroCounters,
  type HostState,
} from './helpers.js';

const skip = await kernelSkipReason({ sockmap: true });
if (skip) console.warn(`test/bpf/sidecar_hop: SKIPPED: ${skip}`);

const tcpProxy = (cluster: string) => ({ '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: cluster, cluster });
const listener = (name: string, cluster: string) => ({
  name,
  address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
  filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: tcpProxy(cluster) }] }],
});
const cluster = (name: string, port: number, address = '127.0.0.1') => ({
  name,
  connect_timeout: '2s',
  load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: port } } } }] }] },
});

describe.skipIf(!!skip)(skip ? `sockmap sidecar connects (skipped: ${skip})` : "sockmap: Strait's own loopback connections are redirected by default", () => {
  const NAME = `test-sidecar-${process.pid}`;
  let before: HostState;
  let ns: Netns;
  let cg: Cgroup;
  let dir: string;
  let env: Record<string, string>;
  let strait: ChildProcess | undefined;
  let app: Peer;
  let app6: Peer;
  let outsider: Peer;
  let appPort: number;
  let app6Port: number;
  let outsiderPort: number;
  let ports: Record<string, number>;

  const run = (args: string[]) => intercept(args, { netns: ns, env });
  const enable = async (extra: string[]) => {
    const r = await run(['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--inbound-port', String(ports.to_app), ...extra]);
    expect(r.code, r.stderr).toBe(0);
    return r.json;
  };
  const disable = async () => expect((await run(['disable', '--name', NAME])).code).toBe(0);
  const status = async () => {
    const r = await run(['status', '--name', NAME]);
    expect(r.code, r.stderr).toBe(0);
    return r.json.sockmap;
  };

  const exchange = (port: number, inspect?: () => Promise<void>) => echoRounds(ns, port, inspect);

  beforeAll(async () => {
    before = await baselineHostState();
    ns = new Netns('sidecar');
    cg = new Cgroup('sidecar');
    addPayloadCounter(ns);
    app = new Peer(['server', '127.0.0.1'], { netns: ns, cgroup: cg });
    appPort = (await app.first).port;
    app6 = new Peer(['server', '::1'], { netns: ns, cgroup: cg });
    app6Port = (await app6.first).port;
    // A local listener outside the cgroup: another process on the host, not part of the pod.
    outsider = new Peer(['server', '127.0.0.1'], { netns: ns });
    outsiderPort = (await outsider.first).port;
    dir = tmpDir('strait-sidecar-');
    env = { STRAIT_INTERCEPT_STATE_DIR: path.join(dir, 'state') };
    const s = await startStrait({
      ns,
      cg,
      engine: ENGINES[0]!,
      dir,
      listeners: [listener('to_app', 'app'), listener('to_app6', 'app6'), listener('to_outsider', 'outsider')],
      clusters: [cluster('app', appPort), cluster('app6', app6Port, '::1'), cluster('outsider', outsiderPort)],
    });
    strait = s.proc;
    ports = s.ports;
  });

  afterAll(async () => {
    await intercept(['disable', '--name', NAME], { netns: ns, env });
    await stopProcess(strait);
    await app?.end();
    await app6?.end();
    await outsider?.end();
    await cg?.remove();
    ns?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    restoreBpffs(before);
    expect(await settledHostState(before)).toEqual(before);
  });

  it('with only --exempt-gid, both ends of the Strait-to-app connection are in the sockmap and its messages are redirected', async () => {
    const en = await enable(['--exempt-gid', String(SIDECAR_GID)]);
    expect(en.details.sidecarConnects).toEqual({ accelerated: true });
    // Only the inbound listener's port is on the list: the app's port is not.
    expect(en.details.ports).toEqual([ports.to_app]);
    try {
      const s0 = (await status()).stats;
      zeroCounters(ns);
      await exchange(ports.to_app!, async () => {
        const sockets = (await status()).sockets as Array<{ localPort: number; remotePort: number }>;
        // Strait's end (remote = the app's port) and the app's accepted end (local = it).
        expect(sockets.filter((x) => x.remotePort === appPort)).toHaveLength(1);
        expect(sockets.filter((x) => x.localPort === appPort)).toHaveLength(1);
      });
      const s = (await status()).stats;
      expect(s.sidecarConnects - s0.sidecarConnects).toBeGreaterThanOrEqual(1);
      // 5 requests Strait -> app and 5 replies app -> Strait went through sk_msg.
      expect(s.msgRedirected - s0.msgRedirected).toBeGreaterThanOrEqual(10);
      // Only the client <-> Strait hop (the client is outside the cgroup) used TCP.
      expect(payloadPackets(ns)).toBeGreaterThanOrEqual(10);
      expect(payloadPackets(ns)).toBeLessThan(20);
    } finally {
      await disable();
    }
  });

  it('redirects Strait to an app on [::1] as well (connect6)', async () => {
    await enable(['--exempt-gid', String(SIDECAR_GID)]);
    try {
      const s0 = (await status()).stats;
      await exchange(ports.to_app6!, async () => {
        const sockets = (await status()).sockets as Array<{ family: string; localPort: number; remotePort: number }>;
        expect(sockets.filter((x) => x.family === 'IPv6' && (x.localPort === app6Port || x.remotePort === app6Port))).toHaveLength(2);
      });
      const s = (await status()).stats;
      expect(s.sidecarConnects - s0.sidecarConnects).toBeGreaterThanOrEqual(1);
      expect(s.msgRedirected - s0.msgRedirected).toBeGreaterThanOrEqual(10);
    } finally {
      await disable();
    }
  });

  it('leaves loopback traffic between two processes outside the cgroup alone', async () => {
    await enable(['--exempt-gid', String(SIDECAR_GID)]);
    try {
      const s0 = (await status()).stats;
      zeroCounters(ns);
      await exchange(outsiderPort, async () => {
        const sockets = (await status()).sockets as Array<{ localPort: number; remotePort: number }>;
        expect(sockets.filter((x) => x.localPort === outsiderPort || x.remotePort === outsiderPort)).toEqual([]);
      });
      const s = (await status()).stats;
      expect(s.msgRedirected - s0.msgRedirected).toBe(0);
      expect(s.msgPassed - s0.msgPassed).toBe(0);
      expect(s.sidecarConnects - s0.sidecarConnects).toBe(0);
      expect(payloadPackets(ns)).toBeGreaterThanOrEqual(10);
    } finally {
      await disable();
    }
  });

  it("takes Strait's socket out of the sockmap when the listener it reached is outside the cgroup", async () => {
    await enable(['--exempt-gid', String(SIDECAR_GID)]);
    try {
      const s0 = (await status()).stats;
      zeroCounters(ns);
      await exchange(ports.to_outsider!, async () => {
        // The first ACK of Strait's socket takes it out; poll, bounded, for that callback.
        let sockets: Array<{ localPort: number; remotePort: number }> = [];
        for (let i = 0; i < 100; i++) {
          sockets = (await status()).sockets;
          if (!sockets.some((x) => x.remotePort === outsiderPort)) break;
          await sleep(50);
        }
        expect(sockets.filter((x) => x.localPort === outsiderPort || x.remotePort === outsiderPort)).toEqual([]);
      });
      const s = (await status()).stats;
      expect(s.sidecarConnects - s0.sidecarConnects).toBeGreaterThanOrEqual(1);
      expect(s.sidecarUnmapped - s0.sidecarUnmapped).toBeGreaterThanOrEqual(1);
      expect(s.msgRedirected - s0.msgRedirected).toBe(0);
      // Both hops on TCP, data intact (the exchange checked every byte came back).
      expect(payloadPackets(ns)).toBeGreaterThanOrEqual(20);
    } finally {
      await disable();
    }
  });

  it('--sidecar-connects tcp, or no exempt identity, keeps the Strait-to-app connection on TCP', async () => {
    for (const extra of [['--exempt-gid', String(SIDECAR_GID), '--sidecar-connects', 'tcp'], []]) {
      const en = await enable(extra);
      expect(en.details.sidecarConnects.accelerated).toBe(false);
      expect(en.details.sidecarConnects.reason).toMatch(extra.length ? /--sidecar-connects tcp/ : /--exempt-uid/);
      try {
        const s0 = (await status()).stats;
        zeroCounters(ns);
        await exchange(ports.to_app!);
        const s = (await status()).stats;
        expect(s.msgRedirected - s0.msgRedirected).toBe(0);
        expect(payloadPackets(ns)).toBeGreaterThanOrEqual(20);
      } finally {
        await disable();
      }
    }
  });

  it('names the flag on a bad --sidecar-connects value', async () => {
    const r = await run(['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--sidecar-connects', 'maybe']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--sidecar-connects must be accelerate or tcp, got "maybe"');
  });
});
