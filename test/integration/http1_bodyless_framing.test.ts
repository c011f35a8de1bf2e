// An HTTP/1.1 upstream's 1xx or 204 that frames a body (RFC 9110 §8.6, RFC 9112 §6.1 say it must
// not): Strait and the upstream would disagree about where the next response starts, so a
// Transfer-Encoding or a non-zero Content-Length is an upstream protocol error (503 with
// Envoy's reset-before-headers body, the connection is not reused), and `Content-Length: 0` is dropped rather than passed on, as Envoy's
// HTTP/1 codec does. A 304 keeps its Content-Length. Driven by raw bytes downstream (HTTP/1.1)
// and by node:http2 (h2c, flat and header-object routes).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2cGet, hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** The canned response for a request path; everything after it on the connection is what a wrong framer would take for the next response. */
const CANNED: Record<string, string> = {
  '/204-cl5': 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello',
  '/204-cl0': 'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-Kept: k\r\n\r\n',
  '/204-te': 'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  '/100-cl3': 'HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  '/304-cl5': 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: "e"\r\n\r\n',
  '/ok': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
};

/** Answers each request head with CANNED[path]; counts connections. */
async function cannedUpstream() {
  let conns = 0;
  const server = net.createServer((s) => {
    conns++;
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, i).split(' ')[1]!.replace(/^\/obj/, '');
        buf = buf.slice(i + 4);
        s.write(CANNED[path] ?? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns: () => conns,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Sends GET `paths` one at a time on one keep-alive connection; resolves with each response's bytes. */
function rawRequests(port: number, paths: string[], ms = 3000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let at = 0; // where the response being read starts in `text`
    let sent = 0;
    const responses: string[] = [];
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`timed out; got ${JSON.stringify(text)}`));
    }, ms);
    const next = () => s.write(`GET ${paths[sent++]} HTTP/1.1\r\nHost: svc\r\n\r\n`);
    s.on('data', (d) => {
      text += d.toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n', at);
      if (headEnd === -1) return;
      const head = text.slice(at, headEnd);
      const cl = /\r\ncontent-length: (\d+)/i.exec(head);
      const bodyless = /^HTTP\/1\.1 (204|304) /.test(head);
      const end = headEnd + 4 + (cl && !bodyless ? Number(cl[1]) : 0);
      if (text.length < end) return;
      responses.push(text.slice(at, end));
      at = end;
      if (sent < paths.length) {
        next();
        return;
      }
      clearTimeout(t);
      s.destroy();
      resolve(responses);
    });
    s.on('error', reject);
    next();
  });
}

const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/obj/" }
    route: { cluster: svc }
    response_headers_to_add: [{ header: { key: x-obj, value: "1" } }]
  - match: { prefix: "/" }
    route: { cluster: svc }`;

describe.each(ENGINES)('1xx and 204 responses that frame a body, on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof cannedUpstream>>;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    up = await cannedUpstream();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', routes)}
  clusters:
${staticCluster('svc', [up.port])}`,
      { engine },
    );
    port = await strait.port('ingress');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('answers 503 for a 204 with a non-zero Content-Length and does not reuse that upstream connection', async () => {
    const errors = (await strait.stat('cluster.svc.upstream_cx_protocol_error')) ?? 0;
    const connsBefore = up.conns();
    const [first, second] = await rawRequests(port, ['/204-cl5', '/ok']);
    expect(first).toMatch(/^HTTP\/1\.1 503 [\s\S]*reset reason: protocol error$/);
    // The five "body" bytes were not read as the next response: /ok got its own 200 on a new connection.
    expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
    expect(up.conns() - connsBefore).toBe(2);
    expect(await strait.stat('cluster.svc.upstream_cx_protocol_error')).toBe(errors + 1);
  });

  it('answers 503 for a 204 with Transfer-Encoding and for a 100 with a non-zero Content-Length', async () => {
    for (const p of ['/204-te', '/100-cl3']) {
      const [text] = await rawRequests(port, [p]);
      expect(text, p).toMatch(/^HTTP\/1\.1 503 [\s\S]*reset reason: protocol error$/);
    }
  });

  it('drops Content-Length: 0 from a 204 and forwards the rest', async () => {
    const [first, second] = await rawRequests(port, ['/204-cl0', '/ok']);
    expect(first).toMatch(/^HTTP\/1\.1 204 No Content\r\n/);
    expect(first).not.toMatch(/content-length/i);
    expect(first).toMatch(/\r\nX-Kept: k\r\n/i);
    expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
  });

  it('keeps the Content-Length of a 304', async () => {
    const [first, second] = await rawRequests(port, ['/304-cl5', '/ok']);
    expect(first).toMatch(/^HTTP\/1\.1 304 Not Modified\r\n/);
    expect(first).toMatch(/\r\ncontent-length: 5\r\n/i);
    expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
  });

  for (const prefix of ['', '/obj']) {
    const how = prefix ? 'header-object' : 'flat';
    it(`gives an HTTP/2 client the same on the ${how} path`, async () => {
      const bad = await h2cGet(port, `${prefix}/204-cl5`);
      expect(bad.headers[':status']).toBe(503);
      const te = await h2cGet(port, `${prefix}/204-te`);
      expect(te.headers[':status']).toBe(503);
      const zero = await h2cGet(port, `${prefix}/204-cl0`);
      expect(zero.headers[':status']).toBe(204);
      expect(zero.headers['content-length']).toBeUndefined();
      expect(zero.headers['x-kept']).toBe('k');
      if (prefix) expect(zero.headers['x-obj']).toBe('1');
      const nm = await h2cGet(port, `${prefix}/304-cl5`);
      expect(nm.headers[':status']).toBe(304);
      expect(nm.headers['content-length']).toBe('5');
    });
  }
});
