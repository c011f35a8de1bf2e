// `--app-ports`: the sidecar-to-app hop (how an inbound request reaches the local app) is
// redirected by sk_msg too, so both loopback hops of a mesh request can skip TCP. A client
// outside the cgroup talks to Strait's inbound listener, which forwards to the app on
// 127.0.0.1:<app port>; Strait and the app run in the test's cgroup, in the test's netns.
// No --exempt-gid here: without Strait's identity its own connects are not accelerated by
// default (test/bpf/sidecar_hop.test.ts), so --app-ports is what puts this hop in the sockmap.
// Needs root; anywhere else the cases are skipped with the reason in their name.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ENGINES, tmpDir } from '../helpers/strait.js';
import { adminGet, addPayloadCounter, baselineHostState, Cgroup, echoRounds, intercept, kernelSkipReason, Netns, payloadPackets, Peer, restoreBpffs, settledHostState, zeroCounters, type HostState } from './helpers.js';

const skip = await kernelSkipReason({ sockmap: true });
if (skip) console.warn(`test/bpf/app_ports: SKIPPED: ${skip}`);

const SIDECAR_GID = 1337;

describe.skipIf(!!skip)(skip ? `sockmap --app-ports (skipped: ${skip})` : 'sockmap --app-ports: the sidecar-to-app hop is redirected too', () => {
  const NAME = `test-appports-${process.pid}`;
  let before: HostState;
  let ns: Netns;
  let cg: Cgroup;
  let dir: string;
  let env: Record<string, string>;
  let strait: ChildProcess | undefined;
  let app: Peer;
  let appPort: number;
  let inboundPort: number;

  const status = async () => {
    const r = await intercept(['status', '--name', NAME], { env });
    expect(r.code, r.stderr).toBe(0);
    return r.json.sockmap;
  };

  /** One client outside the cgroup through Strait to the app: 5 echoed rounds. */
  const exchange = () => echoRounds(ns, inboundPort);

  beforeAll(async () => {
    before = await baselineHostState();
    ns = new Netns('appports');
    cg = new Cgroup('appports');
    addPayloadCounter(ns);
    app = new Peer(['server', '127.0.0.1'], { netns: ns, cgroup: cg });
    appPort = (await app.first).port;
    dir = tmpDir('strait-appports-');
    env = { STRAIT_INTERCEPT_STATE_DIR: path.join(dir, 'state') };
    const adminSock = path.join(dir, 'admin.sock');
    const config = {
      admin: { address: { pipe: { path: adminSock } } },
      static_resources: {
        listeners: [
          {
            name: 'inbound',
            address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
            filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'in', cluster: 'app' } }] }],
          },
        ],
        clusters: [
          {
            name: 'app',
            connect_timeout: '2s',
            load_assignment: { cluster_name: 'app', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: appPort } } } }] }] },
          },
        ],
      },
    };
    const cfgPath = path.join(dir, 'strait.json');
    fs.writeFileSync(cfgPath, JSON.stringify(config));
    const script = `echo $$ > ${cg.path}/cgroup.procs && exec "${process.execPath}" "${CLI}" --io-engine ${ENGINES[0]} --config "${cfgPath}"`;
    strait = spawn('nsenter', [`--net=${ns.path}`, 'sh', '-c', script], { gid: SIDECAR_GID, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    strait.stderr!.on('data', (d) => (err += d));
    let listeners = '';
    for (let i = 0; i < 400 && !listeners.includes('inbound'); i++) {
      await sleep(25);
      if (strait.exitCode !== null) throw new Error(`strait exited: ${err}`);
      listeners = fs.existsSync(adminSock) ? await adminGet(adminSock, '/listeners?format=json').catch(() => '') : '';
    }
    inboundPort = JSON.parse(listeners).listener_statuses.find((s: any) => s.name === 'inbound').local_address.socket_address.port_value;
  });

  afterAll(async () => {
    await intercept(['disable', '--name', NAME], { netns: ns, env });
    if (strait && strait.exitCode === null) {
      const exited = new Promise((r) => strait!.once('exit', r));
      strait.kill('SIGKILL');
      await exited;
    }
    await app?.end();
    await cg?.remove();
    ns?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    restoreBpffs(before);
    expect(await settledHostState(before)).toEqual(before);
  });

  it('without --app-ports (and no exempt identity) the Strait-to-app connection stays on TCP', async () => {
    // Only the inbound listener's port is accelerated: the app's port is not on the list.
    const en = await intercept(['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--inbound-port', String(inboundPort)], { netns: ns, env });
    expect(en.code, en.stderr).toBe(0);
    try {
      const s0 = (await status()).stats;
      zeroCounters(ns);
      await exchange();
      const s = await status();
      expect(s.stats.msgRedirected - s0.msgRedirected).toBe(0);
      // Both hops crossed lo as TCP: 5 requests and 5 replies on each.
      expect(payloadPackets(ns)).toBeGreaterThanOrEqual(20);
    } finally {
      expect((await intercept(['disable', '--name', NAME], { netns: ns, env })).code).toBe(0);
    }
  });

  it('with --app-ports both ends of the Strait-to-app connection are in the sockmap and its messages are redirected', async () => {
    const en = await intercept(['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--inbound-port', String(inboundPort), '--app-ports', String(appPort)], { netns: ns, env });
    expect(en.code, en.stderr).toBe(0);
    try {
      const s0 = (await status()).stats;
      zeroCounters(ns);
      await exchange();
      const s = await status();
      // 5 requests Strait -> app and 5 replies app -> Strait went through sk_msg.
      expect(s.stats.msgRedirected - s0.msgRedirected).toBeGreaterThanOrEqual(10);
      // Only the client <-> Strait hop (the client is outside the cgroup) still used TCP.
      expect(payloadPackets(ns)).toBeGreaterThanOrEqual(10);
      expect(payloadPackets(ns)).toBeLessThan(20);
    } finally {
      expect((await intercept(['disable', '--name', NAME], { netns: ns, env })).code).toBe(0);
    }
  });

  it('refuses more app ports than the program holds, naming the flag', async () => {
    const many = Array.from({ length: 15 }, (_, i) => String(20000 + i)).join(',');
    const r = await intercept(['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--app-ports', many], { netns: ns, env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--app-ports takes at most 14 ports');
  });
});
