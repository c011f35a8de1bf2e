// A client that repeats its request head gets the addon's KEPT_LIST: the native h2 engine hands
// over the connection's last list string again, and the exchange reuses what it took from it
// (method, :path, :authority, host, content-type, grpc-timeout) instead of scanning it
// (h2_session.ts RequestListScan). Requests that differ from the last one, by a byte of the same
// length or by a field a listener drops (underscores), must still be routed and forwarded as
// themselves, on one connection, one after the other.
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** Answers with what it was sent: method, target, Host, content-type, and whether x_bad came; keeps each x-request-id. */
async function echo(ids: string[]): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      ids.push(String(req.headers['x-request-id']));
      res.end(`${req.method} ${req.url} ${req.headers.host} ${req.headers['content-type'] ?? '-'} ${req.headers['x_bad'] ?? '-'}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function ask(s: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const rq = s.request(headers);
    let status = 0;
    const chunks: Buffer[] = [];
    rq.on('response', (h) => (status = Number(h[':status'])));
    rq.on('data', (d: Buffer) => chunks.push(d));
    rq.on('error', reject);
    rq.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString() }));
    rq.end();
  });
}

// Two routes whose paths differ in one byte, the same length: a path taken from the wrong list
// would pick the wrong one.
const ROUTES = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/svc-alpha/" }
    route: { cluster: up }
  - match: { prefix: "/svc-bravo/" }
    direct_response: { status: 200, body: { inline_string: "bravo" } }`;

describe('repeated HTTP/2 request lists on the native h2 engine', () => {
  let up: Awaited<ReturnType<typeof echo>>;
  const ids: string[] = [];
  let strait: StraitProcess;

  beforeAll(async () => {
    up = await echo(ids);
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('rep', ROUTES)}
${hcmListener('drop', ROUTES, '          common_http_protocol_options: { headers_with_underscores_action: DROP_HEADER }\n')}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine: ENGINES[0]!, args: ['--h2-engine', 'native'] },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  async function session(listener: string): Promise<http2.ClientHttp2Session> {
    const s = http2.connect(`http://127.0.0.1:${await strait.port(listener)}`);
    s.on('error', () => {});
    return s;
  }

  /** Sends each step's request after the one before it, on one connection: each answer must be the step's. */
  async function run(listener: string, steps: [http2.OutgoingHttpHeaders, string][]): Promise<void> {
    const s = await session(listener);
    try {
      const got: string[] = [];
      for (const [h] of steps) got.push((await ask(s, h)).text);
      expect(got).toEqual(steps.map(([, want]) => want));
    } finally {
      s.close();
    }
  }

  const alpha = { ':method': 'GET', ':path': '/svc-alpha/call-0001', ':authority': 'svc', 'content-type': 'text/x-a' };

  it('routes and forwards each request as sent, repeated or not', async () => {
    // [request headers, the answer's body]
    await run('rep', [
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [{ ...alpha, ':path': '/svc-bravo/call-0001' }, 'bravo'],
      [{ ...alpha, ':path': '/svc-bravo/call-0001' }, 'bravo'],
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [{ ...alpha, ':path': '/svc-alpha/call-0002' }, 'GET /svc-alpha/call-0002 svc text/x-a -'],
      [{ ...alpha, ':path': '/svc-alpha/call-0002' }, 'GET /svc-alpha/call-0002 svc text/x-a -'],
      [{ ...alpha, 'content-type': 'text/x-b' }, 'GET /svc-alpha/call-0001 svc text/x-b -'],
      [{ ...alpha, 'content-type': 'text/x-b' }, 'GET /svc-alpha/call-0001 svc text/x-b -'],
      [{ ...alpha, ':authority': 'sv2' }, 'GET /svc-alpha/call-0001 sv2 text/x-a -'],
      [{ ...alpha, ':authority': 'sv2' }, 'GET /svc-alpha/call-0001 sv2 text/x-a -'],
      [{ ...alpha, ':method': 'PUT' }, 'PUT /svc-alpha/call-0001 svc text/x-a -'],
      [{ ...alpha, ':method': 'PUT' }, 'PUT /svc-alpha/call-0001 svc text/x-a -'],
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      // Lists that differ in a regular field alone, each repeated: forwarded as themselves.
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [{ ...alpha, 'content-type': 'text/x-b' }, 'GET /svc-alpha/call-0001 svc text/x-b -'],
      [{ ...alpha, 'content-type': 'text/x-b' }, 'GET /svc-alpha/call-0001 svc text/x-b -'],
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
    ]);
  });

  it('gives each repeated request an id of its own, and keeps the one a client sent', async () => {
    const s = await session('rep');
    try {
      ids.length = 0;
      for (let i = 0; i < 4; i++) await ask(s, alpha);
      for (let i = 0; i < 3; i++) await ask(s, { ...alpha, 'x-request-id': 'client-id-1' });
      expect(ids.slice(0, 4).every((id) => UUID4.test(id))).toBe(true);
      expect(new Set(ids.slice(0, 4)).size).toBe(4);
      expect(ids.slice(4)).toEqual(['client-id-1', 'client-id-1', 'client-id-1']);
    } finally {
      s.close();
    }
  });

  it('takes a list rewritten for a dropped field as itself, between repeated ones', async () => {
    const bad = { ...alpha, ':path': '/svc-bravo/call-0001', x_bad: '1' };
    await run('drop', [
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [bad, 'bravo'],
      [bad, 'bravo'],
      [{ ...alpha, x_bad: '1' }, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [{ ...alpha, x_bad: '1' }, 'GET /svc-alpha/call-0001 svc text/x-a -'],
      [alpha, 'GET /svc-alpha/call-0001 svc text/x-a -'],
    ]);
  });
});
