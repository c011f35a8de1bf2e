// RFC 7541 §7.1.3: "An intermediary MUST NOT re-encode a value that uses the never-indexed
// literal representation with another representation that would index it." A real node:http2
// client → Strait (h2c downstream, HTTP/2 upstream cluster) → a real node:http2 server, on both
// h2 engines: what one hop sent never indexed must reach the next hop never indexed, both ways
// (request head; response head and trailers), and nothing else may become never indexed.
// node:http2 lists the names a peer sent that way in headers[http2.sensitiveHeaders].
//
// nghttp2 always sends `authorization` (and short cookies) never indexed on its own, so it alone
// would pass even without the proxy's help: the custom fields are what tell.
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const SENSITIVE = http2.sensitiveHeaders;
type Listed = { [SENSITIVE]?: string[] };

/** The never-indexed names node:http2 read on a received header object. */
function neverOf(h: object): string[] {
  return (h as Listed)[SENSITIVE] ?? [];
}

/** h2c upstream: records each request's never-indexed names; answers with a secret response field and a secret trailer. */
async function h2Upstream(): Promise<{ port: number; seen: string[][]; close(): Promise<void> }> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  const seen: string[][] = [];
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    seen.push(neverOf(headers));
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'x-resp-secret': 'rs', 'x-resp-plain': 'rp', [SENSITIVE]: ['x-resp-secret'] }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-trailer-secret': 'ts', 'x-trailer-plain': 'tp', [SENSITIVE]: ['x-trailer-secret'] }));
      stream.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () =>
      new Promise((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Got {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: string;
}

function send(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const s = session.request(headers, { endStream: body === undefined });
    const got: Got = { headers: {}, trailers: {}, body: '' };
    s.on('response', (h) => (got.headers = h));
    s.on('trailers', (t) => (got.trailers = t));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (got.body += d));
    s.on('end', () => resolve(got));
    s.on('error', reject);
    if (body !== undefined) s.end(body);
  });
}

describe.each(['native', 'node'])('never-indexed fields through the proxy, h2 → h2, --h2-engine %s', (h2engine) => {
  let up: Awaited<ReturnType<typeof h2Upstream>>;
  let strait: StraitProcess;
  let client: http2.ClientHttp2Session;

  beforeAll(async () => {
    up = await h2Upstream();
    // /flat takes the flat-list paths of the native engine; /obj's header mutations force the
    // header-object paths both ways.
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/flat" }
    route: { cluster: h2 }
  - match: { prefix: "/obj" }
    route: { cluster: h2 }
    request_headers_to_add: [{ header: { key: x-req-added, value: a } }]
    response_headers_to_add: [{ header: { key: x-resp-added, value: a } }]`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', routes)}
  clusters:
${staticCluster('h2', [up.port], '    http2_protocol_options: {}\n')}`,
      { engine: ENGINES[0]!, args: ['--h2-engine', h2engine] },
    );
    client = http2.connect(`http://127.0.0.1:${await strait.port('mesh')}`);
    client.on('error', () => {});
  });

  afterAll(async () => {
    client?.destroy();
    await strait?.stop();
    await up?.close();
  });

  const cases = [
    { path: '/flat/get', body: undefined },
    { path: '/flat/post', body: 'hello' },
    { path: '/obj/get', body: undefined },
    { path: '/obj/post', body: 'hello' },
  ];
  for (const c of cases) {
    it(`${c.path}: the upstream gets the client's never-indexed fields so, the client the upstream's (head and trailers)`, async () => {
      const before = up.seen.length;
      const g = await send(
        client,
        {
          ':method': c.body === undefined ? 'GET' : 'POST',
          ':path': c.path,
          authorization: 'Bearer s3cr3t',
          'x-api-key': 'k-123',
          'x-plain': 'p',
          [SENSITIVE]: ['authorization', 'x-api-key'],
        },
        c.body,
      );
      expect(g.body).toBe('ok');
      expect(g.headers[':status']).toBe(200);
      // Request: client → Strait → upstream.
      expect(up.seen.length).toBe(before + 1);
      const rq = up.seen[before]!;
      expect(rq).toEqual(expect.arrayContaining(['authorization', 'x-api-key']));
      expect(rq).not.toContain('x-plain');
      expect(rq).not.toContain('x-req-added');
      // Response head and trailers: upstream → Strait → client; the values themselves intact.
      expect(g.headers['x-resp-secret']).toBe('rs');
      expect(g.headers['x-resp-plain']).toBe('rp');
      expect(neverOf(g.headers)).toContain('x-resp-secret');
      expect(neverOf(g.headers)).not.toContain('x-resp-plain');
      expect(g.trailers['x-trailer-secret']).toBe('ts');
      expect(neverOf(g.trailers)).toContain('x-trailer-secret');
      expect(neverOf(g.trailers)).not.toContain('x-trailer-plain');
    });
  }

  it('went over HTTP/2 both ways', async () => {
    expect(await strait.stat('http.mesh.downstream_cx_http2_total')).toBeGreaterThanOrEqual(1);
    expect(await strait.stat('cluster.h2.upstream_cx_http2_total')).toBeGreaterThanOrEqual(1);
  });
});
