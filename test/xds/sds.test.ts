import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issue, spiffe, type CertFiles, type TestCa } from '../helpers/certs.js';
import { closeServer, echoServer, fetchTag } from '../helpers/net.js';
import { ADMIN, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, res, startXdsServer, writeResources, type XdsServerProcess } from '../helpers/xds.js';

type Obj = Record<string, any>;

const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
const ADS_SDS = '{ ads: {}, resource_api_version: V3 }';

/** A Secret resource (list entry) with a certificate and key, inline as a control plane sends them. */
function certSecret(name: string, c: { certPem: string; keyPem: string }): string {
  return `- "@type": ${SECRET_TYPE}
  name: ${name}
  tls_certificate:
    certificate_chain: { inline_string: ${JSON.stringify(c.certPem)} }
    private_key: { inline_string: ${JSON.stringify(c.keyPem)} }
`;
}

/** A TLS listener whose certificate is the SDS secret `secret` (from `sds`), forwarding to `cluster`. */
function sdsListener(name: string, cluster: string, secret: string, sds = ADS_SDS): string {
  return `- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ${name}
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
  filter_chains:
  - filters:
    - name: envoy.filters.network.tcp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
        stat_prefix: ${name}
        cluster: ${cluster}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
        common_tls_context:
          tls_certificate_sds_secret_configs: [{ name: ${secret}, sds_config: ${sds} }]
`;
}

/** An inbound mTLS listener as Istio writes it: certificate `default`, client CA `ROOTCA`, both over ADS. */
function inboundMtlsListener(name: string, cluster: string): string {
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
        require_client_certificate: true
        common_tls_context:
          tls_certificate_sds_secret_configs: [{ name: default, sds_config: ${ADS_SDS} }]
          combined_validation_context:
            default_validation_context:
              match_typed_subject_alt_names: [{ san_type: URI, matcher: { prefix: "spiffe://cluster.local/" } }]
            validation_context_sds_secret_config: { name: ROOTCA, sds_config: ${ADS_SDS} }
`;
}

/** A cluster doing mTLS with Istio's secret names: its client certificate `default`, its CA `ROOTCA`. */
function mtlsCluster(name: string, port: number): string {
  return `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: ${name}
  type: STATIC
  connect_timeout: 2s
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
      sni: backend.example
      common_tls_context:
        tls_certificate_sds_secret_configs: [{ name: default, sds_config: ${ADS_SDS} }]
        combined_validation_context:
          default_validation_context:
            match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "spiffe://cluster.local/ns/default/sa/backend" } }]
          validation_context_sds_secret_config: { name: ROOTCA, sds_config: ${ADS_SDS} }
  load_assignment:
    cluster_name: ${name}
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }]
`;
}

function serialOf(c: CertFiles): string {
  return new crypto.X509Certificate(c.certPem).serialNumber.toUpperCase();
}

/** An open TLS connection (trusting `ca`), with the serial of the certificate the server showed. */
async function tlsConnect(port: number, ca: TestCa): Promise<{ socket: tls.TLSSocket; serial: string }> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'front.example', checkServerIdentity: () => undefined });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  return { socket, serial: socket.getPeerCertificate().serialNumber.toUpperCase() };
}

/** The serial a new handshake sees; the connection is closed after. */
async function serialNow(port: number, ca: TestCa): Promise<string> {
  const { socket, serial } = await tlsConnect(port, ca);
  socket.destroy();
  return serial;
}

function roundTrip(s: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d;
      if (got.length >= text.length) {
        s.off('data', onData);
        resolve(got);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(text);
  });
}

async function configDump(s: StraitProcess): Promise<Obj[]> {
  return (JSON.parse((await s.get('/config_dump')).text) as { configs: Obj[] }).configs;
}

function section(configs: Obj[], kind: string): Obj {
  return configs.find((c) => String(c['@type']).endsWith(kind)) ?? {};
}

async function listenerNames(s: StraitProcess): Promise<string[]> {
  const j = JSON.parse((await s.get('/listeners?format=json')).text) as { listener_statuses: Array<{ name: string }> };
  return j.listener_statuses.map((l) => l.name);
}

/** A TLS upstream that asks for a client certificate from `ca` and writes back the serial it got. */
async function mtlsUpstream(cert: CertFiles, ca: TestCa): Promise<{ port: number; close(): Promise<void> }> {
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.on('error', () => {});
    s.resume();
    s.end(`client:${s.getPeerCertificate().serialNumber?.toUpperCase() ?? 'none'}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => closeServer(server) };
}

