// Istio's AuthorizationPolicy principals on an inbound (virtualInbound-shaped) mTLS chain: the
// `istio_authn` network filter (sent by Istio as a TypedStruct) records the peer's SPIFFE ID as
// the connection's filter state `io.istio.peer_principal`, which RBAC `filter_state` principals
// match — in the HTTP RBAC filter (per request, HTTP/1.1 and HTTP/2) and the network one. Without
// istio_authn in the chain the state is absent and the same policy matches nobody.
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issue, mtlsTransportSocket, spiffe, type CertFiles, type TestCa } from '../helpers/certs.js';
import { httpUpstream, simpleRoutes, type TestUpstream } from '../helpers/http.js';
import { closeServer } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

const indent = (text: string, n: number) =>
  text
    .trim()
    .split('\n')
    .map((l) => `${' '.repeat(n)}${l}`)
    .join('\n');

/** As Istio sends it: a TypedStruct with no value. */
const ISTIO_AUTHN = (ts: string) => `      - name: istio_authn
        typed_config:
          "@type": type.googleapis.com/${ts}
          type_url: type.googleapis.com/io.istio.network.authn.Config
`;

/**
 * The policies, as Istio 1.21+ writes them (configdump.yaml, ns[default]-policy[httpbin]-rule[0]):
 * `sleep` only by its peer principal; `test-ns` for namespace `test` AND a JWT issuer, which
 * Strait never has (no JWT filter), so it never matches.
 */
const POLICIES = `
policies:
  ns[default]-policy[httpbin]-rule[0]:
    permissions: [{ any: true }]
    principals:
    - and_ids:
        ids:
        - or_ids:
            ids:
            - filter_state: { key: io.istio.peer_principal, string_match: { exact: "spiffe://cluster.local/ns/default/sa/sleep" } }
  ns[default]-policy[httpbin]-rule[1]:
    permissions: [{ any: true }]
    principals:
    - and_ids:
        ids:
        - or_ids:
            ids:
            - filter_state: { key: io.istio.peer_principal, string_match: { safe_regex: { regex: ".*/ns/test/.*" } } }
        - or_ids:
            ids:
            - metadata:
                filter: istio_authn
                path: [{ key: request.auth.claims }, { key: iss }]
                value: { list_match: { one_of: { string_match: { exact: "https://accounts.google.com" } } } }
`;

function httpListener(name: string, authn: string, server: CertFiles, ca: TestCa): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
${authn}      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ${name}
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
${indent(POLICIES, 16)}
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
${indent(simpleRoutes('web'), 12)}
${mtlsTransportSocket(server, ca)}`;
}

function tcpListener(name: string, server: CertFiles, ca: TestCa): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
${ISTIO_AUTHN('xds.type.v3.TypedStruct')}          value: { shared: true }
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: ${name}
          rules:
${indent(POLICIES, 12)}
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${name}
          cluster: tag
${mtlsTransportSocket(server, ca)}`;
}

