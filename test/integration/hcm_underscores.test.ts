// common_http_protocol_options.headers_with_underscores_action on real HTTP/1.1 (raw sockets) and
// HTTP/2 (node:http2) clients, both downstream h2 engines, against a node:http upstream that
// echoes what it got. As Envoy's codecs: REJECT_REQUEST answers HTTP/1.1 with 400 and closes and
// resets an HTTP/2 stream; DROP_HEADER removes the fields before routing and filters, so neither
// they nor the upstream see them; ALLOW forwards them. Anything but ALLOW used to be refused.
import http2 from 'node:http2';
import net from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener, httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** One request on its own connection, for what the proxy itself answers: the text it sent before closing. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const cap = setTimeout(() => s.destroy(), 3000);
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(cap);
      resolve(got);
    });
    s.on('error', () => {});
    s.write(text);
  });
}

/** An HTTP/1.1 GET through undici; what the echoing upstream saw. */
async function echo(port: number, headers: Record<string, string>): Promise<{ status: number; echo: Echo | null }> {
  const r = await request(`http://127.0.0.1:${port}/u`, { headers });
  const text = await r.body.text();
  return { status: r.statusCode, echo: r.statusCode === 200 ? (JSON.parse(text) as Echo) : null };
}

function h2(port: number, path: string, headers: Record<string, string>): Promise<{ status?: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', () => {});
    const rq = c.request({ ':path': path, ':authority': 'svc', ...headers });
    let status: number | undefined;
    let body = '';
    rq.on('response', (h) => (status = Number(h[':status'])));
    rq.on('data', (d: Buffer) => (body += d.toString()));
    rq.on('end', () => {
      c.close();
      resolve({ status, body });
    });
    rq.on('error', (err: Error & { code?: string }) => {
      c.close();
      resolve({ status, body, error: err.code ?? err.message });
    });
    rq.end();
  });
}

