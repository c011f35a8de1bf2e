// x-request-id of requests that arrive over HTTP/2 (native engine). Where nothing but the
// upstream request needs the generated id, the addon writes it into the request as it sends it
// (FlatRequest.fillsId: no string is made); where something else needs it, the id is a string
// made once, the same for every try and for the response header. Real h2 clients, an HTTP/1.1
// and an h2c upstream that report the ids they receive.
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2SessionRequest, hcmListener } from '../helpers/http.js';
import { listenLocal } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** HTTP/1.1 upstream: answers with the x-request-id it got; 503 the first time it sees a `/flaky` request's id. */
async function h1Upstream(): Promise<{ port: number; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = net.createServer((s) => {
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const id = /\r\nx-request-id: ([^\r]*)/i.exec(head)?.[1] ?? '';
        const fail = head.startsWith('GET /flaky') && !seen.includes(id);
        seen.push(id);
        s.write(`HTTP/1.1 ${fail ? '503 Service Unavailable' : '200 OK'}\r\ncontent-length: ${id.length}\r\n\r\n${id}`);
      }
    });
  });
  return { ...(await listenLocal(server)), seen };
}

/** h2c upstream: answers with the x-request-id it got. */
function h2Upstream(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on('stream', (stream, h) => {
    stream.on('error', () => {});
    stream.resume();
    stream.respond({ ':status': 200 });
    stream.end(String(h['x-request-id'] ?? ''));
  });
  return listenLocal(server);
}

/** A GET on `session`: status, the response's x-request-id, and the body (the id the upstream got). */
async function get(session: http2.ClientHttp2Session, path: string): Promise<{ status: number; id: string | undefined; body: string }> {
  const r = await h2SessionRequest(session, { path });
  return { status: r.status, id: r.headers['x-request-id'] as string | undefined, body: r.body };
}

describe('x-request-id of HTTP/2 requests (native h2 engine)', () => {
  let up1: Awaited<ReturnType<typeof h1Upstream>>;
  let up2: Awaited<ReturnType<typeof h2Upstream>>;
  const straits: StraitProcess[] = [];
  let plain: http2.ClientHttp2Session;
  let echoing: http2.ClientHttp2Session;

  beforeAll(async () => {
    up1 = await h1Upstream();
    up2 = await h2Upstream();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/flaky" }
    route: { cluster: h1, retry_policy: { retry_on: "5xx", num_retries: 1 } }
  - match: { prefix: "/h2/" }
    route: { cluster: h2 }
  - match: { prefix: "/" }
    route: { cluster: h1 }`;
    const clusters = `  clusters:
${staticCluster('h2', [up2.port], '    http2_protocol_options: {}\n')}
${staticCluster('h1', [up1.port])}`;
    for (const extra of ['', '          always_set_request_id_in_response: true\n']) {
      const s = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${hcmListener('mesh', routes, extra)}${clusters}`, {
        engine: ENGINES[0]!,
        args: ['--h2-engine', 'native'],
      });
      straits.push(s);
      const c = http2.connect(`http://127.0.0.1:${await s.port('mesh')}`);
      c.on('error', () => {});
      if (extra === '') plain = c;
      else echoing = c;
    }
  });

  afterAll(async () => {
    plain?.destroy();
    echoing?.destroy();
    for (const s of straits) await s.stop();
    await up1?.close();
    await up2?.close();
  });

  for (const [name, path] of [
    ['HTTP/1.1', '/id'],
    ['h2c', '/h2/id'],
  ] as const) {
    it(`an id only the ${name} upstream needs is written by the addon: a fresh UUID v4 for every request`, async () => {
      const got = await Promise.all(Array.from({ length: 40 }, () => get(plain, path)));
      for (const g of got) {
        expect(g.status).toBe(200);
        expect(g.body).toMatch(UUID4);
        expect(g.id).toBeUndefined();
      }
      // A placeholder the addon failed to overwrite would be the same in every request.
      expect(new Set(got.map((g) => g.body)).size).toBe(40);
    });
  }

  it('a retried request carries the same id on every try', async () => {
    const from = up1.seen.length;
    const g = await get(plain, '/flaky');
    expect(g.status).toBe(200);
    const tries = up1.seen.slice(from);
    expect(tries).toHaveLength(2);
    expect(tries[0]).toMatch(UUID4);
    expect(tries[1]).toBe(tries[0]);
    expect(g.body).toBe(tries[0]);
  });

  it('always_set_request_id_in_response returns the id the upstream got', async () => {
    for (const path of ['/id', '/h2/id']) {
      const g = await get(echoing, path);
      expect(g.status).toBe(200);
      expect(g.body).toMatch(UUID4);
      expect(g.id).toBe(g.body);
    }
  });
});
