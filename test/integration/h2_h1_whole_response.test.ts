import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

// h2c downstream (native h2 engine), HTTP/1.1 upstream: a content-length response whose body
// came in the same read as its head is forwarded with one addon call (HEADERS, body, END_STREAM);
// anything else takes respond + data + end. Both must reach the client whole, and the upstream
// connection must go back to the pool after the one-call path exactly as after the other.

const BIG = 300 * 1024;

/** Raw HTTP/1.1 upstream; the response's shape is picked by the request path. Counts connections. */
async function h1Upstream(): Promise<{ port: number; conns: () => number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  let conns = 0;
  const server = net.createServer((s) => {
    conns++;
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const path = buf.slice(0, end).split(' ')[1]!;
        buf = buf.slice(end + 4);
        const body = path === '/big' ? 'b'.repeat(BIG) : `body of ${path}`;
        const head = `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`;
        if (path === '/nobody') {
          s.write('HTTP/1.1 204 No Content\r\nX-Up: 1\r\n\r\n');
          continue;
        }
        if (path === '/early') {
          // An interim head and the final response in one read.
          s.write(`HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n${head}${body}`);
          continue;
        }
        if (path === '/split') {
          s.write(head + body.slice(0, 3));
          setTimeout(() => s.write(body.slice(3)), 30);
        } else if (path === '/extra') {
          // Bytes past the declared length: the response is still this body; the connection is not reused.
          s.write(`${head}${body}JUNK`);
        } else {
          s.write(head + body);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns: () => conns,
    close: () =>
      new Promise((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

function get(session: http2.ClientHttp2Session, path: string): Promise<{ status: number; length: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': path });
    let status = 0;
    let length: string | undefined;
    let body = '';
    s.on('response', (h) => {
      status = Number(h[':status']);
      length = h['content-length'] as string | undefined;
    });
    s.setEncoding('latin1');
    s.on('data', (d: string) => (body += d));
    s.on('end', () => resolve({ status, length, body }));
    s.on('error', reject);
  });
}

describe('HTTP/1 upstream responses to a native h2c downstream, whole or in pieces', () => {
  let up: Awaited<ReturnType<typeof h1Upstream>>;
  let strait: StraitProcess;
  let client: http2.ClientHttp2Session;

  beforeAll(async () => {
    up = await h1Upstream();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/edited" }
    route: { cluster: h1 }
    response_headers_to_add: [{ header: { key: x-edited, value: "1" } }]
  - match: { prefix: "/" }
    route: { cluster: h1 }`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', routes)}
  clusters:
${staticCluster('h1', [up.port])}`,
      { engine: ENGINES[0]!, args: ['--h2-engine', 'native'] },
    );
    client = http2.connect(`http://127.0.0.1:${await strait.port('mesh')}`);
    client.on('error', () => {});
  });

  afterAll(async () => {
    client?.destroy();
    await strait?.stop();
    await up?.close();
  });

  it('forwards bodies that came with the head, and keeps the upstream connection for the next request', async () => {
    const before = up.conns();
    for (let i = 0; i < 5; i++) {
      expect(await get(client, `/whole/${i}`)).toEqual({ status: 200, length: String(`body of /whole/${i}`.length), body: `body of /whole/${i}` });
    }
    // One request at a time: the pool's one connection answered all five.
    expect(up.conns() - before).toBe(1);
  });

  it('forwards a response without a body, one after an interim head, and one the exchange edits, from the same reads', async () => {
    const before = up.conns();
    for (let i = 0; i < 3; i++) {
      expect(await get(client, '/nobody')).toEqual({ status: 204, length: undefined, body: '' });
      expect(await get(client, `/early/${i}`)).toEqual({ status: 200, length: String(`body of /early/${i}`.length), body: `body of /early/${i}` });
      // Route response headers: the exchange takes the header object, and the body a copy.
      expect(await get(client, `/edited/${i}`)).toEqual({ status: 200, length: String(`body of /edited/${i}`.length), body: `body of /edited/${i}` });
    }
    // The connection the test before pooled answered all nine: each response left it reusable.
    expect(up.conns() - before).toBe(0);
  });

  it('forwards a body that comes after the head in another read', async () => {
    expect(await get(client, '/split')).toEqual({ status: 200, length: '14', body: 'body of /split' });
  });

  it('forwards a body larger than one read', async () => {
    const r = await get(client, '/big');
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(BIG);
    expect(r.body).toBe('b'.repeat(BIG));
  });

  it('takes only the declared length when more bytes follow, and does not reuse that connection', async () => {
    const r = await get(client, '/extra');
    expect(r).toEqual({ status: 200, length: '14', body: 'body of /extra' });
    const before = up.conns();
    expect((await get(client, '/whole/after')).body).toBe('body of /whole/after');
    expect(up.conns() - before).toBe(1);
  });

  it('resumes reading an upstream connection paused for a slow client before pooling it', async () => {
    // A small window: the proxy's writes to this client fill up and it pauses the upstream read,
    // up to the body's last chunk. The connection must go back to the pool reading again, or
    // the next request on it never sees its response.
    const slow = http2.connect(`http://127.0.0.1:${await strait.port('mesh')}`, { settings: { initialWindowSize: 1024 } });
    slow.on('error', () => {});
    try {
      for (let i = 0; i < 3; i++) {
        const r = await get(slow, '/big');
        expect(r.body.length).toBe(BIG);
        const next = await Promise.race([get(client, `/whole/after-slow-${i}`), new Promise((r) => setTimeout(() => r('stuck'), 3000))]);
        expect(next).toEqual({ status: 200, length: String(`body of /whole/after-slow-${i}`.length), body: `body of /whole/after-slow-${i}` });
      }
    } finally {
      slow.destroy();
    }
  });

  it('answers many concurrent streams, each with its own body', async () => {
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => get(client, `/whole/c${i}`)));
    rs.forEach((r, i) => expect(r.body).toBe(`body of /whole/c${i}`));
  });
});