describe.each(['DELTA_GRPC', 'GRPC'] as const)('SDS over ADS (%s)', (apiType) => {
  let dir: string;
  let certs: string;
  let ca: TestCa;
  let v1: CertFiles;
  let v2: CertFiles;
  let v3: CertFiles;
  let client: CertFiles;
  let xs: XdsServerProcess;
  let strait: StraitProcess;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let backend: Awaited<ReturnType<typeof mtlsUpstream>>;

  beforeAll(async () => {
    dir = tmpDir('strait-sds-dir-');
    certs = tmpDir('strait-sds-certs-');
    ca = createCa(path.join(certs, 'ca'));
    v1 = issue(ca, 'front-v1', ['DNS:front.example']);
    v2 = issue(ca, 'front-v2', ['DNS:front.example']);
    v3 = issue(ca, 'front-v3', ['DNS:front.example']);
    client = issue(ca, 'sidecar', [spiffe('sidecar')]);
    const backendCert = issue(ca, 'backend', ['DNS:backend.example', spiffe('backend')]);
    echo = await echoServer();
    backend = await mtlsUpstream(backendCert, ca);
    // The listener and cluster first, no secret yet: the listener must wait for it.
    writeResources(dir, '0-listeners.yaml', [sdsListener('front', 'echo', 'front-cert')]);
    writeResources(dir, '1-clusters.yaml', [res.staticCluster('echo', echo.port)]);
    xs = await startXdsServer(dir);
    // A snapshot file of its own: the default one is shared by every test node on this machine.
    strait = await startStrait(adsBootstrap(xs.port, apiType), { args: ['--log-level', 'info', '--xds-snapshot', path.join(certs, 'snapshot.json')] });
  });

  afterAll(async () => {
    await strait?.stop();
    await xs?.stop();
    await Promise.all([echo?.close(), backend?.close()]);
    for (const d of [dir, certs]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('keeps a listener warming (not bound) until its secret arrives, then serves that certificate', async () => {
    const warming = await eventually(
      async () => section(await configDump(strait), 'SecretsConfigDump'),
      (s) => (s.dynamic_warming_secrets ?? []).some((w: Obj) => w.name === 'front-cert'),
      15_000,
      'secret front-cert warming',
    );
    expect(warming.dynamic_active_secrets).toEqual([]);
    expect(await listenerNames(strait)).not.toContain('front');
    const listeners = section(await configDump(strait), 'ListenersConfigDump');
    expect(listeners.dynamic_listeners.find((l: Obj) => l.name === 'front')).toMatchObject({ warming_state: { listener: { name: 'front' } } });

    writeResources(dir, '2-secrets.yaml', [certSecret('front-cert', v1)]);
    const port = await eventually(() => strait.port('front'), (p) => p > 0, 15_000, 'listener front active');
    const { socket, serial } = await tlsConnect(port, ca);
    expect(serial).toBe(serialOf(v1));
    expect(await roundTrip(socket, 'hello over sds')).toBe('hello over sds');
    socket.destroy();
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
  });

  it('shows the secret in /config_dump with its private key redacted', async () => {
    const text = (await strait.get('/config_dump')).text;
    const secrets = section(JSON.parse(text).configs, 'SecretsConfigDump');
    const s = secrets.dynamic_active_secrets.find((x: Obj) => x.name === 'front-cert');
    expect(s.secret.tls_certificate.private_key).toBe('[redacted]');
    expect(s.secret.tls_certificate.certificate_chain.inline_string).toBe(v1.certPem);
    expect(text).not.toContain(v1.keyPem.split('\n')[1]);
  });

  it('rotates: a new secret version reaches new handshakes while an open connection keeps going', async () => {
    const port = await strait.port('front');
    const old = await tlsConnect(port, ca);
    expect(old.serial).toBe(serialOf(v1));
    writeResources(dir, '2-secrets.yaml', [certSecret('front-cert', v2)]);
    await eventually(() => serialNow(port, ca), (s) => s === serialOf(v2), 15_000, 'new handshakes see v2');
    expect(await strait.port('front')).toBe(port);
    expect(await roundTrip(old.socket, 'still on v1')).toBe('still on v1');
    old.socket.destroy();
  });

  it('NACKs a secret whose key does not match its certificate, naming secret and field; the previous one keeps serving', async () => {
    const from = xs.logs.length;
    writeResources(dir, '2-secrets.yaml', [certSecret('front-cert', { certPem: v3.certPem, keyPem: v2.keyPem })]);
    const nack = await xs.waitLog((l) => l.msg === 'xds NACK' && /Secret/.test(String(l.error)), from);
    expect(nack.error).toContain('Secret "front-cert"');
    expect(nack.error).toContain('tls_certificate.private_key');
    expect(nack.error).toMatch(/does not match the certificate/);
    expect(await serialNow(await strait.port('front'), ca)).toBe(serialOf(v2));
    // Envoy's per-secret counters: the refused version is counted under the secret's name.
    const stats = (await strait.get('/stats')).text;
    expect(stats).toMatch(/^sds\.front-cert\.update_rejected: 1$/m);
    const successes = Number(/^sds\.front-cert\.update_success: (\d+)$/m.exec(stats)?.[1]);
    expect(successes).toBeGreaterThanOrEqual(2); // v1, then the rotation to v2
    // A good version afterwards is taken again.
    writeResources(dir, '2-secrets.yaml', [certSecret('front-cert', v3)]);
    await eventually(async () => serialNow(await strait.port('front'), ca), (s) => s === serialOf(v3), 15_000, 'v3 after the NACK');
    expect((await strait.get('/stats')).text).toMatch(/^sds\.front-cert\.update_rejected: 1$/m);
  });

  it('does mTLS upstream with a client certificate and CA from SDS (Istio names default and ROOTCA)', async () => {
    writeResources(dir, '1-clusters.yaml', [res.staticCluster('echo', echo.port), mtlsCluster('backend', backend.port)]);
    writeResources(dir, '0-listeners.yaml', [sdsListener('front', 'echo', 'front-cert'), res.tcpListener('to-backend', 'backend')]);
    // The cluster warms for its secrets up to initial_fetch_timeout (2 s here), then starts as
    // Envoy's does: its TLS connections fail until the secrets come.
    await eventually(
      async () => section(await configDump(strait), 'SecretsConfigDump'),
      (c) => ['default', 'ROOTCA'].every((n) => (c.dynamic_warming_secrets ?? []).some((x: Obj) => x.name === n)),
      15_000,
      'secrets default and ROOTCA requested',
    );
    await eventually(async () => strait.stderr, (t) => t.includes('TLS secrets still missing after initial_fetch_timeout'), 15_000, 'cluster backend started without its secrets');
    expect(await fetchTag(await eventually(() => strait.port('to-backend'), (p) => p > 0, 15_000, 'to-backend'))).toBe('');
    expect(await strait.stat('cluster.backend.ssl.connection_error')).toBeGreaterThanOrEqual(1);
    // ROOTCA as a single-resource JSON file: the server reads secrets in every file form.
    fs.writeFileSync(path.join(dir, '.3-rootca.json.tmp'), JSON.stringify({ '@type': SECRET_TYPE, name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: ca.certPem } } }));
    fs.renameSync(path.join(dir, '.3-rootca.json.tmp'), path.join(dir, '3-rootca.json'));
    writeResources(dir, '2-secrets.yaml', [certSecret('front-cert', v3), certSecret('default', client)]);
    const got = await eventually(async () => fetchTag(await strait.port('to-backend')), (t) => t.startsWith('client:'), 15_000, 'mTLS through backend');
    expect(got).toBe(`client:${serialOf(client)}`);
  });

  it('terminates inbound mTLS with the client CA from SDS: a client with a certificate of that CA passes, one without is refused', async () => {
    writeResources(dir, '0-listeners.yaml', [sdsListener('front', 'echo', 'front-cert'), res.tcpListener('to-backend', 'backend'), inboundMtlsListener('inbound', 'echo')]);
    const port = await eventually(() => strait.port('inbound'), (p) => p > 0, 15_000, 'listener inbound active');
    const withCert = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined });
    await new Promise<void>((resolve, reject) => {
      withCert.once('secureConnect', resolve);
      withCert.once('error', reject);
    });
    expect(withCert.getPeerCertificate().serialNumber.toUpperCase()).toBe(serialOf(client));
    expect(await roundTrip(withCert, 'mutual')).toBe('mutual');
    withCert.destroy();
    // Without a client certificate the handshake (or the connection right after it) is refused.
    const outcome = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, checkServerIdentity: () => undefined });
      const chunks: Buffer[] = [];
      s.on('secureConnect', () => s.write('anyone?'));
      s.on('data', (d) => chunks.push(d));
      s.on('error', () => {});
      s.on('close', () => resolve(chunks.length ? `data:${Buffer.concat(chunks)}` : 'closed'));
    });
    expect(outcome).toBe('closed');
  });

  it('persists the secrets with the snapshot: a restart while the control plane is down still serves TLS', async () => {
    // Let the coalesced snapshot write happen, then take the control plane away.
    await eventually(async () => fs.readFileSync(path.join(certs, 'snapshot.json'), 'utf8'), (t) => t.includes('front-cert') && t.includes('inbound'), 15_000, 'snapshot with secrets');
    await xs.stop();
    await strait.stop();
    strait = await startStrait(adsBootstrap(xs.port, apiType), { args: ['--log-level', 'info', '--xds-snapshot', path.join(certs, 'snapshot.json')] });
    const port = await eventually(() => strait.port('front'), (p) => p > 0, 20_000, 'front from the snapshot');
    expect(await serialNow(port, ca)).toBe(serialOf(v3));
    expect(strait.stderr).toContain('serving the persisted snapshot');
  });
});

