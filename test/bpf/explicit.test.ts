// Explicit addressing, for hosts where neither BPF nor iptables works: no kernel state at all.
// `strait intercept enable --mode explicit` publishes Strait's unix-socket outbound listener as
// STRAIT_OUTBOUND; an app using the SDK (src/sdk/outbound.ts) connects there and names its
// destination in a PROXY protocol v2 header, which the listener's proxy_protocol filter turns
// into the connection's local address for the ORIGINAL_DST cluster. Runs without root.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProxyHeader } from '../../src/listener/proxy_protocol.js';
import { connectOutbound, parseOutbound, proxyV2Header } from '../../src/sdk/outbound.js';
import { CLI, ENGINES, runCli, startStraitFile, tmpDir, type StraitProcess } from '../helpers/strait.js';

const execFileP = promisify(execFile);

async function intercept(args: string[], env: Record<string, string>): Promise<{ code: number; json: any; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, 'intercept', ...args], { env: { ...process.env, ...env } });
    return { code: 0, json: JSON.parse(stdout), stderr };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, json: null, stderr: String(e.stderr ?? err) };
  }
}

/** An echo upstream that counts its connections. */
function echoUpstream(): Promise<{ server: net.Server; port: number; connections: () => number }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port, connections: () => n })));
}

function config(pipe: string, proxyProtocol: Record<string, unknown> = {}): string {
  return JSON.stringify({
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        {
          name: 'outbound_pipe',
          address: { pipe: { path: pipe } },
          listener_filters: [{ name: 'envoy.filters.listener.proxy_protocol', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol', ...proxyProtocol } }],
          filter_chains: [
            { filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'out', cluster: 'passthrough' } }] },
          ],
        },
      ],
      clusters: [{ name: 'passthrough', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '2s' }],
    },
  });
}

/** Sends `msg` and resolves with what comes back once `msg.length` bytes did. */
function echo(sock: net.Socket, msg: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    sock.on('data', (d) => {
      chunks.push(d);
      got += d.length;
      if (got >= msg.length) resolve(Buffer.concat(chunks));
    });
    sock.on('error', reject);
    sock.write(msg);
  });
}

describe('PROXY protocol header: the SDK writes what the listener filter reads', () => {
  it('v2 over IPv4 and IPv6, byte by byte until complete', () => {
    for (const [src, dst] of [
      [{ address: '10.1.2.3', port: 4000 }, { address: '192.0.2.7', port: 8080 }],
      [{ address: '::', port: 0 }, { address: 'fd00:201::2', port: 443 }],
    ] as const) {
      const h = Buffer.concat([proxyV2Header(src, dst), Buffer.from('payload')]);
      for (let n = 1; n < h.length - 7; n++) expect(parseProxyHeader(h.subarray(0, n)).kind).toBe('need_more');
      const r = parseProxyHeader(h);
      expect(r).toMatchObject({ kind: 'ok', version: 2, consumed: h.length - 7, addresses: { remote: { address: src.address, port: src.port }, local: { address: dst.address, port: dst.port } } });
    }
  });

  it('v1 text headers, and non-PROXY bytes', () => {
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 10.0.0.1 10.0.0.2 1234 80\r\nGET /'))).toMatchObject({
      kind: 'ok',
      version: 1,
      consumed: 38,
      addresses: { remote: { family: 'IPv4', address: '10.0.0.1', port: 1234 }, local: { family: 'IPv4', address: '10.0.0.2', port: 80 } },
    });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 10.0.0.1 nope 1 2\r\n')).kind).toBe('error');
    expect(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')).kind).toBe('none');
  });

  it('STRAIT_OUTBOUND values', () => {
    expect(parseOutbound('unix:/run/strait/out.sock')).toEqual({ path: '/run/strait/out.sock' });
    expect(parseOutbound('127.0.0.1:15001')).toEqual({ host: '127.0.0.1', port: 15001 });
    expect(parseOutbound('[::1]:15001')).toEqual({ host: '::1', port: 15001 });
    expect(() => parseOutbound('unix:relative')).toThrow(/absolute path/);
    expect(() => parseOutbound('nowhere')).toThrow(/STRAIT_OUTBOUND/);
  });
});

