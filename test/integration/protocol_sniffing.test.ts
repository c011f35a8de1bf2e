// One port for HTTP and RPC: the http_inspector tells HTTP/1.1 and h2c from everything else by
// the first bytes, filter chains pick http_connection_manager for HTTP and rpc_proxy (AUTO:
// Bolt, Dubbo, Thrift) for the rest, as MOSN's protocol auto-detection does.
import { execFile } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import type net from 'node:net';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sniffHttp } from '../../src/tls/downstream.js';
import { ADMIN, ENGINES, REPO, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const { startDubboProvider } = require(path.join(REPO, 'test/fixtures/rpc/dubbo_provider.cjs'));
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

function run(file: string, args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [path.join(REPO, 'test/fixtures/rpc', file), ...args], { timeout: 20_000 }, (err, out, stderr) => (err ? reject(new Error(stderr)) : resolve(JSON.parse(out)))),
  );
}

describe('sniffHttp', () => {
  it('tells HTTP request lines and the h2 preface from RPC frames', () => {
    expect(sniffHttp(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n'))).toBe('http/1.1');
    expect(sniffHttp(Buffer.from('POST /a HTTP/1.0\r\n'))).toBe('http/1.0');
    expect(sniffHttp(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'))).toBe('h2c');
    expect(sniffHttp(Buffer.from('GET /long/path/not/ended'))).toBe('need_more');
    expect(sniffHttp(Buffer.from([0x01, 0x01, 0x00, 0x01]))).toBeNull(); // Bolt
    expect(sniffHttp(Buffer.from([0xda, 0xbb, 0xc2]))).toBeNull(); // Dubbo
    expect(sniffHttp(Buffer.from('GET / SPDY/3\r\n'))).toBeNull();
  });
});

describe.each(ENGINES)('HTTP and RPC on one port (http_inspector) on the %s engine', (engine) => {
  let web: http.Server;
  let sofa: any;
  let dubbo: any;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    web = http.createServer((req, res) => res.end(`web ${req.url}`));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    sofa = new RpcServer({ logger: quiet, port: 0 });
    sofa.addService({ interfaceName: 'com.example.Bolt', version: '1.0' }, { hello: async (n: string) => `bolt ${n}` });
    await sofa.start();
    dubbo = await startDubboProvider({ interface: 'com.example.Dubbo', version: '1.0.0', name: 'dubbo', methods: ['hello'] });
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: mixed
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }
    filter_chains:
    - filter_chain_match: { application_protocols: [http/1.1, http/1.0, h2c] }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: web } } ] } ]
          http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
    - filters:
      - name: strait.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
          stat_prefix: rpc
          protocol: AUTO
          route_config:
          - interface: com.example.Bolt
            routes: [ { match: {}, route: { cluster: bolt } } ]
          - interface: com.example.Dubbo
            routes: [ { match: {}, route: { cluster: dubbo } } ]
  clusters:
${staticCluster('web', [(web.address() as net.AddressInfo).port])}${staticCluster('bolt', [sofa._servers[0].address().port])}${staticCluster('dubbo', [dubbo.port])}`,
      { engine },
    );
    port = await strait.port('mixed');
  });

  afterAll(async () => {
    await strait?.stop();
    web?.close();
    await sofa?.close();
    await dubbo?.close();
  });

  it('serves HTTP/1.1, h2c, Bolt and Dubbo clients on the same port', async () => {
    const r = await request(`http://127.0.0.1:${port}/one`);
    expect([r.statusCode, await r.body.text()]).toEqual([200, 'web /one']);
    const h2 = http2.connect(`http://127.0.0.1:${port}`);
    const body = await new Promise<string>((resolve, reject) => {
      const s = h2.request({ ':path': '/two' });
      let t = '';
      s.on('data', (d) => (t += d));
      s.on('end', () => resolve(t));
      s.on('error', reject);
    });
    h2.close();
    expect(body).toBe('web /two');
    expect(await run('bolt_client.cjs', [String(port), 'com.example.Bolt', '1.0', 'hello', '1', 'b'])).toEqual([{ ok: true, value: 'bolt b-0' }]);
    expect(await run('dubbo_client.cjs', [String(port), 'com.example.Dubbo', '1.0.0', '-', 'hello', '1', 'd'])).toEqual([{ ok: true, value: 'dubbo:hello:d-0' }]);
    expect(await strait.stat('http.web.downstream_rq_total')).toBe(2);
    expect(await strait.stat('rpc.rpc.request')).toBe(2);
  });
});
