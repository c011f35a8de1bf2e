import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleCodec, exampleFrame, ExampleType } from '../../src/protocols/example/codec.js';
import { H } from '../../src/protocols/types.js';
import { createCa, issue, spiffe, type CertFiles, type TestCa } from '../helpers/certs.js';
import { closeServer, connect } from '../helpers/net.js';
import { ADMIN, ENGINES, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

const RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';

/** A network RBAC filter (YAML at the filters list indentation) with the given typed_config body. */
function rbac(body: string): string {
  return `      - name: envoy.filters.network.rbac
        typed_config:
          "@type": ${RBAC_TYPE}
${body
  .trim()
  .split('\n')
  .map((l) => `          ${l}`)
  .join('\n')}
`;
}

const tcpProxy = (prefix: string, cluster: string) => `      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${prefix}
          cluster: ${cluster}
`;

/** Writes its tag and closes, counting the connections that reached it. */
async function tagServer(tag: string): Promise<{ port: number; readonly connections: number; close(): Promise<void> }> {
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.on('error', () => {});
    s.resume();
    s.end(tag);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    close: () => closeServer(server),
  };
}

/** Everything the server sent until the connection ended, however it ended. */
function drain(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.on('error', () => {});
    // Test clients half-open (allowHalfOpen): the server's FIN is the end.
    s.on('end', () => {
      resolve(out);
      s.destroy();
    });
    s.on('close', () => resolve(out));
  });
}

async function plainFetch(port: number): Promise<string> {
  const s = await connect(port);
  return drain(s);
}

/** A TLS client with `cert`; resolves with what the server sent ('' when refused after the handshake). */
async function tlsFetch(port: number, ca: TestCa, cert: CertFiles): Promise<string> {
  const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, cert: cert.certPem, key: cert.keyPem, servername: 'server.example' });
  return drain(s);
}

describe.each(ENGINES.slice(0, 1))('network RBAC on the %s engine', (engine) => {
  let tag: Awaited<ReturnType<typeof tagServer>>;
  let guarded: Awaited<ReturnType<typeof tagServer>>;
  let rpcUp: net.Server;
  let strait: StraitProcess;
  let ca: TestCa;
  let web: CertFiles;
  let db: CertFiles;
  let dir: string;

  beforeAll(async () => {
    dir = tmpDir('strait-rbac-');
    ca = createCa(path.join(dir, 'ca'));
    const server = issue(ca, 'server', ['DNS:server.example']);
    web = issue(ca, 'web', [spiffe('web')]);
    db = issue(ca, 'db', [spiffe('db')]);
    tag = await tagServer('T');
    guarded = await tagServer('G');
    // An example-protocol provider answering every call with `ok:<method>`.
    rpcUp = net.createServer((s) => {
      s.on('error', () => {});
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const h = new Int32Array(H.SIZE);
          exampleCodec.decodeHeader(buf, 0, buf.length, 1 << 20, h);
          if (h[H.STATE] !== 1) return;
          const method = buf.toString('utf8', h[H.METHOD_OFF]!, h[H.METHOD_OFF]! + h[H.METHOD_LEN]!);
          s.write(exampleFrame(ExampleType.RESPONSE, h[H.ID_LO]!, 0, '', Buffer.from(`ok:${method}`)));
          buf = buf.subarray(h[H.FRAME_LEN]!);
        }
      });
    });
    await new Promise<void>((r) => rpcUp.listen(0, '127.0.0.1', r));
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: open
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
${rbac(`
stat_prefix: open.
rules:
  action: ALLOW
  policies:
    loopback:
      permissions: [{ any: true }]
      principals: [{ remote_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }]
shadow_rules_stat_prefix: dry_
shadow_rules:
  action: DENY
  policies:
    everyone:
      permissions: [{ any: true }]
      principals: [{ any: true }]
`)}${tcpProxy('open', 'tag')}
  - name: closed
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
${rbac(`
stat_prefix: closed
rules:
  action: DENY
  policies:
    no-loopback:
      permissions: [{ not_rule: { destination_port: 1 } }]
      principals: [{ direct_remote_ip: { address_prefix: 127.0.0.1, prefix_len: 32 } }]
`)}${tcpProxy('closed', 'guarded')}
  - name: mesh
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: "${server.cert}" }
              private_key: { filename: "${server.key}" }
            validation_context:
              trusted_ca: { filename: "${ca.cert}" }
      filters:
