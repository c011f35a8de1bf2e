import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleCodec, exampleFrame, ExampleType } from '../../src/protocols/example/codec.js';
import { FrameKind, H } from '../../src/protocols/types.js';
import { createCa, issue, spiffe, type CertFiles, type TestCa } from '../helpers/certs.js';
import { connect, readAll } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';

interface Seen {
  sni: string | false;
  clientUri: string;
}

/**
 * A TLS upstream that requires a client certificate from the test CA, remembers the SNI and
 * client identity of each connection, and either echoes (raw) or answers example-codec calls.
 */
async function tlsUpstream(certs: CertFiles, ca: TestCa, mode: 'echo' | 'example'): Promise<{ port: number; seen: Seen[]; close(): void }> {
  const seen: Seen[] = [];
  const server = tls.createServer({ cert: certs.certPem, key: certs.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true }, (s) => {
    const peer = s.getPeerX509Certificate();
    seen.push({ sni: (s as tls.TLSSocket & { servername: string | false }).servername, clientUri: peer?.subjectAltName ?? '' });
    s.on('error', () => {});
    if (mode === 'echo') {
      s.pipe(s);
      return;
    }
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
        else s.write(exampleFrame(ExampleType.RESPONSE, h[H.ID_LO]!, 0, '', Buffer.from(`tls:${f.subarray(h[H.BODY_OFF]!)}`)));
      }
    });
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, seen, close: () => server.close() };
}

function tlsCluster(name: string, port: number, tlsContext: string): string {
  return `  - name: ${name}
    type: STATIC
    connect_timeout: 2s
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
${tlsContext}    load_assignment:
      cluster_name: ${name}
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }]
`;
}

describe.each(ENGINES)('upstream TLS on the %s engine', (engine) => {
  let dir: string;
  let ca: TestCa;
  let echo: Awaited<ReturnType<typeof tlsUpstream>>;
  let rpc: Awaited<ReturnType<typeof tlsUpstream>>;
  let strait: StraitProcess;

  beforeAll(async () => {
    dir = tmpDir('strait-utls-');
    ca = createCa(path.join(dir, 'ca'));
    const backend = issue(ca, 'backend', ['DNS:backend.example', spiffe('backend')]);
    const client = issue(ca, 'client', [spiffe('sidecar')]);
    echo = await tlsUpstream(backend, ca, 'echo');
    rpc = await tlsUpstream(backend, ca, 'example');
    const ctx = (san: string) => `        sni: backend.example
        common_tls_context:
          tls_certificate_sds_secret_configs: [{ name: client_cert }]
          validation_context:
            trusted_ca: { filename: "${ca.cert}" }
            match_typed_subject_alt_names:
            - { san_type: URI, matcher: { exact: "${san}" } }
`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  secrets:
  - name: client_cert
    tls_certificate:
      certificate_chain: { filename: "${client.cert}" }
      private_key: { filename: "${client.key}" }
  listeners:
  - name: good
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: good
          cluster: tls_ok
  - name: bad
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: bad
          cluster: tls_wrong_san
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
            routes: [ { match: {}, route: { cluster: tls_rpc } } ]
  clusters:
${tlsCluster('tls_ok', echo.port, ctx('spiffe://cluster.local/ns/default/sa/backend'))}${tlsCluster('tls_wrong_san', echo.port, ctx('spiffe://cluster.local/ns/default/sa/someone-else'))}${tlsCluster('tls_rpc', rpc.port, ctx('spiffe://cluster.local/ns/default/sa/backend'))}`,
      { engine },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    echo?.close();
    rpc?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('tcp_proxy originates mutual TLS with SNI and verifies the upstream identity', async () => {
    const s = await connect(await strait.port('good'));
    const got = readAll(s);
    s.end('over tls');
    expect((await got).toString()).toBe('over tls');
    expect(echo.seen.at(-1)).toEqual({ sni: 'backend.example', clientUri: 'URI:spiffe://cluster.local/ns/default/sa/sidecar' });
    expect(await strait.waitStat('cluster.tls_ok.ssl.handshake', (v) => v >= 1)).toBeGreaterThanOrEqual(1);
  });

  it('refuses an upstream whose certificate names another identity', async () => {
    const s = await connect(await strait.port('bad'));
    // The proxy closes the client without a byte (a reset, since the client's data is unread).
    const got = new Promise<number>((resolve) => {
      let n = 0;
      s.on('data', (d: Buffer) => (n += d.length));
      s.on('error', () => {});
      s.on('close', () => resolve(n));
    });
    s.end('must not arrive');
    expect(await got).toBe(0);
    expect(await strait.waitStat('cluster.tls_wrong_san.ssl.fail_verify_san', (v) => v >= 1)).toBe(1);
    expect(await strait.stat('cluster.tls_wrong_san.upstream_cx_connect_fail')).toBe(1);
  });

  it('rpc_proxy calls a TLS provider over its multiplexed connection', async () => {
    const s = await connect(await strait.port('rpc'));
    const replies: string[] = [];
    let buf = Buffer.alloc(0);
    const done = new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const h = new Int32Array(H.SIZE);
          exampleCodec.decodeHeader(buf, 0, buf.length, 1 << 20, h);
          if (h[H.STATE] !== 1) break;
          replies.push(buf.subarray(h[H.BODY_OFF]!, h[H.FRAME_LEN]!).toString());
          buf = buf.subarray(h[H.FRAME_LEN]!);
        }
        if (replies.length === 3) resolve();
      });
    });
    for (let i = 1; i <= 3; i++) s.write(exampleFrame(ExampleType.REQUEST, i, 0, 'service=com.example.Echo\nmethod=ping\n', Buffer.from(`m${i}`)));
    await done;
    s.destroy();
    expect(replies.sort()).toEqual(['tls:m1', 'tls:m2', 'tls:m3']);
    expect(rpc.seen).toHaveLength(1);
    expect(rpc.seen[0]!.clientUri).toBe('URI:spiffe://cluster.local/ns/default/sa/sidecar');
  });
});
