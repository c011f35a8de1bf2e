// x-forwarded-client-cert (XFCC): by default (SANITIZE) a header the client sent never reaches the
// upstream, so no client can claim a certificate identity; on a mutual-TLS listener with
// APPEND_FORWARD and set_current_client_cert_details (Istio's inbound shape) the upstream gets
// `By=<our URI SAN>;Hash=<client cert SHA-256>;Subject="<RFC 2253>";URI=<client URI SAN>;DNS=...`
// after what the client sent; SANITIZE_SET replaces it; ALWAYS_FORWARD_ONLY passes it; FORWARD_ONLY
// passes it only over mutual TLS. HTTP/1.1 and HTTP/2, both engines.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issue, mtlsTransportSocket, spiffe, type CertFiles, type TestCa } from '../helpers/certs.js';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

const XFCC = 'x-forwarded-client-cert';

/** Answers each request with the XFCC lines it got (JSON), so the client sees what went upstream. */
async function echoXfcc() {
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const lines = buf.slice(0, i).split('\r\n').filter((l) => l.toLowerCase().startsWith(`${XFCC}:`)).map((l) => l.slice(XFCC.length + 1).trim());
        buf = buf.slice(i + 4);
        const body = JSON.stringify(lines);
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** One HTTP/1.1 GET on `socket` with an optional XFCC; resolves with the upstream's XFCC lines. */
function h1(socket: net.Socket, xfcc?: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.on('data', (d) => {
      text += d.toString('latin1');
      const he = text.indexOf('\r\n\r\n');
      const cl = /content-length: (\d+)/i.exec(text);
      if (he >= 0 && cl && text.length >= he + 4 + Number(cl[1])) {
        socket.destroy();
        resolve(JSON.parse(text.slice(he + 4)));
      }
    });
    socket.on('error', reject);
    socket.write(`GET /x HTTP/1.1\r\nHost: svc\r\n${xfcc ? `${XFCC}: ${xfcc}\r\n` : ''}\r\n`);
  });
}

function h2(url: string, opts: http2.SecureClientSessionOptions, xfcc?: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = http2.connect(url, opts);
    c.on('error', reject);
    const rq = c.request({ ':path': '/x', ':authority': 'svc', ...(xfcc ? { [XFCC]: xfcc } : {}) });
    let body = '';
    rq.on('data', (d: Buffer) => (body += d.toString()));
    rq.on('end', () => {
      c.close();
      resolve(JSON.parse(body));
    });
    rq.on('error', reject);
    rq.end();
  });
}

function mtlsListener(name: string, server: CertFiles, ca: TestCa, hcmExtra: string): string {
  return `${hcmListener(name, simpleRoutes('up'), hcmExtra)}${mtlsTransportSocket(server, ca)}`;
}

