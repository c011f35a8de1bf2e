// Heads parsed straight from the batch reader's arena (the native engine's HTTP/1 path): the arena
// is overwritten every loop turn, so whatever outlives a turn (a request head read again when
// the access log line is written, a response head split across reads, a body too big to go out
// with its head) must have been moved out of it. Many connections read in one turn exercise the
// reuse; each answer must still be its own request's.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedSizedBody, hcmListener, httpUpstream, simpleRoutes, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const FORMAT = '"%REQ(:METHOD)% %REQ(:PATH)%|%REQ(X-TEST-TAG)%|%REQ(X-FILL)%|%RESP(X-RAW)%%RESP(X-UPSTREAM)%|%RESPONSE_CODE%\\n"';

/** A raw upstream whose answers arrive the ways a stream never shows: split heads, big bodies in one write. */
async function rawUpstream(): Promise<{ port: number; close(): Promise<void> }> {
  const srv = net.createServer((c) => {
    let buf = '';
    c.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4);
        const p = head.split(' ')[1]!;
        if (p.startsWith('/split')) {
          // The head in two reads, cut inside a header name; the body with the second.
          c.write('HTTP/1.1 200 OK\r\nContent-Le');
          setTimeout(() => c.write(`ngth: 5\r\nX-Raw: split\r\n\r\nhello`), 30);
        } else if (p.startsWith('/big')) {
          const body = Buffer.alloc(10_000, 0x62);
          c.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-Raw: big\r\n\r\n`), body]));
        } else {
          c.write('HTTP/1.1 204 No Content\r\nX-Raw: none\r\n\r\n');
        }
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

function get(agent: http.Agent, port: number, p: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function waitLine(file: string, pred: (line: string) => boolean): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const hit = text.split('\n').find((l) => l && pred(l));
    if (hit) return hit;
    await sleep(25);
  }
  throw new Error(`${file}: no such line`);
}

describe('HTTP/1 heads parsed in the batch reader arena (native engine)', () => {
  let up: TestUpstream;
  let raw: Awaited<ReturnType<typeof rawUpstream>>;
  let strait: StraitProcess;
  let port: number;
  let rawPort: number;
  let logFile: string;

  beforeAll(async () => {
    up = await httpUpstream('a');
    raw = await rawUpstream();
    const log = `          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{TMP}}/access.log"
              log_format: { text_format: ${FORMAT} }
`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('web', simpleRoutes('a'), log)}
${hcmListener('raw', simpleRoutes('raw'), log)}
  clusters:
${staticCluster('a', [up.port])}
${staticCluster('raw', [raw.port])}`,
      { engine: 'native' },
    );
    port = await strait.port('web');
    rawPort = await strait.port('raw');
    logFile = path.join(strait.dir, 'access.log');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
    await raw?.close();
  });

  it('answers every request of many keep-alive connections read in the same turns with its own response', { timeout: 30_000 }, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 48 });
    try {
      const rounds = 4;
      for (let r = 0; r < rounds; r++) {
        // 48 requests at once, one per connection: their heads land in one arena, side by side.
        const all = await Promise.all(
          Array.from({ length: 48 }, async (_, c) => {
            const tag = `c${c}-r${r}`;
            if (c % 2 === 0) {
              const res = await get(agent, port, `/echo/${tag}?q=${'x'.repeat(c)}`, { 'x-test-tag': tag });
              const echo = JSON.parse(res.body.toString()) as Echo;
              return [res.status, echo.url, echo.headers['x-test-tag'], res.headers['x-upstream']];
            }
            // A small body that leaves with its head (the inline path).
            const res = await get(agent, port, `/sized/${tag}`, { 'x-test-tag': tag, 'x-test-size': String(16 + c) });
            return [res.status, res.body.equals(expectedSizedBody(16 + c)) ? `/sized/${tag}` : 'bad body', tag, res.headers['x-upstream']];
          }),
        );
        all.forEach((got, c) => {
          const tag = `c${c}-r${r}`;
          expect(got).toEqual([200, c % 2 === 0 ? `/echo/${tag}?q=${'x'.repeat(c)}` : `/sized/${tag}`, tag, 'a']);
        });
      }
    } finally {
      agent.destroy();
    }
  });

  it('logs a request head read again after later turns reused the arena, with its own bytes', { timeout: 30_000 }, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const slowAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // A connection's first read takes the general path (the HTTP/2 preface check): the slow
      // request goes second on its connection, so its head is parsed in the arena.
      expect((await get(slowAgent, port, '/warm', {})).status).toBe(200);
      // The slow request's head is read when its response comes, ~200 ms later; meanwhile other
      // connections fill the arena with heads of the same length and different bytes.
      const slow = get(slowAgent, port, '/slow/AAAA', { 'x-test-tag': 'slow-tag', 'x-fill': 'A'.repeat(40), 'x-test-delay-ms': '200' });
      for (let i = 0; i < 10; i++) {
        await Promise.all(Array.from({ length: 31 }, (_, c) => get(agent, port, '/fast/ZZZZ', { 'x-test-tag': `fast-${i}-${c}`.padEnd(8, 'z').slice(0, 8), 'x-fill': 'Z'.repeat(40) })));
      }
      expect((await slow).status).toBe(200);
      const line = await waitLine(logFile, (l) => l.startsWith('GET /slow/'));
      expect(line).toBe(`GET /slow/AAAA|slow-tag|${'A'.repeat(40)}|-a|200`);
    } finally {
      agent.destroy();
      slowAgent.destroy();
    }
  });

  it('relays an upstream head split across reads, a body too big to go with its head, and no body at all', { timeout: 20_000 }, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        const split = await get(agent, rawPort, `/split/${i}`, {});
        expect([split.status, split.headers['x-raw'], split.body.toString()]).toEqual([200, 'split', 'hello']);
        const big = await get(agent, rawPort, `/big/${i}`, {});
        expect([big.status, big.headers['x-raw'], big.body.length, big.body.every((b) => b === 0x62)]).toEqual([200, 'big', 10_000, true]);
        const none = await get(agent, rawPort, `/none/${i}`, {});
        expect([none.status, none.headers['x-raw'], none.body.length]).toEqual([204, 'none', 0]);
      }
      // The response header read back for the log comes from the head kept after the turn.
      expect(await waitLine(logFile, (l) => l.startsWith('GET /split/2|'))).toBe('GET /split/2|-|-|split-|200');
      expect(await waitLine(logFile, (l) => l.startsWith('GET /none/2|'))).toBe('GET /none/2|-|-|none-|204');
    } finally {
      agent.destroy();
    }
  });
});
