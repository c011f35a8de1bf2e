// The HTTP/1 path read by the addon's batch reader (the native engine's default; the node engine
// and STRAIT_HTTP1_READER=stream read through Node streams). Raw clients on 127.0.0.1 drive what
// a stream never showed the session differently: heads cut across reads, many requests in one
// read, and a client that stops reading its responses.
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../helpers/net.js';
import { hcmListener, httpUpstream, simpleRoutes, type TestUpstream } from '../helpers/http.js';
import { ADMIN, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const LIMIT = 4096;

/** Collects a raw connection's bytes; `text()` is everything so far. */
function collect(s: net.Socket): { text(): string; bytes(): number } {
  const chunks: Buffer[] = [];
  let n = 0;
  s.on('data', (d: Buffer) => {
    chunks.push(d);
    n += d.length;
  });
  return { text: () => Buffer.concat(chunks).toString('latin1'), bytes: () => n };
}

async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 10));
}

describe.each(['batch', 'stream'])('HTTP/1 reads on the native engine (%s reader)', (mode) => {
  let up: TestUpstream;
  let big: http.Server;
  let bigBlocked = false;
  let bigWritten = 0;
  let strait: StraitProcess;
  let port: number;
  let bigPort: number;

  beforeAll(async () => {
    up = await httpUpstream('a');
    // Answers every request with an endless body; records when the proxy stops taking it.
    big = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = (): void => {
        do bigWritten += chunk.length;
        while (res.write(chunk));
        bigBlocked = true;
      };
      pump();
      res.on('drain', () => {
        bigBlocked = false;
        pump();
      });
      res.on('close', () => res.destroy());
    });
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
    const prev = process.env.STRAIT_HTTP1_READER;
    process.env.STRAIT_HTTP1_READER = mode;
    try {
      strait = await startStrait(
        `${ADMIN}static_resources:
  listeners:
${hcmListener('web', simpleRoutes('one'))}
${hcmListener('big', simpleRoutes('big')).replace('    address:', `    per_connection_buffer_limit_bytes: ${LIMIT}\n    address:`)}
  clusters:
${staticCluster('one', [up.port])}
${staticCluster('big', [(big.address() as net.AddressInfo).port])}`,
        { engine: 'native' },
      );
    } finally {
      if (prev === undefined) delete process.env.STRAIT_HTTP1_READER;
      else process.env.STRAIT_HTTP1_READER = prev;
    }
    port = await strait.port('web');
    bigPort = await strait.port('big');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
    big?.closeAllConnections();
    await new Promise((r) => big?.close(r));
  });

  it('answers a head that arrives in pieces, cut inside the method, a value and the final CRLF', async () => {
    const head = 'GET /split HTTP/1.1\r\nhost: example\r\nx-long-header: abcdefghij\r\n\r\n';
    for (const cut of [2, 50, head.length - 1]) {
      const s = await connect(port);
      const got = collect(s);
      // The first piece is read (counted by Strait) before the second is sent.
      const before = await strait.stat('http.web.downstream_cx_rx_bytes_total');
      s.write(head.slice(0, cut));
      await until(async () => (await strait.stat('http.web.downstream_cx_rx_bytes_total')) >= before + cut);
      expect(got.bytes()).toBe(0);
      s.write(head.slice(cut));
      await until(() => got.text().includes('"url":"/split"'));
      expect(got.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      s.destroy();
    }
  });

  it('answers many pipelined requests that arrive in one read, in order', async () => {
    const s = await connect(port);
    const got = collect(s);
    const n = 40;
    let req = '';
    for (let i = 0; i < n; i++) req += `GET /p${i} HTTP/1.1\r\nhost: x\r\n\r\n`;
    s.write(req);
    await until(() => (got.text().match(/HTTP\/1\.1 200/g) ?? []).length >= n && got.text().includes(`"url":"/p${n - 1}"`));
    const urls = [...got.text().matchAll(/"url":"(\/p\d+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(Array.from({ length: n }, (_, i) => `/p${i}`));
    s.destroy();
  });

  it('a client that stops reading stops Strait reading the upstream and, past the buffer limit, the client', async () => {
    const s = await connect(bigPort);
    s.pause(); // never reads a response byte
    // One request whose response never ends, then pipelined ones that wait behind it.
    const one = 'GET /big HTTP/1.1\r\nhost: x\r\n\r\n';
    const next = 'GET /next HTTP/1.1\r\nhost: x\r\n\r\n';
    const total = 512 * 1024;
    s.write(one + next.repeat(Math.ceil(total / next.length)));
    // The upstream's endless body stops moving: Strait no longer reads it (were it still reading,
    // this would never settle and the test would time out).
    let last = -1;
    await until(() => {
      const settled = bigBlocked && bigWritten === last;
      last = bigWritten;
      return settled;
    });
    expect(bigWritten).toBeLessThan(64 * 1024 * 1024);
    // The pipelined requests: Strait stopped reading the client once more than the limit waited
    // (at most a read past it); the rest stays in the kernel.
    await until(async () => (await strait.stat('http.big.downstream_cx_rx_bytes_total')) > LIMIT);
    const rx = await strait.stat('http.big.downstream_cx_rx_bytes_total');
    expect(rx).toBeLessThan(total / 2);
    expect(await strait.stat('http.big.downstream_rq_total')).toBe(1);
    s.destroy();
  });
});
