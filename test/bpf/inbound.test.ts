// Inbound capture in sockmap mode: a BPF sk_lookup program on the pod's network namespace hands
// connections from another host to the app's port to Strait's inbound listener instead. The
// accepted socket keeps the app's address as its local address, so Strait (use_original_dst,
// which falls back to getsockname when nothing was NATed, and tcp_proxy to an ORIGINAL_DST
// cluster) forwards to the app. Connections from the
// pod itself (Strait's own, local clients) are left alone. Root only; skipped elsewhere with
// the reason in the name.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PIN_ROOT } from '../../src/intercept/sockmap.js';
import { CLI, ENGINES, tmpDir } from '../helpers/strait.js';
import { adminGet, baselineHostState, Cgroup, intercept, kernelSkipReason, Netns, Peer, restoreBpffs, settledHostState, sh, type HostState } from './helpers.js';

const skip = await kernelSkipReason({ sockmap: true });
if (skip) console.warn(`test/bpf/inbound: SKIPPED: ${skip}`);

const POD_IP = '10.205.0.1';
const CLIENT_IP = '10.205.0.2';

async function stat(sock: string, name: string): Promise<number> {
  const line = (await adminGet(sock, '/stats')).split('\n').find((l) => l.startsWith(`${name}: `));
  if (line === undefined) throw new Error(`no stat ${name}`);
  return Number(line.slice(name.length + 2));
}

describe.skipIf(!!skip)(skip ? `sk_lookup inbound capture (skipped: ${skip})` : 'sk_lookup inbound capture: connections to the app land on Strait', () => {
  const NAME = `test-inbound-${process.pid}`;
  let before: HostState;
  let pod: Netns;
  let client: Netns;
  let cg: Cgroup;
  let dir: string;
  let env: Record<string, string>;
  let adminSock: string;
  let strait: ChildProcess | undefined;
  let app: Peer;
  let appPort: number;
  let inboundPort: number;
  const listenerCx = () => stat(adminSock, `listener.0.0.0.0_${inboundPort}.downstream_cx_total`);
  const status = async () => {
    const r = await intercept(['status', '--name', NAME], { env });
    expect(r.code, r.stderr).toBe(0);
    return r.json.sockmap;
  };

  beforeAll(async () => {
    before = await baselineHostState();
    pod = new Netns('inpod');
    client = new Netns('incli');
    sh('ip', ['-n', pod.name, 'link', 'add', 'in0', 'type', 'veth', 'peer', 'name', 'in1', 'netns', client.name]);
    sh('ip', ['-n', pod.name, 'addr', 'add', `${POD_IP}/24`, 'dev', 'in0']);
    sh('ip', ['-n', client.name, 'addr', 'add', `${CLIENT_IP}/24`, 'dev', 'in1']);
    sh('ip', ['-n', pod.name, 'link', 'set', 'in0', 'up']);
    sh('ip', ['-n', client.name, 'link', 'set', 'in1', 'up']);
    cg = new Cgroup('inbound');
    app = new Peer(['server', '0.0.0.0'], { netns: pod });
    appPort = (await app.first).port;

    dir = tmpDir('strait-inbound-');
    env = { STRAIT_INTERCEPT_STATE_DIR: path.join(dir, 'state') };
    adminSock = path.join(dir, 'admin.sock');
    const config = {
      admin: { address: { pipe: { path: adminSock } } },
      static_resources: {
        listeners: [
          {
            name: 'inbound',
            address: { socket_address: { address: '0.0.0.0', port_value: 0 } },
            // The accepted socket's own address (getsockname) is the app's; without this the
            // connection reports the listener's wildcard address.
            use_original_dst: true,
            filter_chains: [
              { filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'in', cluster: 'passthrough' } }] },
            ],
          },
        ],
        clusters: [{ name: 'passthrough', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '2s' }],
      },
    };
    const cfgPath = path.join(dir, 'strait.json');
    fs.writeFileSync(cfgPath, JSON.stringify(config));
    strait = spawn('nsenter', [`--net=${pod.path}`, process.execPath, CLI, '--io-engine', ENGINES[0]!, '--config', cfgPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    strait.stderr!.on('data', (d) => (err += d));
    let listeners = '';
    for (let i = 0; i < 400 && !listeners.includes('inbound'); i++) {
      await sleep(25);
      if (strait.exitCode !== null) throw new Error(`strait exited: ${err}`);
      listeners = fs.existsSync(adminSock) ? await adminGet(adminSock, '/listeners?format=json').catch(() => '') : '';
    }
    inboundPort = JSON.parse(listeners).listener_statuses.find((s: any) => s.name === 'inbound').local_address.socket_address.port_value;

    const r = await intercept(
      ['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path, '--inbound-port', String(inboundPort), '--inbound-capture-ports', String(appPort)],
      { netns: pod, env },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.details.inbound).toMatchObject({ ports: [appPort], listenerPort: inboundPort, listenerPid: strait.pid });
  });

  afterAll(async () => {
    const r = await intercept(['disable', '--name', NAME], { netns: pod, env });
    if (strait && strait.exitCode === null) {
      const exited = new Promise((res) => strait!.once('exit', res));
      strait.kill('SIGKILL');
      await exited;
    }
    await app?.end();
    await cg?.remove();
    pod?.remove();
    client?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    restoreBpffs(before);
    expect(r.code, r.stderr).toBe(0);
    expect(await settledHostState(before)).toEqual(before);
  });

  it('status shows the sk_lookup link and its map', async () => {
    const s = await status();
    expect(s.pins).toEqual(expect.arrayContaining(['inbound_link', 'inbound_listener']));
    expect(s.capture.inboundAttached).toBe(true);
  });

  it('a connection from another host to the app port goes through Strait to the app', async () => {
    const s0 = (await status()).stats;
    const l0 = await listenerCx();
    const c = new Peer(['client', POD_IP, String(appPort), '3'], { netns: client });
    try {
      const r = await c.first;
      expect(r.got).toBe(600);
      // The client still sees the address it dialled.
      expect(r.peer).toBe(`${POD_IP}:${appPort}`);
    } finally {
      await c.end();
    }
    expect((await status()).stats.inboundSteered - s0.inboundSteered).toBe(1);
    expect(await listenerCx()).toBe(l0 + 1);
    // getsockname on the accepted socket gave the app's address: the ORIGINAL_DST host.
    expect(await adminGet(adminSock, '/clusters')).toContain(`passthrough::${POD_IP}:${appPort}::cx_total::1`);
  });

  it('connections from the pod itself (local clients, Strait forwarding) are not steered', async () => {
    const s0 = (await status()).stats;
    const l0 = await listenerCx();
    const c = new Peer(['client', POD_IP, String(appPort), '1'], { netns: pod });
    try {
      expect((await c.first).got).toBe(200);
    } finally {
      await c.end();
    }
    expect((await status()).stats.inboundSteered).toBe(s0.inboundSteered);
    expect(await listenerCx()).toBe(l0);
  });

  it('disable detaches it: the app is reached directly again', async () => {
    const d = await intercept(['disable', '--name', NAME], { netns: pod, env });
    expect(d.code, d.stderr).toBe(0);
    expect(d.json.removed.pins).toEqual(expect.arrayContaining(['inbound_link', 'inbound_listener']));
    expect(fs.existsSync(`${PIN_ROOT}/${NAME}`)).toBe(false);
    const l0 = await listenerCx();
    const c = new Peer(['client', POD_IP, String(appPort), '1'], { netns: client });
    try {
      expect((await c.first).got).toBe(200);
    } finally {
      await c.end();
    }
    expect(await listenerCx()).toBe(l0);
  });
});
