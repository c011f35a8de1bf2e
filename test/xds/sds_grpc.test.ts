import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SDS_SOTW_METHOD, SECRET_TYPE, type DiscoveryRequest, type DiscoveryResponse } from '../../src/xds/proto.js';
import { encodeAny } from '../../src/xds/resources.js';
import { createCa, issue, type CertFiles, type TestCa } from '../helpers/certs.js';
import { echoServer } from '../helpers/net.js';
import { startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, res, startXdsServer, writeResources, type XdsServerProcess } from '../helpers/xds.js';

type Obj = Record<string, any>;

/**
 * A stand-alone SDS server as Istio's pilot-agent runs one: SecretDiscoveryService/StreamSecrets
 * on a unix socket, secrets by name, a push to every stream when one changes. Records NACKs.
 */
class SdsServer {
  readonly nacks: string[] = [];
  readonly requested = new Set<string>();
  private readonly secrets = new Map<string, Obj>();
  private readonly streams = new Set<{ call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>; names: string[] }>();
  private readonly server = new grpc.Server();
  private version = 0;

  constructor(readonly socket: string) {
    this.server.addService({ StreamSecrets: SDS_SOTW_METHOD } as unknown as grpc.ServiceDefinition, {
      StreamSecrets: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        const st = { call, names: [] as string[] };
        this.streams.add(st);
        call.on('data', (req: DiscoveryRequest) => {
          if (req.error_detail) this.nacks.push(req.error_detail.message);
          const names = req.resource_names ?? [];
          for (const n of names) this.requested.add(n);
          const changed = names.join('\n') !== st.names.join('\n');
          st.names = names;
          // The first request and every change of names get a response; ACKs and NACKs do not.
          if (!req.response_nonce || changed) this.send(st);
        });
        call.on('error', () => {});
        call.on('end', () => {
          this.streams.delete(st);
          call.end();
        });
      },
    });
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => this.server.bindAsync(`unix:${this.socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  }

  set(name: string, value: Obj): void {
    this.secrets.set(name, value);
    this.version++;
    for (const st of this.streams) this.send(st);
  }

  private send(st: { call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>; names: string[] }): void {
    const resources = st.names.flatMap((n) => (this.secrets.has(n) ? [encodeAny(SECRET_TYPE, { name: n, ...this.secrets.get(n)! })] : []));
    st.call.write({ version_info: String(this.version), resources, type_url: SECRET_TYPE, nonce: crypto.randomUUID() });
  }

  close(): void {
    this.server.forceShutdown();
  }
}

/** Istio's static `sds-grpc` cluster: HTTP/2 to the agent's unix socket (a static_resources.clusters entry). */
function sdsGrpcCluster(socket: string): string {
  return `  - name: sds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: sds-grpc
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: ${JSON.stringify(socket)} } } } }] }]
`;
}

const certValue = (c: { certPem: string; keyPem: string }) => ({ tls_certificate: { certificate_chain: { inline_string: c.certPem }, private_key: { inline_string: c.keyPem } } });

/** Istio's reference to its agent's SDS: api_config_source GRPC to the static cluster sds-grpc. */
const ISTIO_SDS = '{ api_config_source: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: sds-grpc } }] }, resource_api_version: V3 }';

function listener(name: string, cluster: string): string {
  return `- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ${name}
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
  filter_chains:
  - filters:
    - name: envoy.filters.network.tcp_proxy
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: ${name}, cluster: ${cluster} }
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
        common_tls_context:
          tls_certificate_sds_secret_configs: [{ name: default, sds_config: ${ISTIO_SDS} }]
