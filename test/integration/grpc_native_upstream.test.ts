// gRPC and HTTP/2 to HTTP/2 upstreams on both h2 engines (--h2-engine node|native). With native,
// both the downstream session and the upstream client connections run on the addon's nghttp2
// session; every behaviour below must be the same on either.
import crypto from 'node:crypto';
import http2 from 'node:http2';
import type net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const id = (b: Buffer) => b;
const method = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: id,
  requestDeserialize: id,
  responseSerialize: id,
  responseDeserialize: id,
});
const SERVICE = {
  unary: method('/t.S/Unary', false, false),
  serverStream: method('/t.S/ServerStream', false, true),
  clientStream: method('/t.S/ClientStream', true, false),
  bidi: method('/t.S/Bidi', true, true),
  hang: method('/t.S/Hang', false, false),
} as unknown as grpc.ServiceDefinition;
type SClient = grpc.Client & Record<string, (...args: any[]) => any>;
const SClient = grpc.makeGenericClientConstructor(SERVICE, 'S') as unknown as new (addr: string, creds: grpc.ChannelCredentials, opts?: object) => SClient;
const BIG = { 'grpc.max_receive_message_length': 64 * MiB, 'grpc.max_send_message_length': 64 * MiB };
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

async function grpcServer() {
  const server = new grpc.Server(BIG);
  server.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const size = Number(call.metadata.get('x-size')[0] ?? 0);
      const t = new grpc.Metadata();
      t.set('x-trailer', 'bye');
      // x-size: answer the request's digest and that many bytes (a large message each way).
      cb(null, size ? Buffer.concat([Buffer.from(sha(call.request)), Buffer.alloc(size, 7)]) : Buffer.concat([Buffer.from('echo:'), call.request]), t);
    },
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      for (let i = 0; i < n; i++) call.write(Buffer.from(`m${i}`));
      call.end();
    },
    clientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const h = crypto.createHash('sha256');
      let count = 0;
      call.on('data', (d: Buffer) => {
        count++;
        h.update(d);
      });
      call.on('end', () => cb(null, Buffer.from(`${count}:${h.digest('hex')}`)));
    },
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (d: Buffer) => call.write(Buffer.concat([Buffer.from('re:'), d])));
      call.on('end', () => call.end());
    },
    hang: () => {},
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  // Forced: the hang handler never answers.
  return { port, close: async () => server.forceShutdown() };
}

/**
 * GOAWAY, then REFUSED_STREAM for `stream`: node:http2 names the last stream it received in
 * GOAWAY whatever it is told, so the refusal is explicit.
 */
function refuse(stream: http2.ServerHttp2Stream): void {
  stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR);
  stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
}

/**
 * A raw h2c upstream: /reset resets every stream; the first /goaway stream gets GOAWAY and is
 * refused (RST_STREAM REFUSED_STREAM: not processed), later ones are answered; /big/N streams N bytes
 * honouring flow control and counts what it handed to its stream; an .../echo... path answers with
 * the request body's length and SHA-256 (the first /goaway-echo is refused likewise). Records the
 * client's SETTINGS.
 */
