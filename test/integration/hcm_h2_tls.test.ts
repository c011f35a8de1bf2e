// HTTP/2 over TLS (ALPN h2) on an HTTP connection manager listener: served on both engines. A
// TLS socket Strait makes by hand was left "secureConnecting", so node:http2 waited for a
// 'secureConnect' that server sockets never emit — no response — and the process crashed when
// the client's first frames were already buffered with the handshake.
import fs from 'node:fs';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issue, type TestCa } from '../helpers/certs.js';
import { hcmListener, httpUpstream, simpleRoutes, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

describe.each(ENGINES)('HTTP/2 over TLS on the %s engine', (engine) => {
  let up: TestUpstream;
  let strait: StraitProcess;
  let ca: TestCa;
  let port: number;

  beforeAll(async () => {
    ca = createCa(tmpDir());
    const server = issue(ca, 'server', ['DNS:svc.example']);
    up = await httpUpstream('h2tls');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('tls', simpleRoutes('up'))}      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: { filename: "${server.cert}" }
              private_key: { filename: "${server.key}" }
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    port = await strait.port('tls');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('negotiates h2 and answers many streams on one connection; the process lives on', async () => {
    const c = http2.connect(`https://127.0.0.1:${port}`, { ca: fs.readFileSync(ca.cert), servername: 'svc.example' });
    c.on('error', () => {});
    await new Promise<void>((r, j) => c.once('connect', () => r()).once('error', j));
    expect(c.alpnProtocol).toBe('h2');
    const statuses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        new Promise<number>((resolve, reject) => {
          const rq = c.request({ ':path': `/s${i}`, ':authority': 'svc.example' });
          let st = 0;
          rq.on('response', (h) => (st = Number(h[':status'])));
          rq.on('data', () => {});
          rq.on('end', () => resolve(st));
          rq.on('error', reject);
          rq.end();
        }),
      ),
    );
    expect(statuses).toEqual(Array(20).fill(200));
    c.close();
    // Requests sent in the client's first flight (buffered with the handshake) were what crashed it.
    for (let k = 0; k < 3; k++) {
      const c2 = http2.connect(`https://127.0.0.1:${port}`, { ca: fs.readFileSync(ca.cert), servername: 'svc.example' });
      c2.on('error', () => {});
      const st = await new Promise<number>((resolve, reject) => {
        const rq = c2.request({ ':path': '/first', ':authority': 'svc.example' });
        rq.on('response', (h) => resolve(Number(h[':status'])));
        rq.on('error', reject);
        rq.end();
      });
      expect(st).toBe(200);
      c2.close();
    }
    expect(strait.proc.exitCode).toBeNull();
  });
});