describe.each(ENGINES)('x-forwarded-client-cert on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof echoXfcc>>;
  let strait: StraitProcess;
  let ca: TestCa;
  let client: CertFiles;
  let element: string;
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    const dir = tmpDir();
    ca = createCa(dir);
    const server = issue(ca, 'server', [spiffe('server')]);
    client = issue(ca, 'client', [spiffe('client'), 'DNS:client.example'], dir, '/O=Strait Test/CN=client');
    const hash = new crypto.X509Certificate(fs.readFileSync(client.cert)).fingerprint256.replaceAll(':', '').toLowerCase();
    element = `By=spiffe://cluster.local/ns/default/sa/server;Hash=${hash};Subject="CN=client,O=Strait Test";URI=spiffe://cluster.local/ns/default/sa/client;DNS=client.example`;
    up = await echoXfcc();
    const details = '          set_current_client_cert_details: { subject: true, uri: true, dns: true }\n';
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('plain', simpleRoutes('up'))}
${hcmListener('always', simpleRoutes('up'), '          forward_client_cert_details: ALWAYS_FORWARD_ONLY\n')}
${hcmListener('fwd_plain', simpleRoutes('up'), '          forward_client_cert_details: FORWARD_ONLY\n')}
${mtlsListener('append', server, ca, `          forward_client_cert_details: APPEND_FORWARD\n${details}`)}
${mtlsListener('set', server, ca, `          forward_client_cert_details: SANITIZE_SET\n${details}`)}
${mtlsListener('sanitize_tls', server, ca, '')}
${mtlsListener('certs', server, ca, '          forward_client_cert_details: SANITIZE_SET\n          set_current_client_cert_details: { cert: true, chain: true, uri: true }\n')}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    for (const n of ['plain', 'always', 'fwd_plain', 'append', 'set', 'sanitize_tls', 'certs']) ports[n] = await strait.port(n);
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  const plain = (name: string) => net.connect(ports[name]!, '127.0.0.1');
  const mtls = (name: string) => tls.connect({ host: '127.0.0.1', port: ports[name]!, ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key), servername: 'svc', checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] });
  const h2opts = (): http2.SecureClientSessionOptions => ({ ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key), servername: 'svc', checkServerIdentity: () => undefined });

  it('drops a client-sent header by default (SANITIZE), on HTTP/1.1 and HTTP/2', async () => {
    expect(await h1(plain('plain'), 'By=spiffe://evil;URI=spiffe://cluster.local/ns/admin/sa/root')).toEqual([]);
    expect(await h2(`http://127.0.0.1:${ports.plain}`, {}, 'URI=spiffe://evil')).toEqual([]);
    // Over mutual TLS too: SANITIZE adds nothing either.
    expect(await h1(mtls('sanitize_tls'), 'URI=spiffe://evil')).toEqual([]);
  });

  it('passes it with ALWAYS_FORWARD_ONLY, and with FORWARD_ONLY only over mutual TLS', async () => {
    expect(await h1(plain('always'), 'URI=spiffe://a')).toEqual(['URI=spiffe://a']);
    expect(await h1(plain('fwd_plain'), 'URI=spiffe://a')).toEqual([]);
  });

  it('appends this hop to what the client sent over mutual TLS (APPEND_FORWARD)', async () => {
    expect(await h1(mtls('append'))).toEqual([element]);
    expect(await h1(mtls('append'), 'By=spiffe://edge;URI=spiffe://x')).toEqual([`By=spiffe://edge;URI=spiffe://x,${element}`]);
    expect(await h2(`https://127.0.0.1:${ports.append}`, h2opts(), 'Hash=00')).toEqual([`Hash=00,${element}`]);
  });

  it('replaces it over mutual TLS (SANITIZE_SET)', async () => {
    expect(await h1(mtls('set'), 'URI=spiffe://evil')).toEqual([element]);
    expect(await h2(`https://127.0.0.1:${ports.set}`, h2opts(), 'URI=spiffe://evil')).toEqual([element]);
  });

  it('writes the client certificate and its chain, URL-encoded PEM, in Envoy\'s order', async () => {
    const leaf = new crypto.X509Certificate(fs.readFileSync(client.cert));
    for (const got of [await h1(mtls('certs')), await h2(`https://127.0.0.1:${ports.certs}`, h2opts())]) {
      expect(got).toHaveLength(1);
      const m = /^By=[^;]+;Hash=[0-9a-f]{64};Cert="([^"]+)";Chain="([^"]+)";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/client$/.exec(got[0]!);
      expect(m, got[0]).not.toBeNull();
      const cert = decodeURIComponent(m![1]!);
      expect(cert.startsWith('-----BEGIN CERTIFICATE-----\n')).toBe(true);
      expect(new crypto.X509Certificate(cert).fingerprint256).toBe(leaf.fingerprint256);
      // The test CA signs the client directly: the chain is the leaf (the root is not sent).
      const chain = decodeURIComponent(m![2]!);
      expect(chain.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
      expect(new crypto.X509Certificate(chain).fingerprint256).toBe(leaf.fingerprint256);
    }
  });
});
