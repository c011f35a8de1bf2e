// Downstream h2c through http_connection_manager on both HTTP/2 engines (--h2-engine node|native):
// the addon's nghttp2 session must keep every behaviour node:http2 gives, limits included.
import crypto from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../helpers/net.js';
import { F, frame, hpack, PREFACE, T } from '../helpers/h2frames.js';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, runCli, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `read()` stops changing (a sender blocked by backpressure somewhere on the path). */
async function stalled(read: () => number): Promise<number> {
  let last = -1;
  let same = 0;
  for (let i = 0; i < 1500 && same < 15; i++) {
    await sleep(20);
    const v = read();
    same = v === last ? same + 1 : 0;
    last = v;
  }
  return last;
}

/** An HTTP/1.1 upstream: /big/N streams N bytes honouring backpressure and counts what it handed to its socket; /hold/* never answers; else echoes path and body size. */
async function upstream() {
  const state = { bigAccepted: 0, holdReq: null as http.IncomingMessage | null, aborted: 0, lastUrl: '' };
  const chunk = crypto.randomBytes(64 * KiB);
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    state.lastUrl = url;
    if (url.startsWith('/big/')) {
      const total = Number(url.slice(5));
      state.bigAccepted = 0;
      res.writeHead(200, { 'content-length': String(total) });
      const pump = () => {
        while (state.bigAccepted < total) {
          const n = Math.min(chunk.length, total - state.bigAccepted);
          state.bigAccepted += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    if (url.startsWith('/cut/')) {
      // A chunked body cut short: the response began and cannot finish. (With a content-length the
      // client could tell a short body by itself; chunked, only the reset says it.)
      const total = Number(url.slice(5));
      res.writeHead(200);
      res.write(chunk.subarray(0, total / 2), () => setTimeout(() => req.socket.destroy(), 20));
      return;
    }
    if (url.startsWith('/hold/')) {
      state.holdReq = req;
      // Read (so the socket's end is seen), never answer.
      req.resume();
      res.on('close', () => {
        if (!res.writableEnded) state.aborted++;
      });
      return;
    }
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => res.end(`${req.method} ${url} ${n}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, state, chunk, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function ask(s: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body: Buffer | null = null): Promise<{ status: number; text: string; rst: number }> {
  return new Promise((resolve) => {
    const rq = s.request(headers, { endStream: body === null });
    let status = 0;
    const chunks: Buffer[] = [];
    rq.on('response', (h) => (status = Number(h[':status'])));
    rq.on('data', (d: Buffer) => chunks.push(d));
    rq.on('error', () => {});
    rq.on('close', () => resolve({ status, text: Buffer.concat(chunks).toString(), rst: rq.rstCode ?? 0 }));
    if (body) rq.end(body);
  });
}

describe.each(['node', 'native'] as const)('downstream h2c on the %s h2 engine', (h2engine) => {
  let up: Awaited<ReturnType<typeof upstream>>;
  let strait: StraitProcess;
  let url: string;
  let idleUrl: string;

  beforeAll(async () => {
    up = await upstream();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('h2n', simpleRoutes('up', 'timeout: 0s'))}
${hcmListener('h2idle', simpleRoutes('up'), '          common_http_protocol_options: { idle_timeout: 0.3s }\n')}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine: ENGINES[0]!, args: ['--h2-engine', h2engine] },
    );
    url = `http://127.0.0.1:${await strait.port('h2n')}`;
    idleUrl = `http://127.0.0.1:${await strait.port('h2idle')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  function session(u = url): http2.ClientHttp2Session {
    const s = http2.connect(u);
    s.on('error', () => {});
    return s;
  }

  it('answers 200 concurrent streams on one connection, each with its own response', async () => {
    const s = session();
    try {
      const body = crypto.randomBytes(20 * KiB);
      const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => ask(s, { ':method': i % 2 ? 'POST' : 'GET', ':path': `/r/${i}` }, i % 2 ? body : null)));
      rs.forEach((r, i) => {
        expect(r.status).toBe(200);
        expect(r.text).toBe(i % 2 ? `POST /r/${i} ${body.length}` : `GET /r/${i} 0`);
      });
    } finally {
      s.close();
    }
    expect(await strait.stat('http.h2n.downstream_rq_http2_total')).toBeGreaterThanOrEqual(200);
  });

  it('stops pulling from the upstream while the client does not read, then delivers the whole body', async () => {
    const total = 96 * MiB;
    const s = session();
    try {
      const rq = s.request({ ':path': `/big/${total}` });
      rq.pause();
      const hash = crypto.createHash('sha256');
      let got = 0;
      const done = new Promise<void>((resolve, reject) => {
        rq.on('data', (d: Buffer) => {
          got += d.length;
          hash.update(d);
        });
        rq.on('end', resolve);
        rq.on('error', reject);
      });
      await new Promise<void>((r) => rq.once('response', () => r()));
      const at = await stalled(() => up.state.bigAccepted);
      // Bounded: windows, Strait's high-water marks and the kernel's socket buffers, far below the body.
      expect(at).toBeLessThan(48 * MiB);
      rq.resume();
      await done;
      expect(got).toBe(total);
      const expected = crypto.createHash('sha256');
      for (let off = 0; off < total; off += up.chunk.length) expected.update(up.chunk.subarray(0, Math.min(up.chunk.length, total - off)));
      expect(hash.digest('hex')).toBe(expected.digest('hex'));
    } finally {
      s.close();
    }
  });

  it('resets the upstream request when the client resets its stream mid-body; the connection serves on', async () => {
    const before = (await strait.stat('http.h2n.downstream_rq_rx_reset')) ?? 0;
    const txBefore = (await strait.stat('cluster.up.upstream_rq_tx_reset')) ?? 0;
    const abortedBefore = up.state.aborted;
    const s = session();
    try {
      const rq = s.request({ ':method': 'POST', ':path': '/hold/1' });
      rq.on('error', () => {});
      rq.write(Buffer.alloc(100 * KiB));
      for (let i = 0; i < 500 && !up.state.holdReq; i++) await sleep(10);
      expect(up.state.holdReq).not.toBeNull();
      rq.close(http2.constants.NGHTTP2_CANCEL);
      await strait.waitStat('http.h2n.downstream_rq_rx_reset', (v) => v >= before + 1);
      for (let i = 0; i < 500 && up.state.aborted === abortedBefore; i++) await sleep(10);
      expect(up.state.aborted).toBe(abortedBefore + 1);
      // Its request was on its way upstream: given up on by this side, a local reset.
      expect(await strait.stat('cluster.up.upstream_rq_tx_reset')).toBe(txBefore + 1);
      const r = await ask(s, { ':path': '/after' });
      expect(r.text).toBe('GET /after 0');
    } finally {
      up.state.holdReq = null;
      s.close();
    }
  });

  it('resets the stream (RST_STREAM INTERNAL_ERROR, never a clean end) when the upstream dies mid-body; the connection serves on', async () => {
    const s = session();
    try {
      const r = await ask(s, { ':path': '/cut/2000' });
      expect(r.status).toBe(200);
      expect(r.text.length).toBeLessThan(2000);
      // node:http2's close(code) used to end the stream first: the client saw END_STREAM and rstCode 0.
      expect(r.rst).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
      expect(await ask(s, { ':path': '/after-cut' })).toMatchObject({ status: 200, text: 'GET /after-cut 0' });
    } finally {
      s.close();
    }
  });

  it('answers a header list over the limit with 431; the connection serves on', async () => {
    const s = session();
    try {
      // Over max_request_headers_kb (60 KiB by default), under node's own send limit once compressed.
      const r = await ask(s, { ':path': '/hdr', 'x-big': 'x'.repeat(62 * KiB) });
      expect(r.status).toBe(431);
      expect(up.state.lastUrl).not.toBe('/hdr');
      const ok = await ask(s, { ':path': '/small' });
      expect(ok.text).toBe('GET /small 0');
    } finally {
      s.close();
    }
  });

  it('answers a protocol error with GOAWAY, counted, on that connection only', async () => {
    const good = session();
    try {
      expect((await ask(good, { ':path': '/1' })).status).toBe(200);
      const before = (await strait.stat('http.h2n.downstream_cx_protocol_error')) ?? 0;
      const raw = await connect(Number(new URL(url).port));
      raw.on('error', () => {});
      // A HEADERS frame on stream 0 after the preface: a connection error (RFC 9113 §6.2).
      raw.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), Buffer.from([0, 0, 1, 1, 5, 0, 0, 0, 0, 0x82])]));
      const closed = await new Promise<boolean>((resolve) => {
        let goaway = false;
        let got = Buffer.alloc(0);
        raw.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d]);
          for (let off = 0; off + 9 <= got.length; off += 9 + got.readUIntBE(off, 3)) if (got[off + 3] === 7) goaway = true;
        });
        // The server ends the connection after its GOAWAY ('end': the helper's sockets are half-open).
        raw.on('end', () => resolve(goaway));
        raw.on('close', () => resolve(goaway));
      });
      raw.destroy();
      expect(closed).toBe(true);
      await strait.waitStat('http.h2n.downstream_cx_protocol_error', (v) => v >= before + 1);
      expect((await ask(good, { ':path': '/2' })).text).toBe('GET /2 0');
    } finally {
      good.close();
    }
  });

  it('serves a client whose preface arrives in pieces and one whose preface and request arrive in one write', async () => {
    // Codec AUTO: the HTTP/1 session finds the preface in its first reads, whole or in pieces,
    // and the connection's fd moves to the HTTP/2 session with the bytes read so far.
    const request = Buffer.concat([frame(T.SETTINGS, 0, 0), frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, hpack([[':method', 'GET'], [':scheme', 'http'], [':path', '/pieces'], [':authority', 'x']]))]);
    const before = (await strait.stat('http.h2n.downstream_cx_http2_total')) ?? 0;
    const served = async (pieces: Buffer[]): Promise<string> => {
      const raw = await connect(Number(new URL(url).port));
      raw.on('error', () => {});
      const body = new Promise<string>((resolve, reject) => {
        let got = Buffer.alloc(0);
        let text = '';
        raw.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d]);
          while (got.length >= 9 && got.length >= 9 + got.readUIntBE(0, 3)) {
            const len = got.readUIntBE(0, 3);
            const [type, flags, stream] = [got[3]!, got[4]!, got.readUInt32BE(5) & 0x7fffffff];
            if (stream === 1 && type === T.DATA) text += got.subarray(9, 9 + len).toString();
            if (stream === 1 && (type === T.DATA || type === T.HEADERS) && flags & F.END_STREAM) resolve(text);
            if (type === T.GOAWAY || type === T.RST_STREAM) reject(new Error(`frame type ${type}`));
            got = got.subarray(9 + len);
          }
        });
        raw.on('close', () => reject(new Error('closed before the response ended')));
      });
      for (const [i, p] of pieces.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, 30));
        raw.write(p);
      }
      try {
        return await body;
      } finally {
        raw.destroy();
      }
    };
    expect(await served([Buffer.concat([PREFACE, request])])).toBe('GET /pieces 0');
    expect(await served([PREFACE.subarray(0, 3), PREFACE.subarray(3, 16), Buffer.concat([PREFACE.subarray(16), request])])).toBe('GET /pieces 0');
    await strait.waitStat('http.h2n.downstream_cx_http2_total', (v) => v === before + 2);
  });

  it('closes an idle connection with GOAWAY after idle_timeout', async () => {
    const before = (await strait.stat('http.h2idle.downstream_cx_idle_timeout')) ?? 0;
    const s = session(idleUrl);
    expect((await ask(s, { ':path': '/x' })).status).toBe(200);
    const goaway = await new Promise<boolean>((resolve) => {
      let g = false;
      s.on('goaway', () => (g = true));
      s.on('close', () => resolve(g));
    });
    expect(goaway).toBe(true);
    await strait.waitStat('http.h2idle.downstream_cx_idle_timeout', (v) => v >= before + 1);
  });
});

describe('--h2-engine', () => {
  it('native with --io-engine node: h2c is served by node:http2 (the session needs the native io engine)', async () => {
    const up = await upstream();
    const strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('fb', simpleRoutes('up'))}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine: 'node', args: ['--h2-engine', 'native'] },
    );
    const s = http2.connect(`http://127.0.0.1:${await strait.port('fb')}`);
    s.on('error', () => {});
    try {
      expect((await ask(s, { ':path': '/fallback' })).text).toBe('GET /fallback 0');
      expect(await strait.stat('http.fb.downstream_cx_http2_total')).toBe(1);
    } finally {
      s.close();
      await strait.stop();
      await up.close();
    }
  });

  it('refuses an unknown engine with a message naming the flag', async () => {
    const r = await runCli(['--config-yaml', 'static_resources: {}', '--h2-engine', 'quic']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--h2-engine (or STRAIT_H2_ENGINE) must be one of node, native, got "quic"');
  });
});