describe('file-based SDS (path_config_source)', () => {
  let work: string;
  let ca: TestCa;
  let v1: CertFiles;
  let v2: CertFiles;
  let secretFile: string;
  let strait: StraitProcess;
  let echo: Awaited<ReturnType<typeof echoServer>>;

  /** Writes the secret file the way a Kubernetes mount rotates it: aside, then renamed over. */
  function writeSecretFile(body: string): void {
    const tmp = path.join(path.dirname(secretFile), '.secret.yaml.tmp');
    fs.writeFileSync(tmp, `resources:\n${body}`);
    fs.renameSync(tmp, secretFile);
  }

  beforeAll(async () => {
    work = tmpDir('strait-sds-file-');
    ca = createCa(path.join(work, 'ca'));
    v1 = issue(ca, 'file-v1', ['DNS:front.example']);
    v2 = issue(ca, 'file-v2', ['DNS:front.example']);
    fs.mkdirSync(path.join(work, 'sds'));
    secretFile = path.join(work, 'sds', 'secret.yaml');
    writeSecretFile(certSecret('default', v1));
    echo = await echoServer();
    const listener = `  - name: front
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: front, cluster: echo }
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs:
            - name: default
              sds_config: { path_config_source: { path: "${secretFile}" }, resource_api_version: V3 }
`;
    strait = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${listener}  clusters:\n${staticCluster('echo', [echo.port])}`, { args: ['--log-level', 'info'] });
  });

  afterAll(async () => {
    await strait?.stop();
    await echo?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('serves the certificate from the file and follows its rotation; a bad file keeps the previous one', async () => {
    const port = await strait.port('front');
    const old = await tlsConnect(port, ca);
    expect(old.serial).toBe(serialOf(v1));
    writeSecretFile(certSecret('default', v2));
    await eventually(() => serialNow(port, ca), (s) => s === serialOf(v2), 15_000, 'new handshakes see the rotated file');
    expect(await roundTrip(old.socket, 'kept')).toBe('kept');
    old.socket.destroy();

    // A key that is not the certificate's: refused, v2 keeps serving.
    writeSecretFile(certSecret('default', { certPem: v1.certPem, keyPem: v2.keyPem }));
    await eventually(async () => (await strait.get('/config_dump')).text, () => /does not match the certificate/.test(strait.stderr), 15_000, 'bad file reported');
    // The log names the file, the secret and the field at fault.
    expect(strait.stderr).toContain('"field":"resources[0].tls_certificate.private_key.inline_string"');
    expect(strait.stderr).toContain('secret \\"default\\": does not match the certificate');
    expect(await serialNow(port, ca)).toBe(serialOf(v2));
    const stats = (await strait.get('/stats')).text;
    expect(stats).toMatch(/^sds\.default\.update_success: 2$/m); // the first read and the rotation
    expect(stats).toMatch(/^sds\.default\.update_rejected: 1$/m);

    const secrets = section(await configDump(strait), 'SecretsConfigDump');
    const s = secrets.dynamic_active_secrets.find((x: Obj) => x.name === 'default');
    expect(s.secret.tls_certificate.private_key).toBe('[redacted]');
    expect(s.secret.tls_certificate.certificate_chain.inline_string).toBe(v2.certPem);
  });
});
