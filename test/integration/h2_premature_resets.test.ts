// HTTP/2 rapid reset (CVE-2023-44487) on the downstream: a client that opens streams and resets
// them before any response loses its connection once those premature resets are half of its
// closed streams, counting at least 500 (Envoy's overload.premature_reset_* defaults), with
// http.<prefix>.downstream_rq_too_many_premature_resets counted. Ordinary cancellations among
// completed requests leave the connection alone, and other connections never notice. Raw frames:
// the attack is HEADERS + RST_STREAM pairs in bulk, which no client library sends on purpose.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E, F, frame, hpack, PREFACE, T, u32 } from '../helpers/h2frames.js';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** `/slow` answers after 5 s (so a reset always comes first); anything else at once. */
async function upstream() {
  let requests = 0;
  const server = http.createServer((rq, rs) => {
    requests++;
    if (rq.url === '/slow') setTimeout(() => rs.end('slow'), 5000).unref();
    else rs.end('fast');
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests: () => requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const get = (id: number, path: string, end = true) =>
  frame(T.HEADERS, F.END_HEADERS | (end ? F.END_STREAM : 0), id, hpack([[':method', 'GET'], [':scheme', 'http'], [':path', path], [':authority', 'svc']]));

/** A raw h2c connection: frames in, the types of frames out, and whether the peer closed it. */
async function rawH2(port: number) {
  const s = net.connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
  s.on('error', () => {});
  let closed = false;
  let buf = Buffer.alloc(0);
  const got: { type: number; flags: number; stream: number }[] = [];
  s.on('close', () => (closed = true));
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      got.push({ type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5) & 0x7fffffff });
      buf = buf.subarray(9 + len);
    }
  });
  s.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0)]));
  return {
    write: (b: Buffer) => new Promise<void>((r) => (closed ? r() : s.write(b, () => r()))),
    closed: () => closed,
    got,
    destroy: () => s.destroy(),
  };
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(ENGINES)('HTTP/2 premature stream resets on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof upstream>>;
  let strait: StraitProcess;
  let port: number;
  const stat = async (name: string) => (await strait.stat(`http.ingress.${name}`)) ?? 0;

  beforeAll(async () => {
    up = await upstream();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', simpleRoutes('svc'))}
  clusters:
${staticCluster('svc', [up.port])}`,
      { engine },
    );
    port = await strait.port('ingress');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('closes a connection that opens and resets streams in bulk, and only that one', async () => {
    const trips = await stat('downstream_rq_too_many_premature_resets');
    const resetsBefore = await stat('downstream_rq_rx_reset');
    // A bystander with a request in flight on its own connection.
    const other = http2.connect(`http://127.0.0.1:${port}`);
    other.on('error', () => {});
    const attack = await rawH2(port);
    let sent = 0;
    // The cap is far above where it must trip, so a loaded machine (Strait reading late) still
    // shows the close coming first.
    for (let id = 1; sent < 10_000 && !attack.closed(); ) {
      const batch: Buffer[] = [];
      for (let k = 0; k < 50; k++, id += 2, sent++) batch.push(get(id, '/slow', true), frame(T.RST_STREAM, 0, id, u32(E.CANCEL)));
      await attack.write(Buffer.concat(batch));
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(() => attack.closed());
    expect(await stat('downstream_rq_too_many_premature_resets')).toBe(trips + 1);
    // Closed at the 250th premature reset: the streams it got through are a few batches' worth
    // (what was already read when it tripped), nowhere near the 10,000 it would have sent.
    const resets = (await stat('downstream_rq_rx_reset')) - resetsBefore;
    expect(resets).toBeGreaterThanOrEqual(250);
    expect(sent).toBeLessThan(10_000);
    // The other connection still works.
    const body = await new Promise<string>((resolve, reject) => {
      const rq = other.request({ ':path': '/fast', ':authority': 'svc' });
      let b = '';
      rq.on('data', (d: Buffer) => (b += d.toString()));
      rq.on('end', () => resolve(b));
      rq.on('error', reject);
      rq.end();
    });
    expect(body).toBe('fast');
    other.close();
  });

  it('leaves a connection open whose resets stay under half of its closed streams', async () => {
    const trips = await stat('downstream_rq_too_many_premature_resets');
    const c = await rawH2(port);
    let id = 1;
    // 600 requests answered, 50 at a time (under any concurrent-stream limit)...
    const done = await stat('downstream_rq_completed');
    for (let b = 0; b < 12; b++) {
      const batch: Buffer[] = [];
      for (let k = 0; k < 50; k++, id += 2) batch.push(get(id, '/fast'));
      await c.write(Buffer.concat(batch));
      const want = done + (b + 1) * 50;
      await waitFor(async () => (await stat('downstream_rq_completed')) >= want);
    }
    // ...then 250 cancelled before their answers: 250 of 850 closed, under half.
    const resets = await stat('downstream_rq_rx_reset');
    const batch: Buffer[] = [];
    for (let k = 0; k < 250; k++, id += 2) batch.push(get(id, '/slow', true), frame(T.RST_STREAM, 0, id, u32(E.CANCEL)));
    await c.write(Buffer.concat(batch));
    await waitFor(async () => (await stat('downstream_rq_rx_reset')) >= resets + 250);
    // Still served: a PING is answered and one more request gets its response head.
    await c.write(Buffer.concat([frame(T.PING, 0, 0, Buffer.alloc(8)), get(id, '/fast')]));
    await waitFor(() => c.got.some((f) => f.type === T.PING && (f.flags & F.ACK) !== 0) && c.got.some((f) => f.type === T.HEADERS && f.stream === id));
    expect(c.closed()).toBe(false);
    expect(await stat('downstream_rq_too_many_premature_resets')).toBe(trips);
    c.destroy();
  });
});
