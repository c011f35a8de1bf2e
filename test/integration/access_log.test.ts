import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleCodec, exampleFrame, ExampleType } from '../../src/protocols/example/codec.js';
import { FrameKind, H } from '../../src/protocols/types.js';
import { connect, deadPort, echoServer, readAll } from '../helpers/net.js';
import { ADMIN, CLI, ENGINES, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

const TCP_LOG = '%START_TIME(%Y-%m-%d)% %DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS% %RESPONSE_CODE% %DURATION%\\n';

function tcpListener(name: string, cluster: string, accessLog: string): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${name}
          cluster: ${cluster}
          access_log:
${accessLog}`;
}

const fileLog = (file: string, format: string) => `          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "${file}"
              log_format: ${format}
`;

/** Waits for a line of `file` that satisfies `pred` (writes are asynchronous by design). */
async function waitLine(file: string, pred: (line: string) => boolean): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const hit = text.split('\n').find((l) => l && pred(l));
    if (hit) return hit;
    await sleep(25);
  }
  throw new Error(`${file}: no such line`);
}

/** An example-codec provider that echoes the body as `ok:<body>`. */
async function exampleServer(): Promise<{ port: number; close(): void }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const h = new Int32Array(H.SIZE);
        exampleCodec.decodeHeader(buf, 0, buf.length, 1 << 20, h);
        if (h[H.STATE] !== 1) return;
        const f = buf.subarray(0, h[H.FRAME_LEN]!);
        buf = buf.subarray(h[H.FRAME_LEN]!);
        if (h[H.KIND] === FrameKind.HEARTBEAT) s.write(exampleCodec.heartbeatResponse(f, 0));
        else s.write(exampleFrame(ExampleType.RESPONSE, h[H.ID_LO]!, 0, '', Buffer.from(`ok:${f.subarray(h[H.BODY_OFF]!)}`)));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/** Sends example calls with the given ids on one connection; resolves with the replies' statuses by id. */
async function exampleCalls(port: number, calls: Array<{ id: number; meta: string }>): Promise<Map<number, number>> {
  const s = await connect(port);
  const got = new Map<number, number>();
  let buf = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const h = new Int32Array(H.SIZE);
        exampleCodec.decodeHeader(buf, 0, buf.length, 1 << 20, h);
        if (h[H.STATE] !== 1) break;
        got.set(h[H.ID_LO]!, h[H.STATUS]!);
        buf = buf.subarray(h[H.FRAME_LEN]!);
      }
      if (got.size === calls.length) resolve();
    });
    for (const c of calls) s.write(exampleFrame(ExampleType.REQUEST, c.id, 0, c.meta, Buffer.from('body')));
  });
  s.destroy();
  return got;
}

describe.each(ENGINES)('access logs on the %s engine', (engine) => {
  let dir: string;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let provider: Awaited<ReturnType<typeof exampleServer>>;
  let strait: StraitProcess;

  beforeAll(async () => {
    dir = tmpDir('strait-al-');
    echo = await echoServer();
    provider = await exampleServer();
    const dead = await deadPort();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${tcpListener('tcp', 'echo', fileLog(path.join(dir, 'tcp.log'), `{ text_format_source: { inline_string: "${TCP_LOG}" } }`))}
${tcpListener('dead', 'dead', fileLog(path.join(dir, 'tcp.log'), `{ text_format_source: { inline_string: "${TCP_LOG}" } }`))}
  - name: rpc
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: strait.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
          stat_prefix: rpc
          codec: example
          route_config:
          - interface: com.example.Echo
            routes: [ { match: {}, route: { cluster: provider } } ]
          access_log:
${fileLog(
  path.join(dir, 'rpc.log'),
  `
                json_format:
                  iface: "%RPC_INTERFACE%"
                  method: "%RPC_METHOD%"
                  id: "%RPC_REQUEST_ID%"
                  protocol: "%RPC_PROTOCOL%"
                  code: "%RESPONSE_CODE%"
                  flags: "%RESPONSE_FLAGS%"
                  upstream: "%UPSTREAM_HOST%"
                  cluster: "%UPSTREAM_CLUSTER%"
                  bytes: "%BYTES_RECEIVED%/%BYTES_SENT%"
                  fixed: { source: strait }`,
)}  clusters:
${staticCluster('echo', [echo.port])}${staticCluster('dead', [dead])}${staticCluster('provider', [provider.port])}`,
      { engine },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    await echo?.close();
    provider?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('logs a tcp_proxy connection with Envoy operators', async () => {
    const s = await connect(await strait.port('tcp'));
    const local = `${s.localAddress}:${s.localPort}`;
    const got = readAll(s);
    s.end('x'.repeat(1000));
    expect((await got).length).toBe(1000);
    const line = await waitLine(path.join(dir, 'tcp.log'), (l) => l.includes(` ${local} `));
    const f = line.split(' ');
    expect(f[0]).toBe(new Date().toISOString().slice(0, 10));
    expect(f.slice(1, 8)).toEqual([local, `127.0.0.1:${echo.port}`, 'echo', '1000', '1000', '-', '0']);
    expect(Number(f[8])).toBeGreaterThanOrEqual(0);
  });

  it('flags a connection whose upstream refused (UF)', async () => {
    const s = await connect(await strait.port('dead'));
    s.on('error', () => {});
    // The client half-closes at once; the proxy closes its side once the connect fails.
    s.resume();
    s.end();
    await new Promise((r) => s.on('close', r));
    const line = await waitLine(path.join(dir, 'tcp.log'), (l) => l.includes(' dead '));
    expect(line.split(' ').slice(2, 7)).toEqual(['-', 'dead', '0', '0', 'UF']);
  });

  it('logs RPC calls as typed JSON with interface, method and the caller\'s request id', async () => {
    const port = await strait.port('rpc');
    const statuses = await exampleCalls(port, [
      { id: 41, meta: 'service=com.example.Echo\nmethod=ping\n' },
      { id: 42, meta: 'service=com.example.Nope\nmethod=pong\n' },
    ]);
    expect(statuses.get(41)).toBe(0);
    expect(statuses.get(42)).not.toBe(0);
    const ok = JSON.parse(await waitLine(path.join(dir, 'rpc.log'), (l) => l.includes('"id":"41"'))) as Record<string, unknown>;
    const nr = JSON.parse(await waitLine(path.join(dir, 'rpc.log'), (l) => l.includes('"id":"42"'))) as Record<string, unknown>;
    expect(ok).toEqual({
      iface: 'com.example.Echo',
      method: 'ping',
      id: '41',
      protocol: 'example',
      code: 0,
      flags: null,
      upstream: `127.0.0.1:${provider.port}`,
      cluster: 'provider',
      bytes: expect.stringMatching(/^\d+\/\d+$/),
      fixed: { source: 'strait' },
    });
    expect(nr).toMatchObject({ iface: 'com.example.Nope', method: 'pong', flags: 'NR', upstream: null, code: statuses.get(42) });
  });
});