async function rawUpstream() {
  const state = { sessions: 0, enablePush: [] as (boolean | undefined)[], bigAccepted: 0, goawaySent: 0, echoRefused: 0 };
  const server = http2.createServer();
  const chunk = crypto.randomBytes(64 * 1024);
  const open = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    state.sessions++;
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('remoteSettings', (st) => state.enablePush.push(st.enablePush));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = String(headers[':path']);
    if (path.startsWith('/reset')) {
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    if (path.startsWith('/goaway-echo') && state.echoRefused === 0) {
      // Refused once, body and all: the retry must send the whole body again.
      state.echoRefused++;
      refuse(stream);
      return;
    }
    if (path.includes('echo')) {
      // The request body's length and digest, as the upstream received it.
      const h = crypto.createHash('sha256');
      let n = 0;
      stream.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      stream.on('end', () => stream.respond({ ':status': 200, 'x-body-len': String(n), 'x-body-sha': h.digest('hex') }, { endStream: true }));
      return;
    }
    if (path.startsWith('/goaway') && state.goawaySent === 0) {
      state.goawaySent++;
      refuse(stream);
      return;
    }
    if (path.startsWith('/big/')) {
      const total = Number(path.slice(5));
      state.bigAccepted = 0;
      stream.respond({ ':status': 200 });
      const pump = () => {
        while (state.bigAccepted < total) {
          state.bigAccepted += chunk.length;
          if (!stream.write(chunk)) return void stream.once('drain', pump);
        }
        stream.end();
      };
      pump();
      return;
    }
    stream.resume();
    stream.on('end', () => stream.respond({ ':status': 200, 'x-path': path }, { endStream: true }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const close = () =>
    new Promise<void>((r) => {
      for (const s of open) s.destroy();
      server.close(() => r());
    });
  return { port: (server.address() as net.AddressInfo).port, state, close };
}

function unary(c: SClient, req: Buffer, md: Record<string, string> = {}, deadlineMs = 0, name = 'unary'): Promise<{ err: grpc.ServiceError | null; res: Buffer | null; trailers: grpc.Metadata | null }> {
  return new Promise((resolve) => {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(md)) m.set(k, v);
    let trailers: grpc.Metadata | null = null;
    const opts = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
    const call = c[name]!(req, m, opts, (err: grpc.ServiceError | null, res: Buffer | null) => setImmediate(() => resolve({ err, res, trailers })));
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

function ask(s: http2.ClientHttp2Session, path: string): Promise<{ status: number; rst: number; headers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve) => {
    const rq = s.request({ ':path': path, ':method': 'GET' }, { endStream: true });
    let status = 0;
    let headers: http2.IncomingHttpHeaders = {};
    rq.on('response', (h) => {
      status = Number(h[':status']);
      headers = h;
    });
    rq.resume();
    rq.on('error', () => {});
    rq.on('close', () => resolve({ status, rst: rq.rstCode ?? 0, headers }));
  });
}

/** POSTs `body` in pieces of `piece` bytes; the upstream's x-body-len and x-body-sha. */
function postEcho(s: http2.ClientHttp2Session, path: string, body: Buffer, piece: number): Promise<{ status: number; len: string; sha: string }> {
  return new Promise((resolve, reject) => {
    const rq = s.request({ ':path': path, ':method': 'POST' });
    rq.on('response', (h) => resolve({ status: Number(h[':status']), len: String(h['x-body-len']), sha: String(h['x-body-sha']) }));
    rq.on('error', reject);
    rq.resume();
    for (let o = 0; o < body.length; o += piece) rq.write(body.subarray(o, o + piece));
    rq.end();
  });
}

const H2 = '    http2_protocol_options: {}\n';

describe.each(['node', 'native'] as const)('gRPC and HTTP/2 upstreams with the %s h2 engine on both sides', (h2engine) => {
  const engine = ENGINES[0]!;
  let g: Awaited<ReturnType<typeof grpcServer>>;
  let raw: Awaited<ReturnType<typeof rawUpstream>>;
  let strait: StraitProcess;
  let client: SClient;
  let port: number;

  beforeAll(async () => {
    g = await grpcServer();
    raw = await rawUpstream();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/t.S/" }
    route: { cluster: grpc, timeout: 0s }
  - match: { prefix: "/reset" }
    route: { cluster: raw }
  - match: { prefix: "/goaway" }
    route: { cluster: raw, retry_policy: { retry_on: refused-stream, num_retries: 2 } }
  - match: { prefix: "/" }
    route: { cluster: raw, timeout: 0s }`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', routes)}
  clusters:
${staticCluster('grpc', [g.port], H2)}
${staticCluster('raw', [raw.port], H2)}`,
      { engine, args: ['--h2-engine', h2engine] },
    );
    port = await strait.port('mesh');
    client = new SClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), BIG);
  });

  afterAll(async () => {
    client?.close();
    await strait?.stop();
    await g?.close();
    await raw?.close();
  });

  it('connects upstream with the chosen engine (the native client refuses server push in its SETTINGS)', async () => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    const r = await ask(s, '/plain');
    s.close();
    expect(r.status).toBe(200);
    expect(r.headers['x-path']).toBe('/plain');
    expect(raw.state.enablePush.length).toBeGreaterThan(0);
    // node:http2's client leaves push on; the addon's client session sends ENABLE_PUSH 0.
    expect(raw.state.enablePush.at(-1)).toBe(h2engine === 'native' ? false : true);
  });

  it('carries unary calls with metadata and trailers, many at once over one connection', async () => {
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => unary(client, Buffer.from(`hi${i}`))));
    rs.forEach((r, i) => {
      expect(r.err).toBeNull();
      expect(r.res!.toString()).toBe(`echo:hi${i}`);
      expect(r.trailers!.get('x-trailer')[0]).toBe('bye');
    });
    expect(await strait.stat('cluster.grpc.upstream_rq_200')).toBeGreaterThanOrEqual(50);
    expect(await strait.stat('cluster.grpc.upstream_cx_http2_total')).toBe(1);
  });

  it('streams server-side, client-side and both ways', async () => {
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.serverStream(Buffer.from('100'));
      call.on('data', (d: Buffer) => got.push(d.toString()));
      call.on('error', reject);
      call.on('end', resolve);
    });
    expect(got).toHaveLength(100);
    expect(got[99]).toBe('m99');

    const parts = Array.from({ length: 40 }, () => crypto.randomBytes(10_000));
    const cs = await new Promise<string>((resolve, reject) => {
      const call = client.clientStream((err: Error | null, res: Buffer) => (err ? reject(err) : resolve(res.toString())));
      for (const p of parts) call.write(p);
      call.end();
    });
    expect(cs).toBe(`40:${sha(Buffer.concat(parts))}`);

    const echoes: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.bidi();
      let i = 0;
      call.on('data', (d: Buffer) => {
        echoes.push(d.toString());
        if (++i < 20) call.write(Buffer.from(`p${i}`));
        else call.end();
      });
      call.on('error', reject);
      call.on('end', resolve);
      call.write(Buffer.from('p0'));
    });
    expect(echoes).toHaveLength(20);
    expect(echoes[19]).toBe('re:p19');
  });

  it('moves 16 MiB messages each way', async () => {
    const big = crypto.randomBytes(16 * MiB);
    const r = await unary(client, big, { 'x-size': String(16 * MiB) });
    expect(r.err).toBeNull();
    expect(r.res!.subarray(0, 64).toString()).toBe(sha(big));
    expect(r.res!.length).toBe(64 + 16 * MiB);
  });

  it('ends a call past its deadline with DEADLINE_EXCEEDED and resets the upstream stream', async () => {
    const before = await strait.stat('cluster.grpc.upstream_rq_active');
    const txBefore = await strait.stat('cluster.grpc.upstream_rq_tx_reset');
    const r = await unary(client, Buffer.from('x'), {}, 200, 'hang');
    expect(r.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // Reset from this side (RST_STREAM CANCEL upstream): Envoy's upstream_rq_tx_reset.
    await strait.waitStat('cluster.grpc.upstream_rq_tx_reset', (v) => v === txBefore + 1);
    expect(await strait.stat('cluster.grpc.upstream_rq_tx_reset')).toBe(txBefore + 1);
    // The upstream stream is given back: nothing stays active once the call is over.
    let active = -1;
    for (let i = 0; i < 100 && active !== before; i++) {
      active = await strait.stat('cluster.grpc.upstream_rq_active');
      if (active !== before) await sleep(20);
    }
    expect(active).toBe(before);
    const ok = await unary(client, Buffer.from('after'));
    expect(ok.res!.toString()).toBe('echo:after');
  });

  it('answers an upstream stream reset with 503 (UNAVAILABLE for gRPC) and counts it', async () => {
    const before = await strait.stat('cluster.raw.upstream_rq_rx_reset');
    const txBefore = await strait.stat('cluster.raw.upstream_rq_tx_reset');
    const s = http2.connect(`http://127.0.0.1:${port}`);
    const r = await ask(s, '/reset');
    s.close();
    expect(r.status).toBe(503);
    expect(await strait.stat('cluster.raw.upstream_rq_rx_reset')).toBe(before + 1);
    // The upstream reset it, not this side.
    expect(await strait.stat('cluster.raw.upstream_rq_tx_reset')).toBe(txBefore);
  });

  it('retries a stream the upstream refused after GOAWAY, on a new connection', async () => {
    const sessions = raw.state.sessions;
    const s = http2.connect(`http://127.0.0.1:${port}`);
    const r = await ask(s, '/goaway/1');
    s.close();
    expect(raw.state.goawaySent).toBe(1);
    expect(r.status).toBe(200);
    expect(r.headers['x-path']).toBe('/goaway/1');
    expect(raw.state.sessions).toBe(sessions + 1);
    expect(await strait.stat('cluster.raw.upstream_rq_retry')).toBe(1);
  });

  it('forwards request bodies whole, without a retry policy (not kept) and with one (kept, sent again after a refusal)', async () => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
    const bodies = [crypto.randomBytes(5), crypto.randomBytes(3000), crypto.randomBytes(40000)];
    // Many at once as well: several requests' DATA in one read of the downstream connection.
    const all = await Promise.all(bodies.flatMap((b, i) => [postEcho(s, `/echo/${i}`, b, 1000), postEcho(s, `/echo/one/${i}`, b, b.length)]));
    all.forEach((r, k) => {
      const b = bodies[k >> 1]!;
      expect(r).toEqual({ status: 200, len: String(b.length), sha: sha(b) });
    });
    const retriesBefore = (await strait.stat('cluster.raw.upstream_rq_retry')) ?? 0;
    const r = await postEcho(s, '/goaway-echo', bodies[2]!, 1000);
    s.close();
    expect(raw.state.echoRefused).toBe(1);
    expect(r).toEqual({ status: 200, len: String(bodies[2]!.length), sha: sha(bodies[2]!) });
    expect(await strait.stat('cluster.raw.upstream_rq_retry')).toBe(retriesBefore + 1);
  });

  it('holds a large upstream response to a bounded amount while the downstream does not read', async () => {
    const total = 64 * MiB;
    const s = http2.connect(`http://127.0.0.1:${port}`);
    const rq = s.request({ ':path': `/big/${total}`, ':method': 'GET' }, { endStream: true });
    rq.on('error', () => {});
    await new Promise((r) => rq.once('response', r));
    rq.pause();
    let last = -1;
    for (let same = 0, i = 0; i < 1500 && same < 15; i++) {
      await sleep(20);
      same = raw.state.bigAccepted === last ? same + 1 : 0;
      last = raw.state.bigAccepted;
    }
    // Flow control end to end: the upstream is stopped far below the full body.
    expect(last).toBeLessThan(16 * MiB);
    let got = 0;
    rq.on('data', (d: Buffer) => (got += d.length));
    rq.resume();
    await new Promise((r) => rq.on('close', r));
    s.close();
    expect(got).toBe(total);
  });
});

describe('--h2-engine native with --io-engine node', () => {
  it('keeps node:http2 for upstream connections (the pure-Node reference path)', async () => {
    const raw = await rawUpstream();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: raw }`;
    const strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', routes)}
  clusters:
${staticCluster('raw', [raw.port], H2)}`,
      { engine: 'node', args: ['--h2-engine', 'native'] },
    );
    try {
      const s = http2.connect(`http://127.0.0.1:${await strait.port('mesh')}`);
      const r = await ask(s, '/io-node');
      s.close();
      expect(r.status).toBe(200);
      // The addon's client sends ENABLE_PUSH 0; node's client leaves push enabled.
      expect(raw.state.enablePush.length).toBeGreaterThan(0);
      expect(raw.state.enablePush.at(-1)).toBe(true);
    } finally {
      await strait.stop();
      await raw.close();
    }
  });
});
