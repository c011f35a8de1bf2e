// Istio's sidecar outbound shape for real, inside a network namespace of this test: iptables
// REDIRECTs the app's connections to one `use_original_dst` listener (virtualOutbound), which
// hands each to the `bind_to_port: false` listener for its original destination (exact address
// first, then 0.0.0.0 with that port), or keeps it (passthrough) when there is none. Needs root;
// anywhere else the cases are skipped with the reason in the name.
import { execFile } from 'node:child_process';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ENGINES, tmpDir } from '../helpers/strait.js';
import { adminGet, baselineHostState, intercept, kernelSkipReason, Netns, Peer, settledHostState, sh, SIDECAR_GID, type HostState } from './helpers.js';

const execFileP = promisify(execFile);
const skip = await kernelSkipReason({ iptables: true });
if (skip) console.warn(`test/bpf/original_dst_handoff: SKIPPED: ${skip}`);

const SVC_IP = '10.203.0.2';
const OTHER_IP = '10.203.0.3';
// Inside the test's own namespace nothing else listens: fixed ports cannot collide.
const PORT_WILD = 18080;
const PORT_BOTH = 18081;

/**
 * An HCM that answers every request itself with `body`: which listener served is in the reply.
 * `istio`: as Istio writes its outbound listeners — tls and http inspectors (no timeout), and a
 * chain matched on plaintext HTTP — so the handed-off connection is inspected where it lands.
 */
function answering(name: string, address: string, port: number, body: string, istio = false): object {
  const inspectors = {
    listener_filters: [
      { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } },
      { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector' } },
    ],
    listener_filters_timeout: '0s',
    continue_on_listener_filters_timeout: true,
  };
  return {
    name,
    address: { socket_address: { address, port_value: port } },
    bind_to_port: false,
    ...(istio ? inspectors : {}),
    filter_chains: [
      {
        ...(istio ? { filter_chain_match: { transport_protocol: 'raw_buffer', application_protocols: ['http/1.1', 'h2c'] } } : {}),
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: name,
              route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: body } } }] }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
}

/** GET from inside the namespace, as the app (captured) or with the sidecar's gid (exempt). */
async function appGet(ns: Netns, url: string, gid?: number): Promise<{ status?: number; body?: string; error?: string }> {
  const script = `require('node:http').get(${JSON.stringify(url)}, (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(JSON.stringify({ status: r.statusCode, body: b }))); }).on('error', (e) => console.log(JSON.stringify({ error: e.code ?? e.message })));`;
  const { stdout } = await execFileP('nsenter', [`--net=${ns.path}`, process.execPath, '-e', script], gid === undefined ? {} : { gid });
  return JSON.parse(stdout.trim());
}

async function stat(sock: string, name: string): Promise<number> {
  const line = (await adminGet(sock, '/stats')).split('\n').find((l) => l.startsWith(`${name}: `));
  if (line === undefined) throw new Error(`no stat ${name}`);
  return Number(line.slice(name.length + 2));
}

