// The forwarded request head of an HTTP/1.1 exchange is encoded once its upstream connection is
// at hand: while the native engine's batch reader hands out a batch, it is queued on the
// connection and sent at the batch's end (pipelined rounds count as a batch); otherwise it is
// written and sent by one addon call (encodeHeadSend). The generated x-request-id is written
// over its placeholder before the bytes leave. A body written behind a queued head must not
// overtake it, and the head is still kept whole for what comes after: the id the response
// repeats (always_set_request_id_in_response), a retry's second send, and a local reply made
// before any head was sent (a connect failure), which must carry an id of its own.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * Records each head it receives (and the Content-Length body after it); answers 503 to a path
 * starting /fail-once the first time, else 200.
 */
async function recordingUpstream(): Promise<{ port: number; heads: string[]; bodies: string[]; close: () => Promise<void> }> {
  const heads: string[] = [];
  const bodies: string[] = [];
  const failed = new Set<string>();
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, i);
        const len = Number(/^content-length: *(\d+)/im.exec(head)?.[1] ?? 0);
        if (buf.length < i + 4 + len) break;
        bodies.push(buf.slice(i + 4, i + 4 + len));
        buf = buf.slice(i + 4 + len);
        heads.push(head);
        const path = head.split(' ')[1]!;
        const fail = path.startsWith('/fail-once') && !failed.has(path);
        if (fail) failed.add(path);
        s.write(fail ? 'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nno' : 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, heads, bodies, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A port nothing listens on (connections to it are refused). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Sends raw requests one at a time on one connection; returns each response head (bodies are 2 bytes, or the local reply's). */
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
      const len = i === -1 ? -1 : Number(/^content-length: *(\d+)/im.exec(buf.slice(0, i))?.[1] ?? 0);
      if (i !== -1 && buf.length >= i + 4 + len) {
        out.push(buf.slice(0, i));
        buf = buf.slice(i + 4 + len);
        break;
      }
      await new Promise<void>((res) => (wake = res));
    }
  }
  sock.destroy();
  return out;
}

const value = (h: string, name: string) =>
  h
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(`${name}:`))
    .map((l) => l.slice(name.length + 1).trim());

describe.each(ENGINES)('HTTP/1.1 forwarded head, encoded and sent at attach, on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof recordingUpstream>>;
  let strait: StraitProcess;
  const ID_IN_RESPONSE = '          always_set_request_id_in_response: true\n';

  beforeAll(async () => {
    up = await recordingUpstream();
    const dead = await closedPort();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', simpleRoutes('up', 'retry_policy: { retry_on: "5xx", num_retries: 1 }'), ID_IN_RESPONSE)}
${hcmListener('dead', simpleRoutes('dead'), ID_IN_RESPONSE)}
  clusters:
${staticCluster('up', [up.port])}
${staticCluster('dead', [dead])}`,
      { engine },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('repeats in each response the id its upstream head carried, fresh per request on one connection', async () => {
    up.heads.length = 0;
    const resp = await exchange(await strait.port('ingress'), ['GET /a HTTP/1.1\r\nhost: h\r\n\r\n', 'GET /a HTTP/1.1\r\nhost: h\r\n\r\n', 'GET /b HTTP/1.1\r\nhost: h\r\n\r\n']);
    expect(resp.map((h) => h.split('\r\n')[0])).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    const sent = up.heads.map((h) => value(h, 'x-request-id'));
    const answered = resp.map((h) => value(h, 'x-request-id'));
    expect(answered).toEqual(sent);
    const ids = sent.map((v) => v[0]!);
    for (const id of ids) expect(id).toMatch(UUID);
    expect(new Set(ids).size).toBe(3);
    // The head the upstream saw is whole: request line first, the added lines, the blank line's CRLF stripped by the split.
    for (const h of up.heads) {
      expect(h.split('\r\n')[0]).toMatch(/^GET \/[ab] HTTP\/1\.1$/);
      expect(value(h, 'x-forwarded-proto')).toEqual(['http']);
    }
  });

  it('sends the same head, id included, on a retry', async () => {
    up.heads.length = 0;
    const [resp] = await exchange(await strait.port('ingress'), ['GET /fail-once/1 HTTP/1.1\r\nhost: h\r\n\r\n']);
    expect(resp!.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(up.heads).toHaveLength(2);
    expect(up.heads[1]).toBe(up.heads[0]);
    const id = value(up.heads[0]!, 'x-request-id');
    expect(id[0]).toMatch(UUID);
    expect(value(resp!, 'x-request-id')).toEqual(id);
  });

  it('sends a head before the body that came in the same read, on a reused connection', async () => {
    // The first exchange leaves an idle upstream connection; the second takes it while handling
    // the read that holds head and body, so its head waits for the end of the batch (native
    // engine) while the body is written: the body must not overtake it.
    const port = await strait.port('ingress');
    await exchange(port, ['GET /warm HTTP/1.1\r\nhost: h\r\n\r\n']);
    up.heads.length = 0;
    up.bodies.length = 0;
    const resp = await exchange(port, ['POST /post HTTP/1.1\r\nhost: h\r\ncontent-length: 11\r\n\r\nhello world', 'POST /post2 HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nabc']);
    expect(resp.map((h) => h.split('\r\n')[0])).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    expect(up.heads.map((h) => h.split('\r\n')[0])).toEqual(['POST /post HTTP/1.1', 'POST /post2 HTTP/1.1']);
    expect(up.bodies).toEqual(['hello world', 'abc']);
  });

  it('forwards pipelined requests in order, each head whole', async () => {
    up.heads.length = 0;
    const port = await strait.port('ingress');
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    const n = 8;
    const done = new Promise<void>((r) =>
      sock.on('data', (d) => {
        got += d.toString('latin1');
        if (got.split('HTTP/1.1 200 OK').length - 1 === n) r();
      }),
    );
    let batch = '';
    for (let i = 0; i < n; i++) batch += `GET /p${i} HTTP/1.1\r\nhost: h\r\n\r\n`;
    sock.write(batch);
    await done;
    sock.destroy();
    expect(up.heads.map((h) => h.split('\r\n')[0])).toEqual(Array.from({ length: n }, (_, i) => `GET /p${i} HTTP/1.1`));
    for (const h of up.heads) expect(value(h, 'x-request-id')[0]).toMatch(UUID);
  });

  it('gives a local reply made before any head was sent a generated id', async () => {
    const resp = await exchange(await strait.port('dead'), ['GET /x HTTP/1.1\r\nhost: h\r\n\r\n', 'GET /x HTTP/1.1\r\nhost: h\r\n\r\n']);
    expect(resp.map((h) => h.split('\r\n')[0])).toEqual(['HTTP/1.1 503 Service Unavailable', 'HTTP/1.1 503 Service Unavailable']);
    const ids = resp.map((h) => value(h, 'x-request-id'));
    for (const v of ids) {
      expect(v).toHaveLength(1);
      expect(v[0]).toMatch(UUID);
    }
    expect(ids[0]![0]).not.toBe(ids[1]![0]);
  });
});
