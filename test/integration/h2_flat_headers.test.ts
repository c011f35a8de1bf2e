import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

// The native h2 engine carries request and response heads in the addon's flat form (no header
// object between the hops); node:http2 goes through objects. Both must put the same fields on the
// wire: what each upstream receives and what the client gets back are compared across the two
// engines, with repeated fields, cookies, set-cookie, hop-by-hop fields and x-forwarded-*.

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** HTTP/1.1 upstream: answers with its received head (raw lines) as the body, and awkward response fields. */
async function h1Upstream(): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    let buf = '';
    let head: string | null = null;
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        if (head === null) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          head = buf.slice(0, end);
          buf = buf.slice(end + 4);
        }
        // Skip the body: by length, or a chunked one up to its last chunk (no trailers sent here).
        const m = /content-length: *(\d+)/i.exec(head);
        if (m) {
          if (buf.length < Number(m[1])) return;
          buf = buf.slice(Number(m[1]));
        } else if (/transfer-encoding: *chunked/i.test(head)) {
          const z = buf.indexOf('0\r\n\r\n');
          if (z < 0) return;
          buf = buf.slice(z + 5);
        }
        const body = JSON.stringify(head.split('\r\n'));
        head = null;
        s.write(
          'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nServer: upstream-srv\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\n' +
            `X-Dup: 1\r\nX-Other: o\r\nX-DUP: 2\r\nTE: trailers\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        );
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

/** h2c upstream: answers with its received raw header pairs as the body, and trailers. */
async function h2Upstream(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, _h, _f, raw) => {
    stream.on('error', () => {});
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'set-cookie': ['c=3', 'd=4'], 'x-up': 'h2', 'content-type': 'application/json' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-trailer': 't' }));
      stream.end(JSON.stringify(raw));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Got {
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  body: string;
}

function send(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const s = session.request(headers, { endStream: body === undefined });
    const got: Got = { headers: {}, trailers: {}, body: '' };
    s.on('response', (h) => (got.headers = { ...h }));
    s.on('trailers', (t) => (got.trailers = { ...t }));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (got.body += d));
    s.on('end', () => resolve(got));
    s.on('error', reject);
    if (body !== undefined) s.end(body);
  });
}

/** Upstream-received fields as name → values in order (HTTP/1 lines or h2 raw pairs), lower-case names. */
function receivedOf(g: Got, h2: boolean): { line: string; fields: Record<string, string[]> } {
  const raw = JSON.parse(g.body) as string[];
  const fields: Record<string, string[]> = {};
  let line = '';
  if (h2) {
    for (let i = 0; i < raw.length; i += 2) (fields[raw[i]!.toLowerCase()] ??= []).push(raw[i + 1]!);
  } else {
    line = raw[0]!;
    for (const l of raw.slice(1)) {
      const c = l.indexOf(':');
      (fields[l.slice(0, c).toLowerCase()] ??= []).push(l.slice(c + 1).trim());
    }
  }
  return { line, fields };
}

/** The value a server reads for each field: repeats joined (", ", cookie "; "). */
function joinedFields(f: Record<string, string[]>): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(f)) o[k] = v.join(k === 'cookie' ? '; ' : ', ');
  return o;
}

const REQUESTS: Array<{ name: string; headers: http2.OutgoingHttpHeaders; body?: string }> = [
  { name: 'plain GET', headers: { ':path': '/p', 'user-agent': 'ua/1', accept: '*/*' } },
  { name: 'repeats, te, x-forwarded-*', headers: { ':path': '/p?q=1', 'x-dup': ['1', '2'], te: 'trailers', 'x-forwarded-for': '9.9.9.9', 'x-forwarded-proto': 'https' } },
  { name: 'client x-request-id and a POST body', headers: { ':method': 'POST', ':path': '/p', 'x-request-id': 'client-rid', 'content-type': 'text/plain' }, body: 'hello' },
  { name: 'a POST ended by its HEADERS (content-length: 0 added)', headers: { ':method': 'POST', ':path': '/p', 'x-a': 'a' } },
  { name: 'split cookies', headers: { ':path': '/p', cookie: ['a=1', 'b=2'], 'x-b': '' } },
];

describe('flat header paths (native h2 engine) put the same fields on the wire as the object paths (node:http2)', () => {
  let up1: Awaited<ReturnType<typeof h1Upstream>>;
  let up2: Awaited<ReturnType<typeof h2Upstream>>;
  const straits: StraitProcess[] = [];
  const sessions: Record<string, http2.ClientHttp2Session> = {};

  beforeAll(async () => {
    up1 = await h1Upstream();
    up2 = await h2Upstream();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/hm/", headers: [{ name: x-route, string_match: { exact: "b, c" } }, { name: cookie, string_match: { exact: "k=1; j=2" } }] }
    route: { cluster: h2, prefix_rewrite: "/" }
  - match: { prefix: "/h1/" }
    route: { cluster: h1, prefix_rewrite: "/" }
  - match: { prefix: "/h2/" }
    route: { cluster: h2, prefix_rewrite: "/" }`;
    for (const h2engine of ['native', 'node']) {
      const s = await startStrait(
        `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', routes)}
  clusters:
${staticCluster('h2', [up2.port], '    http2_protocol_options: {}\n')}
${staticCluster('h1', [up1.port])}`,
        { engine: ENGINES[0]!, args: ['--h2-engine', h2engine] },
      );
      straits.push(s);
      const c = http2.connect(`http://127.0.0.1:${await s.port('mesh')}`);
      c.on('error', () => {});
      sessions[h2engine] = c;
    }
  });

  afterAll(async () => {
    for (const c of Object.values(sessions)) c.destroy();
    for (const s of straits) await s.stop();
    await up1?.close();
    await up2?.close();
  });

  for (const up of ['h1', 'h2'] as const) {
    for (const rq of REQUESTS) {
      it(`${up} upstream, ${rq.name}`, async () => {
        // The same authority through both proxies (each listens on its own port).
        const headers = { ...rq.headers, ':authority': 'svc.test', ':path': `/${up}${rq.headers[':path']}` };
        const n = await send(sessions.native!, headers, rq.body);
        const o = await send(sessions.node!, headers, rq.body);
        // What the upstream received.
        const rn = receivedOf(n, up === 'h2');
        const ro = receivedOf(o, up === 'h2');
        expect(rn.line).toBe(ro.line);
        const jn = joinedFields(rn.fields);
        const jo = joinedFields(ro.fields);
        // Generated ids differ per request; each is a UUID v4, and a client's id is kept.
        if (rq.headers['x-request-id'] === undefined) {
          expect(jn['x-request-id']).toMatch(UUID4);
          expect(jo['x-request-id']).toMatch(UUID4);
          expect(jn['x-request-id']).not.toBe(jo['x-request-id']);
          delete jn['x-request-id'];
          delete jo['x-request-id'];
        } else expect(jn['x-request-id']).toBe('client-rid');
        expect(jn).toEqual(jo);
        // The flat path forwards repeated fields as they arrived; node:http2's object joins them.
        if (rq.headers['x-dup']) {
          expect(rn.fields['x-dup']).toEqual(['1', '2']);
          expect(ro.fields['x-dup']).toEqual(['1, 2']);
        }
        for (const hop of ['connection', 'keep-alive', 'upgrade', 'proxy-connection']) expect(jn[hop]).toBeUndefined();
        // A body of unknown length goes to HTTP/1 chunked (the proxy's own framing), never to HTTP/2.
        expect(jn['transfer-encoding']).toBe(up === 'h1' && rq.body ? 'chunked' : undefined);
        if (up === 'h1') expect(jn.te).toBeUndefined();
        if (rq.headers[':method'] === 'POST' && rq.body === undefined) expect(jn['content-length']).toBe('0');
        expect(jn['x-forwarded-proto']).toBe(rq.headers['x-forwarded-proto'] ?? 'http');
        // use_remote_address is off: x-forwarded-for passes as the client sent it.
        expect(jn['x-forwarded-for']).toBe(rq.headers['x-forwarded-for']);
        // What the client got back (date aside: each answer reads the clock).
        for (const g of [n, o]) {
          expect(typeof g.headers.date).toBe('string');
          delete g.headers.date;
          // The echo body spells repeated fields as sent (one line each, or one joined line).
          if (up === 'h1') delete g.headers['content-length'];
        }
        expect(n.headers).toEqual(o.headers);
        expect(n.trailers).toEqual(o.trailers);
        expect(n.headers.server).toBe('envoy');
        expect(n.headers.connection).toBeUndefined();
        expect(n.headers['keep-alive']).toBeUndefined();
        if (up === 'h1') {
          expect(n.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2']);
          expect(n.headers['x-dup']).toBe('1, 2');
          expect(n.headers.te).toBeUndefined();
        } else {
          expect(n.headers['set-cookie']).toEqual(['c=3', 'd=4']);
          expect(n.trailers['x-trailer']).toBe('t');
        }
      });
    }
  }

  it('matches route header matchers on the flat list as on the object (repeats joined, cookies with "; ")', async () => {
    for (const engine of ['native', 'node']) {
      const hit = await send(sessions[engine]!, { ':path': '/hm/x', 'x-route': ['b', 'c'], cookie: ['k=1', 'j=2'] });
      expect(hit.headers[':status']).toBe(200);
      expect(receivedOf(hit, true).fields[':path']).toEqual(['/x']);
      const miss = await send(sessions[engine]!, { ':path': '/hm/x', 'x-route': 'b', cookie: ['k=1', 'j=2'] });
      expect(miss.headers[':status']).toBe(404);
    }
  });

  it('gives every request its own x-request-id', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const g = await send(sessions.native!, { ':path': '/h1/id' });
      const id = joinedFields(receivedOf(g, false).fields)['x-request-id']!;
      expect(id).toMatch(UUID4);
      ids.add(id);
    }
    expect(ids.size).toBe(20);
  });
});