describe.each(ENGINES)('Istio peer principals (istio_authn + RBAC filter_state) on the %s engine', (engine) => {
  let dir: string;
  let ca: TestCa;
  let sleep: CertFiles;
  let other: CertFiles;
  let tester: CertFiles;
  let web: TestUpstream;
  let tag: net.Server;
  let strait: StraitProcess;
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    dir = tmpDir('strait-istio-authn-');
    ca = createCa(path.join(dir, 'ca'));
    const server = issue(ca, 'httpbin', [spiffe('httpbin'), 'DNS:httpbin.example']);
    sleep = issue(ca, 'sleep', [spiffe('sleep')]);
    other = issue(ca, 'other', [spiffe('other')]);
    tester = issue(ca, 'tester', [spiffe('tester', 'test')]);
    web = await httpUpstream('web');
    tag = net.createServer((s) => {
      s.on('error', () => {});
      s.resume();
      s.end('T');
    });
    await new Promise<void>((r) => tag.listen(0, '127.0.0.1', r));
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${httpListener('authn', ISTIO_AUTHN('udpa.type.v1.TypedStruct'), server, ca)}
${httpListener('no_authn', '', server, ca)}
${tcpListener('tcp_authn', server, ca)}
  clusters:
${staticCluster('web', [web.port])}${staticCluster('tag', [(tag.address() as net.AddressInfo).port])}`,
      { engine },
    );
    for (const n of ['authn', 'no_authn', 'tcp_authn']) ports[n] = await strait.port(n);
  });

  afterAll(async () => {
    await strait?.stop();
    await web?.close();
    if (tag) await closeServer(tag);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const tlsOpts = (cert: CertFiles) => ({ ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(cert.cert), key: fs.readFileSync(cert.key), servername: 'httpbin.example' });

  /** One HTTP/1.1 GET over mutual TLS; resolves with the status code. */
  function h1Status(port: number, cert: CertFiles): Promise<number> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ...tlsOpts(cert), ALPNProtocols: ['http/1.1'] });
      let text = '';
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
        if (m && text.includes('\r\n\r\n')) {
          s.destroy();
          resolve(Number(m[1]));
        }
      });
      s.on('error', reject);
      s.on('close', () => reject(new Error(`closed without a response: ${JSON.stringify(text)}`)));
      s.write('GET /headers HTTP/1.1\r\nHost: httpbin\r\n\r\n');
    });
  }

  /** Two GETs on one HTTP/2 connection over mutual TLS: each request is judged. */
  function h2Statuses(port: number, cert: CertFiles): Promise<number[]> {
    return new Promise((resolve, reject) => {
      const c = http2.connect(`https://127.0.0.1:${port}`, tlsOpts(cert));
      c.on('error', reject);
      const one = () =>
        new Promise<number>((res, rej) => {
          const rq = c.request({ ':path': '/headers', ':authority': 'httpbin' });
          let status = 0;
          rq.on('response', (h) => (status = Number(h[':status'])));
          rq.on('data', () => {});
          rq.on('end', () => res(status));
          rq.on('error', rej);
          rq.end();
        });
      one()
        .then(async (a) => [a, await one()])
        .then((all) => {
          c.close();
          resolve(all);
        }, reject);
    });
  }

  /** A TLS connection through tcp_proxy: what the upstream sent ('' when RBAC closed it). */
  function tcpFetch(port: number, cert: CertFiles): Promise<string> {
    return new Promise((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, ...tlsOpts(cert) });
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.on('error', () => {});
      s.on('end', () => s.destroy());
      s.on('close', () => resolve(out));
    });
  }

  it('HTTP RBAC admits the peer whose SPIFFE ID istio_authn recorded and refuses others with 403', async () => {
    expect(await h1Status(ports.authn!, sleep)).toBe(200);
    expect(await h1Status(ports.authn!, other)).toBe(403);
    // Namespace `test` matches the regex, but the JWT issuer half is never set: refused.
    expect(await h1Status(ports.authn!, tester)).toBe(403);
    expect(await strait.stat('http.authn.rbac.allowed')).toBe(1);
    expect(await strait.stat('http.authn.rbac.denied')).toBe(2);
  });

  it('judges every HTTP/2 request by the connection’s principal', async () => {
    expect(await h2Statuses(ports.authn!, sleep)).toEqual([200, 200]);
    expect(await h2Statuses(ports.authn!, other)).toEqual([403, 403]);
  });

  it('without istio_authn in the chain the principal is absent and the same policy refuses sleep', async () => {
    expect(await h1Status(ports.no_authn!, sleep)).toBe(403);
    expect(await strait.stat('http.no_authn.rbac.denied')).toBe(1);
    expect(await strait.stat('http.no_authn.rbac.allowed')).toBe(0);
  });

  it('network RBAC reads the same filter state (xds TypedStruct form) in front of tcp_proxy', async () => {
    expect(await tcpFetch(ports.tcp_authn!, sleep)).toBe('T');
    expect(await tcpFetch(ports.tcp_authn!, other)).toBe('');
    expect(await strait.waitStat('tcp_authn.rbac.denied', (v) => v === 1)).toBe(1);
    expect(await strait.stat('tcp_authn.rbac.allowed')).toBe(1);
  });
});