for (const engine of ENGINES) describe.skipIf(!!skip)(skip ? `original destination hand-off [${engine}] (skipped: ${skip})` : `original destination hand-off [${engine}]`, () => {
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
    ns = new Netns(`odh-${engine}`);
    for (const ip of [SVC_IP, OTHER_IP]) sh('ip', ['-n', ns.name, 'addr', 'add', `${ip}/32`, 'dev', 'lo']);
    upstream = new Peer(['server', SVC_IP], { netns: ns });
    upstreamPort = (await upstream.first).port;

    dir = tmpDir('strait-odh-');
    adminSock = path.join(dir, 'admin.sock');
    const config = {
      admin: { address: { pipe: { path: adminSock } } },
      static_resources: {
        listeners: [
          {
            name: 'virtualOutbound',
            address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
            use_original_dst: true,
            filter_chains: [
              {
                filters: [
                  {
                    name: 'envoy.filters.network.tcp_proxy',
                    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'passthrough', cluster: 'passthrough' },
                  },
                ],
              },
            ],
          },
          answering('svc_wild', '0.0.0.0', PORT_WILD, 'wildcard 18080', true),
          answering('svc_exact', SVC_IP, PORT_BOTH, 'exact 18081'),
          answering('svc_wild_both', '0.0.0.0', PORT_BOTH, 'wildcard 18081'),
        ],
        clusters: [{ name: 'passthrough', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '2s' }],
      },
    };
    const cfgPath = path.join(dir, 'strait.json');
    fs.writeFileSync(cfgPath, JSON.stringify(config));
    strait = spawn('nsenter', [`--net=${ns.path}`, process.execPath, CLI, '--io-engine', engine, '--config', cfgPath], { gid: SIDECAR_GID, stdio: ['ignore', 'ignore', 'pipe'] });
    strait.stderr!.on('data', (d) => (straitErr += d));
    let listeners = '';
    for (let i = 0; i < 400 && !listeners.includes('virtualOutbound'); i++) {
      await sleep(25);
      if (strait.exitCode !== null) throw new Error(`strait exited: ${straitErr}`);
      listeners = fs.existsSync(adminSock) ? await adminGet(adminSock, '/listeners?format=json').catch(() => '') : '';
    }
    const l = JSON.parse(listeners).listener_statuses.find((s: any) => s.name === 'virtualOutbound');
    outboundPort = l.local_address.socket_address.port_value;
    const r = await intercept(['enable', '--mode', 'iptables', '--outbound-port', String(outboundPort), '--exempt-gid', String(SIDECAR_GID)], { netns: ns });
    expect(r.code, r.stderr).toBe(0);
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

  it('lists the unbound listeners at their addresses, and binds none of them', async () => {
    const all = JSON.parse(await adminGet(adminSock, '/listeners?format=json')).listener_statuses;
    const wild = all.find((s: any) => s.name === 'svc_wild');
    expect(wild.local_address.socket_address).toMatchObject({ address: '0.0.0.0', port_value: PORT_WILD });
    // The sidecar's own gid is not captured: with no socket on the port, the kernel refuses.
    expect(await appGet(ns, `http://${SVC_IP}:${PORT_WILD}/`, SIDECAR_GID)).toEqual({ error: 'ECONNREFUSED' });
  });

  it('hands a captured connection to the wildcard listener of its original port, counted there', async () => {
    const virtualCx = `listener.127.0.0.1_${outboundPort}.downstream_cx_total`;
    const v0 = await stat(adminSock, virtualCx);
    const w0 = await stat(adminSock, `listener.0.0.0.0_${PORT_WILD}.downstream_cx_total`);
    expect(await appGet(ns, `http://${SVC_IP}:${PORT_WILD}/`)).toEqual({ status: 200, body: 'wildcard 18080' });
    expect(await stat(adminSock, `listener.0.0.0.0_${PORT_WILD}.downstream_cx_total`)).toBe(w0 + 1);
    expect(await stat(adminSock, virtualCx)).toBe(v0);
  });

  it('prefers the listener on the exact original address over the wildcard one', async () => {
    expect(await appGet(ns, `http://${SVC_IP}:${PORT_BOTH}/`)).toEqual({ status: 200, body: 'exact 18081' });
    expect(await appGet(ns, `http://${OTHER_IP}:${PORT_BOTH}/`)).toEqual({ status: 200, body: 'wildcard 18081' });
  });

  it('keeps a connection whose original destination has no listener (passthrough)', async () => {
    const cx0 = await stat(adminSock, 'cluster.passthrough.upstream_cx_total');
    const app = new Peer(['client', SVC_IP, String(upstreamPort), '3'], { netns: ns });
    try {
      expect((await app.first).got).toBe(600);
    } finally {
      await app.end();
    }
    expect(await stat(adminSock, 'cluster.passthrough.upstream_cx_total')).toBe(cx0 + 1);
  });
});
