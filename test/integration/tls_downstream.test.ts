import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issue, spiffe, type CertFiles, type TestCa } from '../helpers/certs.js';
import { closeServer, echoServer, readAll } from '../helpers/net.js';
import { ADMIN, ENGINES, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

const TCP_PROXY = (prefix: string, cluster: string) => `      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${prefix}
          cluster: ${cluster}
`;

function tlsSocket(certs: CertFiles, extra: string, indent = '      '): string {
  return `transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
    common_tls_context:
      tls_certificates:
      - certificate_chain: { filename: "${certs.cert}" }
        private_key: { filename: "${certs.key}" }
${extra}`
    .split('\n')
    .map((l) => (l ? indent + l : l))
    .join('\n');
}

/**
 * Writes its tag and closes; reads (and drops) what the client sends, so a connection whose
 * client wrote first still ends and the server can close.
 */
async function tagServer(tag: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.resume();
    s.end(tag);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => closeServer(server) };
}

/** Connects with TLS and returns what the server wrote before closing, plus the handshake facts. */
async function tlsExchange(port: number, opts: tls.ConnectionOptions, send = ''): Promise<{ data: string; peer: tls.PeerCertificate; alpn: string | false }> {
  const s = tls.connect({ host: '127.0.0.1', port, ...opts });
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
  });
  const peer = s.getPeerCertificate();
  const alpn = s.alpnProtocol ?? false;
  const got = readAll(s);
  s.end(send);
  return { data: (await got).toString(), peer, alpn };
}

/** Resolves with how a TLS connection ended: 'data:<text>' or 'closed' (refused after or during the handshake). */
async function tlsOutcome(port: number, opts: tls.ConnectionOptions, send: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...opts });
    const chunks: Buffer[] = [];
    s.on('secureConnect', () => s.end(send));
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve(chunks.length ? `data:${Buffer.concat(chunks)}` : 'closed'));
  });
}