/** An HTTP/2 upstream answering every request with the raw header list it got, as JSON. */
async function h2Upstream(): Promise<{ port: number; close(): Promise<void> }> {
  const srv = http2.createServer();
  srv.on('stream', (s, _h, _f, raw: string[]) => {
    s.respond({ ':status': 200, 'content-type': 'application/json' });
    s.end(JSON.stringify(raw));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

const ROUTES_H2 = `name: local2
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: up2 }`;

/** `/u` goes upstream only when `x_route` (a header a dropped field would have matched) is absent. */
const ROUTES = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/", headers: [{ name: x_route, present_match: true }] }
    direct_response: { status: 418, body: { inline_string: "routed by x_route" } }
  - match: { prefix: "/" }
    route: { cluster: up }`;

describe.each(['node', 'native'] as const)('headers_with_underscores_action with the %s h2 engine', (h2engine) => {
  let up: TestUpstream;
  let up2: Awaited<ReturnType<typeof h2Upstream>>;
  let strait: StraitProcess;
  const port: Record<string, number> = {};

  beforeAll(async () => {
    up = await httpUpstream('A');
    up2 = await h2Upstream();
    const action = (a: string) => `          common_http_protocol_options: { headers_with_underscores_action: ${a} }\n`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('rej', ROUTES, action('REJECT_REQUEST'))}
${hcmListener('drop', ROUTES, action('DROP_HEADER'))}
${hcmListener('allow', ROUTES)}
${hcmListener('drop2', ROUTES_H2, action('DROP_HEADER'))}
  clusters:
${staticCluster('up', [up.port])}
${staticCluster('up2', [up2.port], '    http2_protocol_options: {}\n')}`,
      { engine: ENGINES[0], args: ['--h2-engine', h2engine] },
    );
    for (const l of ['rej', 'drop', 'allow', 'drop2']) port[l] = await strait.port(l);
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
    await up2?.close();
  });

  it('REJECT_REQUEST: HTTP/1.1 gets 400 and the connection closes; HTTP/2 gets its stream reset; others pass', async () => {
    const before1 = (await strait.stat('http1.requests_rejected_with_underscores_in_headers')) ?? 0;
    const before2 = (await strait.stat('http2.requests_rejected_with_underscores_in_headers')) ?? 0;
    const r = await raw(port.rej!, 'GET /u HTTP/1.1\r\nHost: svc\r\nx_user: mallory\r\n\r\n');
    expect(r).toMatch(/^HTTP\/1\.1 400 /);
    expect(r).toMatch(/\r\nconnection: close\r\n/i);
    const v = await h2(port.rej!, '/u', { x_user: 'mallory' });
    expect(v.status).toBeUndefined();
    expect(v.error).toBeDefined();
    expect(await strait.stat('http1.requests_rejected_with_underscores_in_headers')).toBe(before1 + 1);
    expect(await strait.stat('http2.requests_rejected_with_underscores_in_headers')).toBe(before2 + 1);
    // A request with dashes only is served as usual, on both protocols.
    expect((await echo(port.rej!, { 'x-user': 'alice' })).echo!.headers['x-user']).toBe('alice');
    const ok = await h2(port.rej!, '/u', { 'x-user': 'alice' });
    expect([ok.status, (JSON.parse(ok.body) as Echo).headers['x-user']]).toEqual([200, 'alice']);
  });

  it('DROP_HEADER: the fields go before routing, and the upstream never sees them', async () => {
    const before1 = (await strait.stat('http1.dropped_headers_with_underscores')) ?? 0;
    const before2 = (await strait.stat('http2.dropped_headers_with_underscores')) ?? 0;
    const r = await echo(port.drop!, { x_user: 'mallory', 'x-user': 'alice', x_route: '1' });
    expect(r.status).toBe(200);
    const e = r.echo!;
    expect(e.headers['x-user']).toBe('alice');
    expect(Object.keys(e.headers).filter((k) => k.includes('_'))).toEqual([]);
    const v = await h2(port.drop!, '/u', { x_user: 'mallory', 'x-user': 'alice', x_route: '1' });
    expect(v.status).toBe(200);
    const e2 = JSON.parse(v.body) as Echo;
    expect(e2.headers['x-user']).toBe('alice');
    expect(Object.keys(e2.headers).filter((k) => k.includes('_'))).toEqual([]);
    expect(await strait.stat('http1.dropped_headers_with_underscores')).toBe(before1 + 2);
    expect(await strait.stat('http2.dropped_headers_with_underscores')).toBe(before2 + 2);
  });

  it('DROP_HEADER to an HTTP/2 upstream: it gets the fields kept, in order, none of those dropped', async () => {
    // The list the exchange forwards is not the one the downstream session holds for the stream:
    // the upstream request must be built from the former (a copy from the held block by the
    // latter's offsets would shift every field after a dropped one).
    for (const headers of [
      { x_user: 'mallory', 'x-user': 'alice', 'x-after': 'z' },
      { 'x-first': 'a', x_mid: 'm', 'x-second': 'b', x_last: 'l' },
      { 'x-only': 'kept' },
    ]) {
      const v = await h2(port.drop2!, '/u', headers);
      expect(v.status).toBe(200);
      const raw = JSON.parse(v.body) as string[];
      const got: [string, string][] = [];
      for (let i = 0; i < raw.length; i += 2) if (raw[i]!.startsWith('x-') || raw[i]!.includes('_')) got.push([raw[i]!, raw[i + 1]!]);
      const want = Object.entries(headers).filter(([k]) => !k.includes('_'));
      expect(got.filter(([k]) => k !== 'x-forwarded-proto' && k !== 'x-request-id')).toEqual(want);
    }
  });

  it('ALLOW (the default): the fields are forwarded and route like any other', async () => {
    expect((await echo(port.allow!, { x_user: 'bob' })).echo!.headers.x_user).toBe('bob');
    expect((await echo(port.allow!, { x_route: '1' })).status).toBe(418);
    const v = await h2(port.allow!, '/u', { x_user: 'bob' });
    expect((JSON.parse(v.body) as Echo).headers.x_user).toBe('bob');
  });
});