describe('access log sinks', () => {
  it('writes JSON lines to stdout', async () => {
    const dir = tmpDir('strait-al-out-');
    const echo = await echoServer();
    const cfg = path.join(dir, 'c.yaml');
    const adminPath = path.join(dir, 'admin');
    fs.writeFileSync(
      cfg,
      `${ADMIN}static_resources:
  listeners:
${tcpListener(
  'out',
  'echo',
  `          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: { json_format: { cluster: "%UPSTREAM_CLUSTER%", rx: "%BYTES_RECEIVED%" } }
`,
)}  clusters:
${staticCluster('echo', [echo.port])}`,
    );
    const p = spawn(process.execPath, [CLI, '--config', cfg, '--admin-address-path', adminPath, '--io-engine', ENGINES[0]!, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    try {
      let admin = '';
      for (let i = 0; i < 400 && !admin; i++) {
        if (fs.existsSync(adminPath)) admin = fs.readFileSync(adminPath, 'utf8').trim();
        if (!admin) await sleep(25);
      }
      const listeners = JSON.parse(await (await fetch(`http://${admin}/listeners?format=json`)).text()) as { listener_statuses: Array<{ local_address: { socket_address: { port_value: number } } }> };
      const s = await connect(listeners.listener_statuses[0]!.local_address.socket_address.port_value);
      const got = readAll(s);
      s.end('hello');
      await got;
      for (let i = 0; i < 200 && !out.includes('\n'); i++) await sleep(25);
      expect(JSON.parse(out.split('\n')[0]!)).toEqual({ cluster: 'echo', rx: 5 });
    } finally {
      p.kill('SIGKILL');
      await echo.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drops lines (and counts them) instead of blocking when the file stops taking writes', async () => {
    const dir = tmpDir('strait-al-fifo-');
    const fifo = path.join(dir, 'stalled.log');
    // A FIFO nobody reads stands in for a stalled disk: opening and writing it never completes.
    execFileSync('mkfifo', [fifo]);
    const echo = await echoServer();
    const filler = 'x'.repeat(16 * 1024);
    const strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${tcpListener('stall', 'echo', fileLog(fifo, `{ text_format_source: { inline_string: "%BYTES_RECEIVED% ${filler}\\n" } }`))}  clusters:
${staticCluster('echo', [echo.port])}`,
      { engine: ENGINES[0] },
    );
    let reader: fs.ReadStream | null = null;
    try {
      const port = await strait.port('stall');
      // 1 MiB of buffer holds 64 such lines; the proxy must keep serving past that.
      for (let i = 0; i < 100; i++) {
        const s = await connect(port);
        const got = readAll(s);
        s.end(`conn${i}`);
        expect((await got).toString()).toBe(`conn${i}`);
      }
      const dropped = await strait.waitStat('filesystem.write_dropped', (v) => v > 0);
      expect(dropped).toBeLessThan(100);
      expect(await strait.stat('filesystem.write_total_buffered')).toBeGreaterThan(0);
      // Once someone reads, what was kept gets written.
      reader = fs.createReadStream(fifo);
      const first = await new Promise<string>((resolve) => reader!.once('data', (d) => resolve(d.toString())));
      expect(first.split(' ')[0]).toMatch(/^\d+$/);
      await strait.waitStat('filesystem.write_completed', (v) => v > 0);
    } finally {
      reader?.destroy();
      await strait.stop();
      await echo.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