describe.each(ENGINES)('downstream TLS on the %s engine', (engine) => {
  let dir: string;
  let ca: TestCa;
  let otherCa: TestCa;
  let server: CertFiles;
  let foo: CertFiles;
  let bar: CertFiles;
  let stranger: CertFiles;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let tagA: Awaited<ReturnType<typeof tagServer>>;
  let tagB: Awaited<ReturnType<typeof tagServer>>;
  let tagW: Awaited<ReturnType<typeof tagServer>>;
  let tagPlain: Awaited<ReturnType<typeof tagServer>>;
  let strait: StraitProcess;

  beforeAll(async () => {
    dir = tmpDir('strait-tls-');
    ca = createCa(path.join(dir, 'ca'));
    otherCa = createCa(path.join(dir, 'other'), 'other-ca');
    server = issue(ca, 'server', ['DNS:a.example', 'DNS:b.example', 'DNS:*.wild.example', spiffe('proxy')]);
    foo = issue(ca, 'foo', [spiffe('foo')]);
    bar = issue(ca, 'bar', [spiffe('bar', 'other')]);
    stranger = issue(otherCa, 'stranger', [spiffe('foo')]);
    echo = await echoServer();
    tagA = await tagServer('A');
    tagB = await tagServer('B');
    tagW = await tagServer('W');
    tagPlain = await tagServer('PLAIN');
    const mtls = `    require_client_certificate: true
    common_tls_context:
      validation_context:
        trusted_ca: { filename: "${ca.cert}" }
        match_typed_subject_alt_names:
        - san_type: URI
          matcher: { prefix: "spiffe://cluster.local/ns/default/" }
`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: terminate
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - ${tlsSocket(server, '      alpn_protocols: [h2, http/1.1]\n').trimStart()}
${TCP_PROXY('terminate', 'echo')}
  - name: sni
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }
    filter_chains:
    - filter_chain_match: { server_names: [a.example], transport_protocol: tls }
      ${tlsSocket(server, '').trimStart()}
${TCP_PROXY('sni_a', 'tag_a')}
    - filter_chain_match: { server_names: [b.example], transport_protocol: tls }
      ${tlsSocket(server, '').trimStart()}
${TCP_PROXY('sni_b', 'tag_b')}
    - filter_chain_match: { server_names: ["*.wild.example"], transport_protocol: tls }
      ${tlsSocket(server, '').trimStart()}
${TCP_PROXY('sni_w', 'tag_w')}
    - filter_chain_match: { transport_protocol: raw_buffer }
${TCP_PROXY('sni_plain', 'tag_plain')}
  - name: mtls
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
${mtls
  .split('\n')
  .map((l) => (l ? `      ${l}` : l))
  .join('\n')}            tls_certificate_sds_secret_configs: [{ name: server_cert }]
${TCP_PROXY('mtls', 'echo')}
  secrets:
  - name: server_cert
    tls_certificate:
      certificate_chain: { inline_string: ${JSON.stringify(server.certPem)} }
      private_key: { inline_string: ${JSON.stringify(server.keyPem)} }
  clusters:
${staticCluster('echo', [echo.port])}
${staticCluster('tag_a', [tagA.port])}
${staticCluster('tag_b', [tagB.port])}
${staticCluster('tag_w', [tagW.port])}
${staticCluster('tag_plain', [tagPlain.port])}`,
      { engine },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    await Promise.all([echo?.close(), tagA?.close(), tagB?.close(), tagW?.close(), tagPlain?.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('terminates TLS, proxies the plaintext and negotiates ALPN', async () => {
    const port = await strait.port('terminate');
    const payload = crypto.randomBytes(256 * 1024).toString('base64');
    const r = await tlsExchange(port, { ca: ca.certPem, servername: 'a.example', ALPNProtocols: ['h2'] }, payload);
    expect(r.data.length).toBe(payload.length);
    expect(r.data === payload).toBe(true);
    expect(r.alpn).toBe('h2');
    expect(r.peer.subject.CN).toBe('server');
    const stat = `listener.127.0.0.1_${port}.ssl.handshake`;
    expect(await strait.waitStat(stat, (v) => v >= 1)).toBeGreaterThanOrEqual(1);
  });

  it('keeps serving handshakes while hundreds of clients stall inside theirs', async () => {
    const port = await strait.port('terminate');
    // A handshake flood: each client sends a TLS record header announcing 16 KiB and then
    // nothing, so the server waits on every one of them at once.
    const flood: net.Socket[] = [];
    for (let i = 0; i < 300; i++) {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      flood.push(c);
    }
    await Promise.all(flood.map((c) => new Promise<void>((r) => (c.connecting ? c.once('connect', () => r()) : r()))));
    for (const c of flood) c.write(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00]));
    const r = await tlsExchange(port, { ca: ca.certPem, servername: 'a.example' }, 'through the flood');
    expect(r.data).toBe('through the flood');
    // Served while every flooding client was still stuck in its handshake.
    expect(flood.filter((c) => c.destroyed || c.readableEnded).length).toBe(0);
    for (const c of flood) c.destroy();
  });

  it('refuses a plaintext client on a TLS-only chain', async () => {
    const port = await strait.port('terminate');
    const s = net.connect(port, '127.0.0.1');
    const got = readAll(s);
    s.end('GET / HTTP/1.0\r\n\r\n');
    // The bytes are not a ClientHello: the handshake fails, nothing reaches the upstream.
    expect((await got).toString()).not.toContain('GET /');
    await strait.waitStat(`listener.127.0.0.1_${port}.ssl.connection_error`, (v) => v >= 1);
  });

  it('selects the filter chain by SNI (exact and wildcard) and by transport protocol', async () => {
    const port = await strait.port('sni');
    const a = await tlsExchange(port, { ca: ca.certPem, servername: 'a.example' });
    const b = await tlsExchange(port, { ca: ca.certPem, servername: 'b.example' });
    const w = await tlsExchange(port, { ca: ca.certPem, servername: 'x.wild.example', checkServerIdentity: () => undefined });
    expect([a.data, b.data, w.data]).toEqual(['A', 'B', 'W']);
    const plain = net.connect(port, '127.0.0.1');
    const got = readAll(plain);
    plain.end('hello');
    expect((await got).toString()).toBe('PLAIN');
  });

  it('closes a TLS connection whose SNI matches no chain', async () => {
    const port = await strait.port('sni');
    expect(await tlsOutcome(port, { ca: ca.certPem, servername: 'nobody.example', checkServerIdentity: () => undefined }, 'x')).toBe('closed');
    await strait.waitStat(`listener.127.0.0.1_${port}.no_filter_chain_match`, (v) => v >= 1);
  });

  it('accepts a client whose SPIFFE identity matches and refuses the others', async () => {
    const port = await strait.port('mtls');
    const base = { ca: ca.certPem, servername: 'a.example' };
    expect(await tlsOutcome(port, { ...base, cert: foo.certPem, key: foo.keyPem }, 'ping')).toBe('data:ping');
    expect(await tlsOutcome(port, { ...base, cert: bar.certPem, key: bar.keyPem }, 'ping')).toBe('closed');
    expect(await tlsOutcome(port, base, 'ping')).toBe('closed');
    expect(await tlsOutcome(port, { ...base, cert: stranger.certPem, key: stranger.keyPem }, 'ping')).toBe('closed');
    const ssl = `listener.127.0.0.1_${port}.ssl`;
    expect(await strait.waitStat(`${ssl}.fail_verify_san`, (v) => v >= 1)).toBe(1);
    expect(await strait.waitStat(`${ssl}.fail_verify_no_cert`, (v) => v >= 1)).toBe(1);
    expect(await strait.waitStat(`${ssl}.fail_verify_error`, (v) => v >= 1)).toBe(1);
    expect(await strait.stat(`${ssl}.handshake`)).toBe(1);
  });
});

describe('certificate rotation', () => {
  it('serves a rewritten certificate on new handshakes and keeps the old one when the new one is broken', async () => {
    const dir = tmpDir('strait-rot-');
    const ca = createCa(path.join(dir, 'ca'));
    const first = issue(ca, 'first', ['DNS:svc.example']);
    const second = issue(ca, 'second', ['DNS:svc.example']);
    const live = path.join(dir, 'live');
    fs.mkdirSync(live);
    const cert = path.join(live, 'tls.crt');
    const key = path.join(live, 'tls.key');
    fs.copyFileSync(first.cert, cert);
    fs.copyFileSync(first.key, key);
    const echo = await echoServer();
    const strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: rot
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - ${tlsSocket({ ...first, cert, key }, '').trimStart()}
${TCP_PROXY('rot', 'echo')}
  clusters:
${staticCluster('echo', [echo.port])}`,
      { engine: ENGINES[0] },
    );
    try {
      const port = await strait.port('rot');
      const cn = async () => (await tlsExchange(port, { ca: ca.certPem, servername: 'svc.example' }, 'x')).peer.subject.CN;
      expect(await cn()).toBe('first');

      // Replace both files the way a secret mount does: write aside, rename over.
      fs.writeFileSync(`${cert}.tmp`, second.certPem);
      fs.writeFileSync(`${key}.tmp`, second.keyPem);
      fs.renameSync(`${cert}.tmp`, cert);
      fs.renameSync(`${key}.tmp`, key);
      let seen = await cn();
      for (let i = 0; i < 100 && seen !== 'second'; i++) {
        await sleep(50);
        seen = await cn();
      }
      expect(seen).toBe('second');
      const ssl = `listener.127.0.0.1_${port}.ssl`;
      expect(await strait.stat(`${ssl}.context_reload`)).toBeGreaterThanOrEqual(1);

      // A key that belongs to another certificate is refused; the current pair keeps serving.
      fs.writeFileSync(key, first.keyPem);
      await strait.waitStat(`${ssl}.context_reload_error`, (v) => v >= 1);
      expect(await cn()).toBe('second');
      expect(strait.stderr).toContain('certificate update rejected');
    } finally {
      await strait.stop();
      await echo.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TLS configuration errors', () => {
  it('names the field of an unusable certificate, key or CA', async () => {
    const dir = tmpDir('strait-tlserr-');
    try {
      const ca = createCa(path.join(dir, 'ca'));
      const good = issue(ca, 'good', ['DNS:x.example']);
      const other = issue(ca, 'other', ['DNS:y.example']);
      const garbage = path.join(dir, 'garbage.pem');
      fs.writeFileSync(garbage, 'not a certificate');
      const chain = (certs: CertFiles, extra = '') => `    - ${tlsSocket(certs, extra).trimStart()}
${TCP_PROXY('t', 'echo')}`;
      const cfg = `static_resources:
  listeners:
  - name: bad_cert
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
${chain({ ...good, cert: garbage })}
  - name: wrong_key
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
${chain({ ...good, key: other.key })}
  - name: missing_ca
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
${chain(good, `      validation_context: { trusted_ca: { filename: "${path.join(dir, 'nope.pem')}" } }\n`)}
  clusters:
${staticCluster('echo', [9])}`;
      const file = path.join(dir, 'bad.yaml');
      fs.writeFileSync(file, cfg);
      const r = await runCli(['--config', file, '--mode', 'validate']);
      expect(r.code).not.toBe(0);
      const base = 'static_resources.listeners[%d].filter_chains[0].transport_socket.typed_config.common_tls_context';
      expect(r.stderr).toContain(`${base.replace('%d', '0')}.tls_certificates[0].certificate_chain.filename`);
      expect(r.stderr).toContain(`${base.replace('%d', '1')}.tls_certificates[0].private_key.filename: does not match the certificate`);
      expect(r.stderr).toContain(`${base.replace('%d', '2')}.validation_context.trusted_ca.filename: cannot read`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
