// iptables REDIRECT capture for real, inside a network namespace of this test: an app that
// connects to its upstream's own address reaches it through Strait (listener use_original_dst
// + ORIGINAL_DST cluster), Strait's own connections are exempt, and disable puts the
// namespace back. Needs root; anywhere else the cases are skipped with the reason in the name.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, ENGINES, tmpDir } from '../helpers/strait.js';
import { adminGet, baselineHostState, intercept, kernelSkipReason, Netns, Peer, settledHostState, sh, type HostState } from './helpers.js';

const skip = await kernelSkipReason({ iptables: true });
if (skip) console.warn(`test/bpf/iptables: SKIPPED: ${skip}`);

/** Strait's identity in these tests: its outbound connections carry this gid and are exempt. */
const SIDECAR_GID = 1337;
const UPSTREAM_IP = '10.201.0.2';

/** GET over the admin unix socket (the admin lives in the test netns; its socket file does not). */
async function stat(sock: string, name: string): Promise<number> {
  const line = (await adminGet(sock, '/stats')).split('\n').find((l) => l.startsWith(`${name}: `));
  // A missing stat is a wrong name, not a zero: fail rather than compare zeros.
  if (line === undefined) throw new Error(`no stat ${name}`);
  return Number(line.slice(name.length + 2));
}

/** Stats are updated as connections end; poll until `pred` holds (bounded), then return it. */
async function waitStat(sock: string, name: string, pred: (v: number) => boolean): Promise<number> {
  let v = await stat(sock, name);
  for (let i = 0; i < 200 && !pred(v); i++) {
    await sleep(25);
    v = await stat(sock, name);
  }
  return v;
}

const natRules = (ns: Netns) => ns.run('iptables-save', ['-t', 'nat']).split('\n').filter((l) => l.startsWith('-A ') || (l.startsWith(':') && !/^:(PREROUTING|INPUT|OUTPUT|POSTROUTING) /.test(l)));

// SO_ORIGINAL_DST is read from the accepted fd, which each I/O engine holds differently.
for (const engine of ENGINES) describe.skipIf(!!skip)(skip ? `iptables capture [${engine}] (skipped: ${skip})` : `iptables capture [${engine}]`, () => {
  let before: HostState;
  let ns: Netns;
  let dir: string;
  let adminSock: string;
  let strait: ChildProcess;
  let straitErr = '';
  let upstream: Peer;
  let upstreamPort: number;
  let outboundPort: number;

  beforeAll(async () => {
    before = await baselineHostState();
    ns = new Netns(`ipt-${engine}`);
    // The upstream's address: local to the netns but not loopback, so it is captured.
    sh('ip', ['-n', ns.name, 'addr', 'add', `${UPSTREAM_IP}/32`, 'dev', 'lo']);
    upstream = new Peer(['server', UPSTREAM_IP], { netns: ns });
    upstreamPort = (await upstream.first).port;

    dir = tmpDir('strait-ipt-');
    adminSock = path.join(dir, 'admin.sock');
    const config = {
      admin: { address: { pipe: { path: adminSock } } },
      static_resources: {
        listeners: [
          {
            name: 'outbound',
            address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
            use_original_dst: true,
            filter_chains: [
              {
                filters: [
                  {
                    name: 'envoy.filters.network.tcp_proxy',
                    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'out', cluster: 'passthrough' },
                  },
                ],
              },
            ],
          },
        ],
        clusters: [{ name: 'passthrough', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '2s' }],
      },
    };
    const cfgPath = path.join(dir, 'strait.json');
    fs.writeFileSync(cfgPath, JSON.stringify(config));
    strait = spawn('nsenter', [`--net=${ns.path}`, process.execPath, CLI, '--io-engine', engine, '--config', cfgPath, '--admin-address-path', path.join(dir, 'admin.addr')], {
      gid: SIDECAR_GID,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    strait.stderr!.on('data', (d) => (straitErr += d));
    let listeners = '';
    for (let i = 0; i < 400 && !listeners.includes('outbound'); i++) {
      await sleep(25);
      if (strait.exitCode !== null) throw new Error(`strait exited: ${straitErr}`);
      listeners = fs.existsSync(adminSock) ? await adminGet(adminSock, '/listeners?format=json').catch(() => '') : '';
    }
    const l = JSON.parse(listeners).listener_statuses.find((s: any) => s.name === 'outbound');
    outboundPort = l.local_address.socket_address.port_value;

    const r = await intercept(['enable', '--mode', 'iptables', '--outbound-port', String(outboundPort), '--exempt-gid', String(SIDECAR_GID)], { netns: ns });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.mode).toBe('iptables');
  });

  afterAll(async () => {
    const r = ns ? await intercept(['disable'], { netns: ns }) : null;
    strait?.kill('SIGKILL');
    await upstream?.end();
    ns?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    expect(r?.code, r?.stderr).toBe(0);
    expect(await settledHostState(before)).toEqual(before);
  });

  it('installs its two chains and the jumps, and status reports them', async () => {
    const rules = natRules(ns);
    expect(rules).toContain(`-A STRAIT_OUTPUT -m owner --gid-owner ${SIDECAR_GID} -j RETURN`);
    expect(rules).toContain(`-A STRAIT_OUTPUT -p tcp -j REDIRECT --to-ports ${outboundPort}`);
    expect(rules).toContain('-A OUTPUT -p tcp -m comment --comment strait -j STRAIT_OUTPUT');
    const s = await intercept(['status'], { netns: ns });
    expect(s.json.mode).toBe('iptables');
    expect(s.json.iptables[0].chains).toEqual(['STRAIT_OUTPUT']);
  });

  it('an app connecting to its upstream reaches it through Strait, at the original destination', async () => {
    const cx0 = await stat(adminSock, 'cluster.passthrough.upstream_cx_total');
    const app = new Peer(['client', UPSTREAM_IP, String(upstreamPort), '5'], { netns: ns });
    try {
      const r = await app.first;
      expect(r.got).toBe(1000);
      // NAT is invisible to the app: it believes it talks to the upstream directly.
      expect(r.peer).toBe(`${UPSTREAM_IP}:${upstreamPort}`);
    } finally {
      await app.end();
    }
    expect(await waitStat(adminSock, 'cluster.passthrough.upstream_cx_total', (v) => v > cx0)).toBe(cx0 + 1);
    // SO_ORIGINAL_DST gave Strait the real destination: the ORIGINAL_DST host is that address.
    expect(await adminGet(adminSock, '/clusters')).toContain(`passthrough::${UPSTREAM_IP}:${upstreamPort}::`);
  });

  it("leaves the sidecar's own identity (the exempt gid) uncaptured", async () => {
    const cx0 = await stat(adminSock, 'listener.127.0.0.1_' + outboundPort + '.downstream_cx_total');
    const app = new Peer(['client', UPSTREAM_IP, String(upstreamPort), '2'], { netns: ns, gid: SIDECAR_GID });
    try {
      expect((await app.first).got).toBe(400);
    } finally {
      await app.end();
    }
    expect(await stat(adminSock, 'listener.127.0.0.1_' + outboundPort + '.downstream_cx_total')).toBe(cx0);
  });

  it('disable removes every rule; enable again works (nothing stale blocks it)', async () => {
    const d = await intercept(['disable'], { netns: ns });
    expect(d.code, d.stderr).toBe(0);
    expect(d.json.removed.chains.ipv4).toEqual(['STRAIT_OUTPUT']);
    expect(natRules(ns)).toEqual([]);
    // Without capture the app goes straight to the upstream.
    const listenerCx = `listener.127.0.0.1_${outboundPort}.downstream_cx_total`;
    const cx0 = await stat(adminSock, listenerCx);
    const app = new Peer(['client', UPSTREAM_IP, String(upstreamPort), '1'], { netns: ns });
    try {
      expect((await app.first).got).toBe(200);
    } finally {
      await app.end();
    }
    expect(await stat(adminSock, listenerCx)).toBe(cx0);
    const e = await intercept(['enable', '--mode', 'iptables', '--outbound-port', String(outboundPort), '--exempt-gid', String(SIDECAR_GID)], { netns: ns });
    expect(e.code, e.stderr).toBe(0);
  });
});

