// The timeouts of HTTP/1.1 sessions: route and idle timeouts wait in one list per timeout
// length (deadlines.ts), not in a Timeout per request or connection. A shorter route timeout
// than the one before it on the connection must still fire, each request in flight times out
// from its own start, a finished request's timeout never reaches a later one (streams are
// reused across connections), and the idle timeout must still close a connection that served
// requests.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** Answers at once, except /hang..., which it never answers, and /delay..., after 600 ms. */
async function upstream(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, i).split(' ')[1]!;
        buf = buf.slice(i + 4);
        const answer = () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        if (path.includes('/delay')) setTimeout(answer, 600);
        else if (!path.includes('/hang')) answer();
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
  let oneshot: number;

  beforeAll(async () => {
    up = await upstream();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/short" }
    route: { cluster: up, timeout: 0.3s }
  - match: { prefix: "/untimed" }
    route: { cluster: up, timeout: 0s }
  - match: { prefix: "/" }
    route: { cluster: up, timeout: 60s }`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', routes, '          common_http_protocol_options: { idle_timeout: 1s }\n')}
${hcmListener('oneshot', routes, '          common_http_protocol_options: { max_requests_per_connection: 1 }\n')}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    port = await strait.port('ingress');
    oneshot = await strait.port('oneshot');
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

  it('requests in flight on several connections each time out from their own start', { timeout: 20_000 }, async () => {
    const conns = [new Conn(port), new Conn(port), new Conn(port)];
    // Started 120 ms apart: each one's 0.3 s runs out while the others are still waiting.
    const done = conns.map(async (c, i) => {
      await new Promise((r) => setTimeout(r, i * 120));
      const start = Date.now();
      const r = await c.get('/short/hang');
      return { r, took: Date.now() - start };
    });
    const results = await Promise.all(done);
    for (const { r, took } of results) {
      expect(r).toEqual({ status: 504, body: 'upstream request timeout' });
      // 0.3 s from its own start, not from the first request's (the list's timer is set for its head).
      expect(took).toBeGreaterThanOrEqual(280);
    }
    for (const c of conns) c.sock.destroy();
  });

  it("a finished request's route timeout never reaches a later request on another connection", { timeout: 20_000 }, async () => {
    // Each first request runs on a stream that a closed connection left (http1_session.ts
    // streamPool): a 0.3 s timeout armed and not taken back would cut the 600 ms answers short
    // (a route without a timeout arms none that would replace it).
    for (let i = 0; i < 3; i++) {
      const a = new Conn(port);
      expect(await a.get('/short/fast')).toEqual({ status: 200, body: 'ok' });
      a.sock.destroy();
      await new Promise((r) => setTimeout(r, 50));
      const b = new Conn(port);
      expect(await b.get('/untimed/delay')).toEqual({ status: 200, body: 'ok' });
      b.sock.destroy();
    }
  });

  it('the idle timeout closes a connection after the requests it served', { timeout: 20_000 }, async () => {
    const before = (await strait.stat('http.ingress.downstream_cx_idle_timeout')) ?? 0;
    const c = new Conn(port);
    for (let i = 0; i < 5; i++) expect(await c.get('/fast')).toEqual({ status: 200, body: 'ok' });
    await c.closedByPeer();
    await strait.waitStat('http.ingress.downstream_cx_idle_timeout', (v) => v === before + 1);
  });

  /** One request on a raw connection that stays half-open from the client's side; resolves at the proxy's FIN. */
  async function oneRequest(to: number, connection: string): Promise<{ sock: net.Socket; head: string }> {
    const sock = net.connect({ port: to, host: '127.0.0.1', allowHalfOpen: true });
    sock.on('error', () => {});
    let got = '';
    sock.on('data', (d) => (got += d.toString('latin1')));
    const ended = new Promise<void>((r) => sock.once('end', () => r()));
    sock.write(`GET /fast HTTP/1.1\r\nhost: t\r\n${connection}\r\n`);
    await ended;
    return { sock, head: got };
  }

  it('closes a connection whose client keeps its side open 5 s after our FIN', { timeout: 20_000 }, async () => {
    // max_requests_per_connection: the proxy ends the connection; the client asked for nothing.
    await strait.waitStat('http.oneshot.downstream_cx_active', (v) => v === 0);
    const { sock, head } = await oneRequest(oneshot, '');
    expect(head).toMatch(/^HTTP\/1\.1 200 [^]*connection: close\r\n/i);
    const finAt = Date.now();
    // Our FIN went; the client never sends its own. The connection lingers, then goes.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await strait.stat('http.oneshot.downstream_cx_active')).toBe(1);
    await strait.waitStat('http.oneshot.downstream_cx_active', (v) => v === 0, 10_000);
    expect(Date.now() - finAt).toBeGreaterThanOrEqual(4_500);
    sock.destroy();
  });

  it('closes at once after answering a client that asked to close and sent nothing more', { timeout: 20_000 }, async () => {
    await strait.waitStat('http.ingress.downstream_cx_active', (v) => v === 0);
    const { sock, head } = await oneRequest(port, 'connection: close\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\nok$/);
    // Gone without waiting for the client's FIN, which never comes.
    await strait.waitStat('http.ingress.downstream_cx_active', (v) => v === 0, 2_000);
    sock.destroy();
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