describe('proxy_protocol listener filter config', () => {
  it('names the field of what is not supported, and TLS on the same listener', async () => {
    const dir = tmpDir('strait-pp-');
    try {
      const bad = JSON.parse(config(path.join(dir, 'o.sock'), { rules: [{ tlv_type: 1 }], disallowed_versions: ['V3'] }));
      fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify(bad));
      const r = await runCli(['--mode', 'validate', '--config', path.join(dir, 'bad.json')]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('listeners[0].listener_filters[0].typed_config.rules');
      expect(r.stderr).toContain('listeners[0].listener_filters[0].typed_config.disallowed_versions[0]');
      bad.static_resources.listeners[0].listener_filters = [
        { name: 'envoy.filters.listener.proxy_protocol' },
        { name: 'envoy.filters.listener.tls_inspector' },
      ];
      fs.writeFileSync(path.join(dir, 'tls.json'), JSON.stringify(bad));
      const t = await runCli(['--mode', 'validate', '--config', path.join(dir, 'tls.json')]);
      expect(t.code).not.toBe(0);
      expect(t.stderr).toMatch(/listener_filters.*proxy_protocol together with TLS/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

for (const engine of ENGINES)
  describe(`explicit addressing: SDK -> unix socket -> Strait -> upstream [${engine}]`, () => {
    let dir: string;
    let env: Record<string, string>;
    let strait: StraitProcess;
    let up: Awaited<ReturnType<typeof echoUpstream>>;
    let pipe: string;
    const NAME = `test-explicit-${engine}-${process.pid}`;

    beforeAll(async () => {
      dir = tmpDir('strait-explicit-');
      env = { STRAIT_INTERCEPT_STATE_DIR: path.join(dir, 'state') };
      up = await echoUpstream();
      pipe = path.join(dir, 'outbound.sock');
      strait = await startStraitFile('strait.json', config(pipe), { engine });
    });

    afterAll(async () => {
      await strait?.stop();
      up?.server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('enable --mode explicit publishes STRAIT_OUTBOUND (output, env file, status) and installs no kernel state', async () => {
      const envFile = path.join(dir, 'strait.env');
      const e = await intercept(['enable', '--mode', 'explicit', '--name', NAME, '--outbound-pipe', pipe, '--write-env', envFile], env);
      expect(e.code, e.stderr).toBe(0);
      expect(e.json).toMatchObject({ mode: 'explicit', details: { env: { STRAIT_OUTBOUND: `unix:${pipe}` }, envFile } });
      expect(fs.readFileSync(envFile, 'utf8')).toBe(`STRAIT_OUTBOUND=unix:${pipe}\n`);
      const s = await intercept(['status', '--name', NAME], env);
      expect(s.code, s.stderr).toBe(0);
      expect(s.json).toMatchObject({ mode: 'explicit', env: { STRAIT_OUTBOUND: `unix:${pipe}` }, sockmap: null, iptables: [] });
      expect(s.json.records).toEqual([expect.objectContaining({ name: NAME, mode: 'explicit', capture: false, accelerated: false, outboundPipe: pipe, envFile })]);
    });

    it('an app using the SDK reaches its upstream through the ORIGINAL_DST cluster', async () => {
      const outbound = fs.readFileSync(path.join(dir, 'strait.env'), 'utf8').trim().split('=')[1]!;
      const before = up.connections();
      const sock = await connectOutbound('127.0.0.1', up.port, { outbound });
      try {
        // The app's socket is a unix socket to Strait: nothing on its side knows the upstream.
        expect(sock.remoteAddress).toBeUndefined();
        const msg = Buffer.alloc(3000, 9);
        expect((await echo(sock, msg)).equals(msg)).toBe(true);
      } finally {
        sock.destroy();
      }
      expect(up.connections()).toBe(before + 1);
      expect(await strait.waitStat('cluster.passthrough.upstream_cx_total', (v) => v === 1)).toBe(1);
      // The host is the destination from the header.
      expect((await strait.get('/clusters')).text).toContain(`passthrough::127.0.0.1:${up.port}::cx_total::1`);
      expect(await strait.stat(`listener.${pipe}.downstream_cx_proxy_proto_error`)).toBe(0);
    });

    it('a connection without the header is closed and counted; the upstream never sees it', async () => {
      const before = up.connections();
      const raw = net.connect({ path: pipe });
      const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
      raw.on('error', () => {});
      raw.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      await closed;
      expect(await strait.waitStat(`listener.${pipe}.downstream_cx_proxy_proto_error`, (v) => v === 1)).toBe(1);
      expect(up.connections()).toBe(before);
    });

    it('disable removes the record and the env file', async () => {
      const d = await intercept(['disable', '--name', NAME], env);
      expect(d.code, d.stderr).toBe(0);
      expect(d.json.removed.records).toHaveLength(1);
      expect(fs.existsSync(path.join(dir, 'strait.env'))).toBe(false);
      expect(fs.existsSync(env.STRAIT_INTERCEPT_STATE_DIR!)).toBe(false);
      expect((await intercept(['status', '--name', NAME], env)).json).toMatchObject({ mode: 'none', env: null });
    });
  });

describe('explicit mode without a pipe', () => {
  it('fails with the reason and writes nothing', async () => {
    const dir = tmpDir('strait-explicit-');
    try {
      const env = { STRAIT_INTERCEPT_STATE_DIR: path.join(dir, 'state') };
      const e = await intercept(['enable', '--mode', 'explicit', '--name', 'x'], env);
      expect(e.code).toBe(1);
      expect(e.stderr).toMatch(/explicit mode needs --outbound-pipe/);
      const r = await intercept(['enable', '--mode', 'explicit', '--name', 'x', '--outbound-pipe', 'rel.sock'], env);
      expect(r.stderr).toMatch(/--outbound-pipe needs an absolute path/);
      expect(fs.existsSync(env.STRAIT_INTERCEPT_STATE_DIR)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
