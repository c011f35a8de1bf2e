// The per-connection timers of an HTTP/1.1 session: one route timer and one idle timer serve
// every request on a keep-alive connection and are not moved per request (they sleep again when
// they fire early). A shorter route timeout than the one the timer was set for must still fire,
// a timer left from an earlier request must fire for the request now in flight, and the idle
// timeout must still close a connection that served requests.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** Answers at once, except /hang..., which it never answers. */
async function upstream(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, i).split(' ')[1]!;
        buf = buf.slice(i + 4);
        if (!path.includes('/hang')) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** One raw keep-alive client connection: send a request, read one response (Content-Length framed). */
class Conn {
  private buf = '';
  private waiters: (() => void)[] = [];
  ended = false;
  readonly sock: net.Socket;
  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('data', (d) => {
      this.buf += d.toString('latin1');
      this.wake();
    });
    this.sock.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.sock.on('error', () => {});
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  private next(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
  async get(path: string): Promise<{ status: number; body: string }> {
    this.sock.write(`GET ${path} HTTP/1.1\r\nhost: t\r\n\r\n`);
    for (;;) {
      const i = this.buf.indexOf('\r\n\r\n');
      if (i !== -1) {
        const head = this.buf.slice(0, i);
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (this.buf.length >= i + 4 + len) {
          const body = this.buf.slice(i + 4, i + 4 + len);
          this.buf = this.buf.slice(i + 4 + len);
          return { status: Number(head.split(' ')[1]), body };
        }
      }
      if (this.ended) throw new Error(`connection ended before the response to ${path}`);
      await this.next();
    }
  }
  async closedByPeer(): Promise<void> {
    while (!this.ended) await this.next();
  }
}

describe.each(ENGINES)('HTTP/1.1 connection timers on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof upstream>>;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    up = await upstream();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/short" }
    route: { cluster: up, timeout: 0.3s }
  - match: { prefix: "/" }
    route: { cluster: up, timeout: 60s }`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', routes, '          common_http_protocol_options: { idle_timeout: 1s }\n')}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    port = await strait.port('ingress');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('a shorter route timeout after a longer one on the same connection still fires', { timeout: 20_000 }, async () => {
    const c = new Conn(port);
    // The connection's route timer is set for 60 s here...
    expect(await c.get('/fast')).toEqual({ status: 200, body: 'ok' });
    // ...and this request's 0.3 s must not wait for it.
    expect(await c.get('/short/hang')).toEqual({ status: 504, body: 'upstream request timeout' });
    // The timer that fired serves the next requests too.
    expect(await c.get('/fast')).toEqual({ status: 200, body: 'ok' });
    expect(await c.get('/short/hang')).toEqual({ status: 504, body: 'upstream request timeout' });
    c.sock.destroy();
  });

  it('a route timer set by an earlier request fires for the request in flight', { timeout: 20_000 }, async () => {
    const c = new Conn(port);
    // Completed at once: the 0.3 s timer stays set, firing for nobody unless a request takes it over.
    expect(await c.get('/short/fast')).toEqual({ status: 200, body: 'ok' });
    await new Promise((r) => setTimeout(r, 150));
    expect(await c.get('/short/hang')).toEqual({ status: 504, body: 'upstream request timeout' });
    expect(await c.get('/short/fast')).toEqual({ status: 200, body: 'ok' });
    c.sock.destroy();
  });

  it('the idle timeout closes a connection after the requests it served', { timeout: 20_000 }, async () => {
    const before = (await strait.stat('http.ingress.downstream_cx_idle_timeout')) ?? 0;
    const c = new Conn(port);
    for (let i = 0; i < 5; i++) expect(await c.get('/fast')).toEqual({ status: 200, body: 'ok' });
    await c.closedByPeer();
    await strait.waitStat('http.ingress.downstream_cx_idle_timeout', (v) => v === before + 1);
  });

  it('times each connection out from its own last request: a busy one outlives idle ones opened with it', { timeout: 20_000 }, async () => {
    // One timer serves every idle connection with that timeout (deadlines.ts): a connection that
    // leaves the idle list for a request must not be timed out from its place before it.
    const before = (await strait.stat('http.ingress.downstream_cx_idle_timeout')) ?? 0;
    const idle = [new Conn(port), new Conn(port)];
    const busy = new Conn(port);
    for (const c of [...idle, busy]) expect(await c.get('/fast')).toEqual({ status: 200, body: 'ok' });
    // 2.4 s of a request every 400 ms: well past the idle connections' 1 s.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 400));
      expect(await busy.get('/fast')).toEqual({ status: 200, body: 'ok' });
    }
    expect(idle.every((c) => c.ended)).toBe(true);
    expect(busy.ended).toBe(false);
    await busy.closedByPeer();
    await strait.waitStat('http.ingress.downstream_cx_idle_timeout', (v) => v === before + 3);
  });
});