`;
}

async function serialNow(port: number, ca: TestCa): Promise<string> {
  const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, checkServerIdentity: () => undefined });
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
  });
  const serial = s.getPeerCertificate().serialNumber.toUpperCase();
  s.destroy();
  return serial;
}

const serialOf = (c: CertFiles) => new crypto.X509Certificate(c.certPem).serialNumber.toUpperCase();

describe('SDS from a stand-alone gRPC service (Istio sds-grpc on a unix socket)', () => {
  let dir: string;
  let work: string;
  let ca: TestCa;
  let v1: CertFiles;
  let v2: CertFiles;
  let sds: SdsServer;
  let xs: XdsServerProcess;
  let strait: StraitProcess;
  let echo: Awaited<ReturnType<typeof echoServer>>;

  beforeAll(async () => {
    dir = tmpDir('strait-sdsg-dir-');
    work = tmpDir('strait-sdsg-');
    ca = createCa(path.join(work, 'ca'));
    v1 = issue(ca, 'w-v1', ['DNS:w.example']);
    v2 = issue(ca, 'w-v2', ['DNS:w.example']);
    sds = new SdsServer(path.join(work, 'sds.sock'));
    await sds.start();
    echo = await echoServer();
    writeResources(dir, '0-listeners.yaml', [listener('inbound', 'echo')]);
    writeResources(dir, '1-clusters.yaml', [res.staticCluster('echo', echo.port)]);
    xs = await startXdsServer(dir);
    const sdsCluster = sdsGrpcCluster(sds.socket);
    strait = await startStrait(adsBootstrap(xs.port, 'DELTA_GRPC', 'test-node', sdsCluster), { args: ['--log-level', 'info', '--xds-snapshot', path.join(work, 'snapshot.json')] });
  });

  afterAll(async () => {
    await strait?.stop();
    await xs?.stop();
    sds?.close();
    await echo?.close();
    for (const d of [dir, work]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('asks the SDS service for the secret, warms until it comes, serves it, rotates it, and NACKs a bad one', async () => {
    await eventually(async () => sds.requested.has('default'), (v) => v, 15_000, 'secret default requested over StreamSecrets');
    expect(JSON.parse((await strait.get('/listeners?format=json')).text).listener_statuses.map((l: Obj) => l.name)).not.toContain('inbound');

    sds.set('default', certValue(v1));
    const port = await eventually(() => strait.port('inbound'), (p) => p > 0, 15_000, 'listener inbound active');
    expect(await serialNow(port, ca)).toBe(serialOf(v1));

    sds.set('default', certValue(v2));
    await eventually(() => serialNow(port, ca), (s) => s === serialOf(v2), 15_000, 'rotated to v2');

    sds.set('default', certValue({ certPem: v1.certPem, keyPem: v2.keyPem }));
    await eventually(async () => sds.nacks.length, (n) => n > 0, 15_000, 'NACK from strait');
    expect(sds.nacks[0]).toContain('Secret "default": tls_certificate.private_key.inline_string: does not match the certificate');
    expect(await serialNow(port, ca)).toBe(serialOf(v2));
    // The ADS stream never carried it: nothing about secrets was NACKed there.
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
  });
});

/**
 * SPIRE's Envoy configurations, and Istio's own secure metrics listener: static listeners and
 * clusters whose certificates come from a gRPC SDS service, with no control plane at all.
 */
describe('SDS from a gRPC service for static listeners and clusters (no dynamic_resources)', () => {
  let work: string;
  let ca: TestCa;
  let v1: CertFiles;
  let v2: CertFiles;
  let client: CertFiles;
  let sds: SdsServer;
  let strait: StraitProcess;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let tlsUp: tls.Server;
  let upSerials: string[];

  beforeAll(async () => {
    work = tmpDir('strait-sds-static-');
    ca = createCa(path.join(work, 'ca'));
    v1 = issue(ca, 's-v1', ['DNS:s.example']);
    v2 = issue(ca, 's-v2', ['DNS:s.example']);
    client = issue(ca, 'proxy-client', ['URI:spiffe://example.org/proxy']);
    sds = new SdsServer(path.join(work, 'sds.sock'));
    await sds.start();
    echo = await echoServer();
    // An upstream that wants a client certificate: the static cluster presents the SDS one.
    upSerials = [];
    const up = issue(ca, 'upstream', ['DNS:up.example']);
    tlsUp = tls.createServer({ cert: up.certPem, key: up.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
      upSerials.push(s.getPeerCertificate().serialNumber.toUpperCase());
      s.end('up\n');
    });
    await new Promise<void>((r) => tlsUp.listen(0, '127.0.0.1', r));
    const upPort = (tlsUp.address() as net.AddressInfo).port;
    const sdsRef = (name: string) => `[{ name: ${name}, sds_config: ${ISTIO_SDS} }]`;
    strait = await startStrait(
      `admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
node: { id: spire-node, cluster: c }
static_resources:
  listeners:
  - name: inbound
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters: [{ name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: in, cluster: echo } }]
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context: { tls_certificate_sds_secret_configs: ${sdsRef('server')} }
  - name: outbound
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters: [{ name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: out, cluster: up } }]
  clusters:
  - name: echo
    type: STATIC
    load_assignment: { cluster_name: echo, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${echo.port} } } } }] }] }
  - name: up
    type: STATIC
    load_assignment: { cluster_name: up, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${upPort} } } } }] }] }
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: up.example
        common_tls_context:
          tls_certificate_sds_secret_configs: ${sdsRef('client')}
          validation_context: { trusted_ca: { filename: ${JSON.stringify(ca.cert)} } }
${sdsGrpcCluster(sds.socket)}`,
      { waitReady: false },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    sds?.close();
    await echo?.close();
    tlsUp?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('asks for the secrets, holds start-up until they come, then serves, presents and rotates them', async () => {
    await eventually(async () => sds.requested.has('server') && sds.requested.has('client'), (v) => v, 15_000, 'both secrets requested');
    // Start-up waits for them (Envoy's init manager), up to initial_fetch_timeout.
    await strait.waitAdmin();
    expect((await strait.get('/ready')).status).toBe(503);

    sds.set('server', certValue(v1));
    sds.set('client', certValue(client));
    await strait.waitReady();
    const port = await strait.port('inbound');
    expect(await serialNow(port, ca)).toBe(serialOf(v1));
    expect(Number(await strait.stat('sds.server.update_success'))).toBeGreaterThanOrEqual(1);

    // The static cluster presents the client certificate SDS gave it.
    const out = await strait.port('outbound');
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(out, '127.0.0.1');
      let d = '';
      s.on('data', (b) => (d += b));
      s.on('end', () => resolve(d));
      s.on('error', reject);
    });
    expect(got).toBe('up\n');
    expect(upSerials).toEqual([serialOf(client)]);

    sds.set('server', certValue(v2));
    await eventually(() => serialNow(port, ca), (s) => s === serialOf(v2), 15_000, 'rotated to v2');
  });
});