describe.skipIf(!!skip)(skip ? `iptables inbound capture (skipped: ${skip})` : 'iptables inbound capture', () => {
  // Two namespaces joined by a veth pair: inbound capture acts on packets that arrive from
  // another host (PREROUTING), which local traffic never passes through.
  let before: HostState;
  let client: Netns;
  let server: Netns;
  let inbound: Peer;
  let inboundPort: number;
  const SERVER_IP = '10.202.0.2';

  beforeAll(async () => {
    before = await baselineHostState();
    client = new Netns('in-c');
    server = new Netns('in-s');
    sh('ip', ['-n', client.name, 'link', 'add', 'sv0', 'type', 'veth', 'peer', 'name', 'sv1', 'netns', server.name]);
    sh('ip', ['-n', client.name, 'addr', 'add', '10.202.0.1/24', 'dev', 'sv0']);
    sh('ip', ['-n', server.name, 'addr', 'add', `${SERVER_IP}/24`, 'dev', 'sv1']);
    sh('ip', ['-n', client.name, 'link', 'set', 'sv0', 'up']);
    sh('ip', ['-n', server.name, 'link', 'set', 'sv1', 'up']);
    // Stands in for the sidecar's inbound listener: an echo server on any address.
    inbound = new Peer(['server', '0.0.0.0'], { netns: server });
    inboundPort = (await inbound.first).port;
    const r = await intercept(['enable', '--mode', 'iptables', '--inbound-port', String(inboundPort), '--exclude-ports', '22,9'], { netns: server });
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(async () => {
    const r = server ? await intercept(['disable'], { netns: server }) : null;
    await inbound?.end();
    client?.remove(); // takes the veth pair with it
    server?.remove();
    expect(r?.code, r?.stderr).toBe(0);
    expect(await settledHostState(before)).toEqual(before);
  });

  it('sends a connection to any port of the host to the inbound listener', async () => {
    // Nothing listens on 7777 in the server namespace: only the redirect can answer.
    const app = new Peer(['client', SERVER_IP, '7777', '3'], { netns: client });
    try {
      const r = await app.first;
      expect(r.got).toBe(600);
      expect(r.peer).toBe(`${SERVER_IP}:7777`);
    } finally {
      await app.end();
    }
  });

  it('leaves excluded ports alone', async () => {
    const app = new Peer(['client', SERVER_IP, '9', '1'], { netns: client });
    // Port 9 is excluded and nothing listens there: refused, not redirected.
    expect((await app.first).error).toMatch(/ECONNREFUSED/);
    await app.end();
  });
});
