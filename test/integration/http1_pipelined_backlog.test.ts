// A pipelining HTTP/1.1 client that stops reading: Strait answers only as far as the kernel takes
// the responses, then stops reading the connection (downstream_flow_control_paused_reading_total)
// instead of queueing every response in memory, and goes on once the client reads again — every
// response arrives, in order.
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const BODY = 16 * 1024;
const N = 3000; // 48 MiB of responses: far more than the kernel's socket buffers hold

describe.each(ENGINES)('pipelined requests from a client that stops reading, on the %s engine', (engine) => {
  let up: http.Server;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    const body = Buffer.alloc(BODY, 'b');
    up = http.createServer((rq, rs) => {
      rs.setHeader('x-n', rq.url!.slice(1));
      rs.end(body);
    });
    up.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', simpleRoutes('svc'))}
  clusters:
${staticCluster('svc', [(up.address() as net.AddressInfo).port])}`,
      { engine },
    );
    port = await strait.port('ingress');
  });

  afterAll(async () => {
    await strait?.stop();
    up?.closeAllConnections();
    await new Promise<void>((r) => up?.close(() => r()));
  });

  it('stops answering while the client does not read, then delivers every response in order', async () => {
    const stat = async (n: string) => (await strait.stat(`http.ingress.${n}`)) ?? 0;
    const paused = await stat('downstream_flow_control_paused_reading_total');
    const done0 = await stat('downstream_rq_completed');
    const s = net.connect(port, '127.0.0.1');
    s.pause();
    await new Promise<void>((r) => s.once('connect', r));
    let reqs = '';
    for (let i = 0; i < N; i++) reqs += `GET /${i} HTTP/1.1\r\nHost: svc\r\n\r\n`;
    s.write(reqs);
    // Strait answers until the kernel's buffers are full, then waits; give it time to go further if it would.
    let last = -1;
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = await stat('downstream_rq_completed');
      if (now === last && now > done0) break;
      last = now;
    }
    const answeredUnread = (await stat('downstream_rq_completed')) - done0;
    expect(await stat('downstream_flow_control_paused_reading_total')).toBeGreaterThan(paused);
    // Before the fix every request was answered and its 16 KiB queued in Strait's memory.
    expect(answeredUnread).toBeLessThan(N / 2);
    // Now read: every response, in order, each whole.
    const seen: number[] = [];
    let buf = Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${seen.length} responses`)), 30_000);
      s.on('data', (d: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        for (;;) {
          const he = buf.indexOf('\r\n\r\n');
          if (he < 0) break;
          const head = buf.toString('latin1', 0, he);
          const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? -1);
          if (buf.length < he + 4 + len) break;
          expect(head.startsWith('HTTP/1.1 200 ')).toBe(true);
          expect(len).toBe(BODY);
          seen.push(Number(/x-n: (\d+)/i.exec(head)?.[1]));
          buf = buf.subarray(he + 4 + len);
        }
        if (seen.length === N) {
          clearTimeout(t);
          resolve();
        }
      });
      s.resume();
    });
    expect(seen).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(await stat('downstream_flow_control_resumed_reading_total')).toBeGreaterThan(0);
    s.destroy();
  }, 60_000);
});