${rbac(`
stat_prefix: mesh
rules:
  policies:
    web-only:
      permissions: [{ any: true }]
      principals: [{ authenticated: { principal_name: { exact: "spiffe://cluster.local/ns/default/sa/web" } } }]
`)}${tcpProxy('mesh', 'tag')}
  - name: rpc
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
${rbac(`
stat_prefix: rpc
rules:
  action: DENY
  policies:
    no-admin-writes:
      permissions:
      - and_rules:
          rules:
          - metadata: { filter: strait.filters.network.rpc_proxy, path: [{ key: interface }], value: { string_match: { exact: com.example.Admin } } }
          - metadata: { filter: strait.filters.network.rpc_proxy, path: [{ key: method }], value: { string_match: { prefix: drop } } }
      principals: [{ any: true }]
`)}      - name: strait.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
          stat_prefix: rpc
          codec: example
          route_config:
          - interface: com.example.Admin
            routes: [ { match: {}, route: { cluster: rpc_up } } ]
  clusters:
${staticCluster('tag', [tag.port])}${staticCluster('guarded', [guarded.port])}${staticCluster('rpc_up', [(rpcUp.address() as net.AddressInfo).port])}`,
      { engine },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    await tag?.close();
    await guarded?.close();
    if (rpcUp) await closeServer(rpcUp);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lets allowed connections through and counts shadow denials without enforcing them', async () => {
    expect(await plainFetch(await strait.port('open'))).toBe('T');
    expect(await strait.waitStat('open.rbac.allowed', (v) => v === 1)).toBe(1);
    expect(await strait.stat('open.rbac.dry_shadow_denied')).toBe(1);
    expect(await strait.stat('open.rbac.denied')).toBe(0);
  });

  it('closes denied connections before the terminal filter connects upstream', async () => {
    expect(await plainFetch(await strait.port('closed'))).toBe('');
    expect(await strait.waitStat('closed.rbac.denied', (v) => v === 1)).toBe(1);
    expect(guarded.connections).toBe(0);
    const prom = (await strait.get('/stats/prometheus')).text;
    expect(prom).toContain('envoy_closed_rbac_denied 1');
  });

  it('admits mTLS peers by their SPIFFE identity only', async () => {
    const port = await strait.port('mesh');
    expect(await tlsFetch(port, ca, web)).toBe('T');
    expect(await tlsFetch(port, ca, db)).toBe('');
    expect(await strait.waitStat('mesh.rbac.denied', (v) => v === 1)).toBe(1);
    expect(await strait.stat('mesh.rbac.allowed')).toBe(1);
  });

  it('judges each RPC call by interface and method and closes the connection on a denied one', async () => {
    const port = await strait.port('rpc');
    const call = async (s: net.Socket, id: number, method: string) => {
      const got = new Promise<string>((resolve) => {
        let buf = Buffer.alloc(0);
        const onData = (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          const h = new Int32Array(H.SIZE);
          exampleCodec.decodeHeader(buf, 0, buf.length, 1 << 20, h);
          if (h[H.STATE] !== 1) return;
          s.off('data', onData);
          resolve(buf.subarray(h[H.BODY_OFF]!, h[H.FRAME_LEN]!).toString());
        };
        s.on('data', onData);
      });
      s.write(exampleFrame(ExampleType.REQUEST, id, 0, `service=com.example.Admin\nmethod=${method}\n`, Buffer.from('x')));
      return got;
    };
    const s = await connect(port);
    expect(await call(s, 1, 'list')).toBe('ok:list');
    // Nothing answers the denied call: the connection just ends.
    const closed = drain(s);
    s.write(exampleFrame(ExampleType.REQUEST, 2, 0, 'service=com.example.Admin\nmethod=dropAll\n', Buffer.from('x')));
    expect(await closed).toBe('');
    expect(await strait.waitStat('rpc.rbac.denied', (v) => v === 1)).toBe(1);
    expect(await strait.stat('rpc.rbac.allowed')).toBe(1);
    // The allowed call was timed (rpc_proxy's request_time_ms histogram).
    expect((await strait.get('/stats/prometheus')).text).toContain('envoy_rpc_request_time_ms_count{envoy_rpc_prefix="rpc"} 1\n');
  });

  it('refuses RPC metadata rules in front of a non-RPC terminal filter, naming the filter', async () => {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(
      file,
      `static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
${rbac(`
stat_prefix: x
rules:
  policies:
    p:
      permissions: [{ metadata: { filter: strait.filters.network.rpc_proxy, path: [{ key: method }], value: { string_match: { exact: a } } } }]
      principals: [{ any: true }]
`)}${tcpProxy('l', 'tag')}
  clusters:
${staticCluster('tag', [tag.port])}`,
    );
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('static_resources.listeners[0].filter_chains[0].filters[0]');
    expect(r.stderr + r.stdout).toContain('RPC metadata');
  });
});
