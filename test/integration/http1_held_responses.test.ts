// A whole response that an upstream read completes inside a read batch (native engine) is held
// and sent at the batch's end, with the other responses of that batch. Nothing may overtake it
// or cut it off: the FIN of a connection that closes after its response (the client's
// `connection: close`, HTTP/1.0), and a local reply to the client's next request when that
// request is read in the same batch as the upstream's answer to the one before (the test writes
// both at the same moment, many times over, so the two reads often share a batch), or when it
// is a pipelined request served at the tail of that batch. Held bytes are written into a stage
// reused by the next batch: what the kernel does not take must be copied, or another
// connection's responses would overwrite it before it leaves.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const ROUTES = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/direct" }
    direct_response: { status: 418, body: { inline_string: "teapot" } }
  - match: { prefix: "/" }
    route: { cluster: up }`;

/**
 * Answers each request head with `ok <path>`; `onHead(path)` runs right after the answer is
 * written, in the same tick.
 */
async function rawUpstream(onHead: (path: string) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, i).split(' ')[1]!;
        buf = buf.slice(i + 4);
        // /big/...: ~3 KB, still small enough to go out whole with its head.
        const body = path.startsWith('/big/') ? `ok ${path} ${'x'.repeat(3000)}` : `ok ${path}`;
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        onHead(path);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Reads `s` until `n` Content-Length responses are in; returns their status lines and bodies. */
function responses(s: net.Socket, n: number): Promise<{ status: string; body: string }[]> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const out: { status: string; body: string }[] = [];
    s.on('error', reject);
    s.on('end', () => reject(new Error(`ended after ${out.length} responses: ${JSON.stringify(buf)}`)));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, i);
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < i + 4 + len) break;
        out.push({ status: head.slice(0, head.indexOf('\r\n')), body: buf.slice(i + 4, i + 4 + len) });
        buf = buf.slice(i + 4 + len);
      }
      if (out.length === n) resolve(out);
    });
  });
}

describe.each(ENGINES)('HTTP/1.1 responses held to the end of a read batch on the %s engine', (engine) => {
  let strait: StraitProcess;
  let up: Awaited<ReturnType<typeof rawUpstream>>;
  let port: number;
  /** Run by the upstream right after it answers a path: the race test's second write. */
  const after = new Map<string, () => void>();

  beforeAll(async () => {
    up = await rawUpstream((path) => {
      after.get(path)?.();
      after.delete(path);
    });
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('web', ROUTES, '          http_protocol_options: { accept_http_10: true }\n')}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    port = await strait.port('web');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('sends the whole response before the FIN of a connection that closes after it', async () => {
    for (let k = 0; k < 20; k++) {
      for (const req of [`GET /close/${k} HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n`, `GET /old/${k} HTTP/1.0\r\nhost: h\r\n\r\n`]) {
        const s = net.connect(port, '127.0.0.1');
        let got = '';
        s.on('data', (d) => (got += d.toString('latin1')));
        const ended = new Promise<void>((r) => s.on('end', () => r()));
        s.on('error', () => {});
        s.write(req);
        await ended;
        s.destroy();
        const path = req.split(' ')[1]!;
        expect(got).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
        expect(got.toLowerCase()).toContain('connection: close\r\n');
        expect(got.endsWith(`\r\n\r\nok ${path}`)).toBe(true);
      }
    }
  }, 20_000);

  it('closes many connections whose responses leave in the same batch, each after its whole response', async () => {
    // Connections that close after their response wait for the batch end's one send call and
    // are ended after it: with 48 clients at once, many share a batch.
    for (let round = 0; round < 3; round++) {
      const runs = Array.from({ length: 48 }, (_, k) => {
        const s = net.connect(port, '127.0.0.1');
        let got = '';
        s.on('data', (d) => (got += d.toString('latin1')));
        s.on('error', () => {});
        const path = k % 3 === 0 ? `/big/${round}/${k}` : `/many/${round}/${k}`;
        s.write(`GET ${path} HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n`);
        return new Promise<{ got: string; path: string }>((r) =>
          s.on('end', () => {
            s.destroy();
            r({ got, path });
          }),
        );
      });
      for (const { got, path } of await Promise.all(runs)) {
        expect(got).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
        expect(got.toLowerCase()).toContain('connection: close\r\n');
        expect(got.slice(got.indexOf('\r\n\r\n') + 4).startsWith(`ok ${path}`)).toBe(true);
        const len = Number(/content-length: *(\d+)/i.exec(got)![1]);
        expect(got.length - got.indexOf('\r\n\r\n') - 4).toBe(len);
      }
    }
    // None of them lingers open on Strait's side.
    await strait.waitStat('http.web.downstream_cx_active', (v) => v === 0, 10_000);
  }, 30_000);

  it('answers pipelined requests mixing forwarded ones, local replies and a closing one, in order, then closes', async () => {
    for (let k = 0; k < 10; k++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      const got = responses(s, 6).catch((err: Error) => err);
      const ended = new Promise<void>((r) => s.on('end', () => r()));
      s.write(
        `GET /p/${k}/a HTTP/1.1\r\nhost: h\r\n\r\n` +
          'GET /direct HTTP/1.1\r\nhost: h\r\n\r\n' +
          `GET /p/${k}/b HTTP/1.1\r\nhost: h\r\n\r\n` +
          `GET /p/${k}/c HTTP/1.1\r\nhost: h\r\n\r\n` +
          'GET /direct HTTP/1.1\r\nhost: h\r\n\r\n' +
          `GET /p/${k}/d HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n`,
      );
      const r = await got;
      await ended;
      s.destroy();
      expect(r).not.toBeInstanceOf(Error);
      const bodies = (r as { body: string }[]).map((x) => x.body);
      expect(bodies).toEqual([`ok /p/${k}/a`, 'teapot', `ok /p/${k}/b`, `ok /p/${k}/c`, 'teapot', `ok /p/${k}/d`]);
    }
  }, 20_000);

  it('delivers a held response the kernel took in part intact while other connections reuse the stage', async () => {
    const slow = net.connect(port, '127.0.0.1');
    slow.on('error', () => {});
    await new Promise<void>((r) => slow.once('connect', () => r()));
    // The client reads nothing: each response is held and sent whole until the kernel's buffers
    // fill and a send is taken in part; then the proxy queues, and stops reading this client.
    slow.pause();
    const before = (await strait.stat('http.web.downstream_flow_control_paused_reading_total')) ?? 0;
    let sent = 0;
    for (; sent < 5000; sent++) {
      const answered = new Promise<boolean>((r) => {
        const t = setTimeout(() => r(false), 300);
        after.set(`/big/${sent}`, () => {
          clearTimeout(t);
          r(true);
        });
      });
      slow.write(`GET /big/${sent} HTTP/1.1\r\nhost: h\r\n\r\n`);
      if (!(await answered)) {
        sent++;
        break;
      }
    }
    expect(await strait.stat('http.web.downstream_flow_control_paused_reading_total')).toBeGreaterThan(before);
    // Another client's held responses are written over the stage meanwhile.
    for (let k = 0; k < 30; k++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      const got = responses(s, 1);
      s.write(`GET /big/other-${k} HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n`);
      expect((await got)[0]!.body).toBe(`ok /big/other-${k} ${'x'.repeat(3000)}`);
      s.destroy();
    }
    const got = responses(slow, sent);
    slow.resume();
    const r = await got;
    slow.destroy();
    const bad = r.map((x, k) => (x.body === `ok /big/${k} ${'x'.repeat(3000)}` ? -1 : k)).filter((k) => k >= 0);
    expect(bad).toEqual([]);
  }, 30_000);

  it('answers a request read in the same batch as the response before it in order, the local reply second', async () => {
    for (let k = 0; k < 60; k++) {
      const s = net.connect(port, '127.0.0.1');
      await new Promise<void>((r) => s.once('connect', () => r()));
      const got = responses(s, 2);
      // The next request leaves as the upstream's answer to the first does.
      after.set(`/race/${k}`, () => s.write('GET /direct HTTP/1.1\r\nhost: h\r\n\r\n'));
      s.write(`GET /race/${k} HTTP/1.1\r\nhost: h\r\n\r\n`);
      const [first, second] = await got;
      s.destroy();
      expect(first).toEqual({ status: 'HTTP/1.1 200 OK', body: `ok /race/${k}` });
      expect(second!.status).toMatch(/^HTTP\/1\.1 418 /);
      expect(second!.body).toBe('teapot');
    }
  }, 30_000);
});
