// The HTTP/1.1 path reuses the strings of a head that repeat from request to request (the
// request line while method and target repeat, the status lines, the server line, the usual
// added request lines; see "Strings handed to the addon" in http1_session.ts). Reuse must never
// leak one exchange's values into the next: a raw upstream records the exact heads it receives
// while method, target, x-forwarded-proto and x-request-id change on one keep-alive connection,
// and answers with changing statuses whose lines the client must see exactly.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

async function recordingUpstream(): Promise<{ port: number; heads: string[]; close: () => Promise<void> }> {
  const heads: string[] = [];
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4);
        heads.push(head);
        const status = Number(/\/s(\d{3})/.exec(head.split(' ')[1]!)?.[1] ?? 200);
        s.write(`HTTP/1.1 ${status} Whatever\r\nserver: upstream\r\ncontent-length: 2\r\n\r\nok`);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, heads, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Sends raw requests one at a time on one connection; returns each response head. */
async function exchange(port: number, requests: string[]): Promise<string[]> {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  let wake: (() => void) | null = null;
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    wake?.();
  });
  const out: string[] = [];
  for (const r of requests) {
    sock.write(r);
    for (;;) {
      const i = buf.indexOf('\r\n\r\n');
      if (i !== -1 && buf.length >= i + 4 + 2) {
        out.push(buf.slice(0, i));
        buf = buf.slice(i + 6);
        break;
      }
      await new Promise<void>((res) => (wake = res));
    }
  }
  sock.destroy();
  return out;
}

describe.each(ENGINES)('HTTP/1.1 head strings on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof recordingUpstream>>;
  let strait: StraitProcess;

  beforeAll(async () => {
    up = await recordingUpstream();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', simpleRoutes('up'))}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('forwards each request line, x-forwarded-proto and x-request-id as sent, and each status line as answered', async () => {
    up.heads.length = 0;
    const reqs = [
      'GET /s200/a HTTP/1.1\r\nhost: h\r\n\r\n',
      'GET /s200/a HTTP/1.1\r\nhost: h\r\n\r\n',
      'POST /s200/a HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n',
      'GET /s404/b HTTP/1.1\r\nhost: h\r\nx-forwarded-proto: https\r\n\r\n',
      'GET /s201/b HTTP/1.1\r\nhost: h\r\nx-request-id: mine-1\r\n\r\n',
      'GET /s200/a HTTP/1.1\r\nhost: h\r\nx-request-id: mine-2\r\nx-forwarded-proto: https\r\n\r\n',
      'GET /s503/a HTTP/1.1\r\nhost: h\r\n\r\n',
    ];
    const resp = await exchange(await strait.port('ingress'), reqs);
    expect(resp.map((h) => h.split('\r\n')[0])).toEqual([
      'HTTP/1.1 200 OK',
      'HTTP/1.1 200 OK',
      'HTTP/1.1 200 OK',
      'HTTP/1.1 404 Not Found',
      'HTTP/1.1 201 Created',
      'HTTP/1.1 200 OK',
      'HTTP/1.1 503 Service Unavailable',
    ]);
    // server_name overwrites the upstream's server header (Envoy's default), once per response.
    for (const h of resp) expect(h.match(/^server: .*$/gim)).toEqual(['server: envoy']);
    const heads = up.heads;
    expect(heads.map((h) => h.split('\r\n')[0])).toEqual(reqs.map((r) => `${r.split('\r\n')[0]!.split(' ').slice(0, 2).join(' ')} HTTP/1.1`));
    const values = (h: string, name: string) => h.split('\r\n').filter((l) => l.toLowerCase().startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).trim());
    expect(heads.map((h) => values(h, 'x-forwarded-proto'))).toEqual([['http'], ['http'], ['http'], ['https'], ['http'], ['https'], ['http']]);
    const rids = heads.map((h) => values(h, 'x-request-id'));
    for (const r of rids) expect(r).toHaveLength(1);
    expect(rids[4]).toEqual(['mine-1']);
    expect(rids[5]).toEqual(['mine-2']);
    const generated = [0, 1, 2, 3, 6].map((i) => rids[i]![0]!);
    for (const g of generated) expect(g).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(generated).size).toBe(generated.length);
  });
});
