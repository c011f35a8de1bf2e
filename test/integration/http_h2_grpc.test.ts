import crypto from 'node:crypto';
import http2 from 'node:http2';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, deadPort, sha256 } from '../helpers/net.js';
import { hcmListener, httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

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
/** A bytes-in, bytes-out service: no .proto needed, the proxy never looks inside messages anyway. */
const SERVICE = {
  unary: method('/test.Echo/Unary', false, false),
  serverStream: method('/test.Echo/ServerStream', false, true),
  clientStream: method('/test.Echo/ClientStream', true, false),
  bidi: method('/test.Echo/Bidi', true, true),
} as unknown as grpc.ServiceDefinition;
type EchoClient = grpc.Client & Record<string, (...args: any[]) => any>;
const EchoClient = grpc.makeGenericClientConstructor(SERVICE, 'Echo') as unknown as new (addr: string, creds: grpc.ChannelCredentials, opts?: object) => EchoClient;

let failUnavailable = new Map<string, number>();

async function grpcServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  server.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const md = call.metadata;
      const key = String(md.get('x-fail-key')[0] ?? '');
      if (key) {
        const n = failUnavailable.get(key) ?? 0;
        failUnavailable.set(key, n + 1);
        if (n < Number(md.get('x-fail')[0] ?? 0)) {
          cb({ code: grpc.status.UNAVAILABLE, details: 'try again' });
          return;
        }
      }
      if (md.get('x-status')[0]) {
        cb({ code: Number(md.get('x-status')[0]), details: 'as asked' });
        return;
      }
      const delay = Number(md.get('x-delay-ms')[0] ?? 0);
      const trailer = new grpc.Metadata();
      trailer.set('x-trailer', 'bye');
      const answer = () => cb(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer);
      if (delay) setTimeout(answer, delay);
      else answer();
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
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, close: () => new Promise((r) => server.tryShutdown(() => r())) };
}

/** A plain h2c server answering JSON about what it received (no content-length on purpose). */
async function h2EchoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    // Never answered, whatever grpc-timeout says: only the proxy can end such a call.
    if (String(headers[':path']).startsWith('/h2echo/hang')) {
      stream.on('error', () => {});
      return;
    }
    const h = crypto.createHash('sha256');
    let length = 0;
    stream.on('data', (d: Buffer) => {
      length += d.length;
      h.update(d);
    });
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ path: headers[':path'], method: headers[':method'], authority: headers[':authority'], custom: headers['x-custom'], grpcTimeout: headers['grpc-timeout'], length, sha: h.digest('hex') }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as import('node:net').AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

function unary(c: EchoClient, req: Buffer, md: Record<string, string> = {}): Promise<{ err: grpc.ServiceError | null; res: Buffer | null; trailers: grpc.Metadata | null }> {
  return new Promise((resolve) => {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(md)) m.set(k, v);
    let trailers: grpc.Metadata | null = null;
    const call = c.unary(req, m, (err: grpc.ServiceError | null, res: Buffer | null) => setImmediate(() => resolve({ err, res, trailers })));
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

const H2_CLUSTER = '    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: { http2_protocol_options: {} }\n';

// The io engine is the first of ENGINES; the downstream HTTP/2 engine is node:http2 and the addon's
// nghttp2 session in turn (--h2-engine), which must behave alike in every test below.
describe.each(['node', 'native'] as const)('HTTP/2 and gRPC through http_connection_manager with the %s h2 engine', (h2engine) => {
  const engine = ENGINES[0]!;
  let g: Awaited<ReturnType<typeof grpcServer>>;
  let h1: TestUpstream;
  let h2echo: Awaited<ReturnType<typeof h2EchoServer>>;
  let strait: StraitProcess;
  let client: EchoClient;
  let h2url: string;

  beforeAll(async () => {
    g = await grpcServer();
    h1 = await httpUpstream('h1');
    h2echo = await h2EchoServer();
    const dead = await deadPort();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/test.Echo/Unary", headers: [{ name: x-route, string_match: { exact: dead } }] }
    route: { cluster: dead }
  - match: { prefix: "/test.Echo/Unary", headers: [{ name: x-route, string_match: { exact: slow } }] }
    route: { cluster: grpc, timeout: 0.3s }
  - match: { prefix: "/test.Echo/Unary", headers: [{ name: x-route, string_match: { exact: retry } }] }
    route: { cluster: grpc, retry_policy: { retry_on: unavailable, num_retries: 2 } }
  - match: { prefix: "/test.Echo/Unary", headers: [{ name: x-route, string_match: { exact: grpc-timeout } }] }
    route: { cluster: grpc, timeout: 0s, max_stream_duration: { grpc_timeout_header_max: 0s } }
    # The grpc-js upstream enforces a deadline it is sent too; without the header only the proxy
    # can end the call, which is what the test is about.
    request_headers_to_remove: [grpc-timeout]
  - match: { prefix: "/test.Echo/Unary", headers: [{ name: x-route, string_match: { exact: grpc-cap } }] }
    # An upstream that ignores the capped grpc-timeout it is sent: the grpc-js one enforces it too,
    # and its own DEADLINE_EXCEEDED raced the proxy's (both 0.2 s from about the same moment).
    route: { cluster: h2echo, prefix_rewrite: "/h2echo/hang", timeout: 0s, max_stream_duration: { grpc_timeout_header_max: 0.2s } }
  - match: { prefix: "/test.Echo/", grpc: {} }
    route: { cluster: grpc, timeout: 0s }
  - match: { prefix: "/h1/" }
    route: { cluster: h1 }
  - match: { prefix: "/h2echo/capped" }
    route: { cluster: h2echo, max_stream_duration: { grpc_timeout_header_max: 0.5s } }
  - match: { prefix: "/h2echo/limited" }
    route: { cluster: h2echo, max_stream_duration: { max_stream_duration: 7s, grpc_timeout_header_max: 0s } }
  - match: { prefix: "/h2echo/" }
    route: { cluster: h2echo }`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', routes)}
  clusters:
${staticCluster('grpc', [g.port], H2_CLUSTER)}
${staticCluster('dead', [dead], '    http2_protocol_options: {}\n')}
${staticCluster('h1', [h1.port])}
${staticCluster('h2echo', [h2echo.port], '    http2_protocol_options: {}\n')}`,
      { engine, args: ['--h2-engine', h2engine] },
    );
    const port = await strait.port('mesh');
    h2url = `http://127.0.0.1:${port}`;
    client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  });

  afterAll(async () => {
    client?.close();
    await strait?.stop();
    await g?.close();
    await h1?.close();
    await h2echo?.close();
  });

  it('forwards HTTP/1.1 requests to an HTTP/2 upstream and re-frames the response', async () => {
    const port = new URL(h2url).port;
    const get = await request(`http://127.0.0.1:${port}/h2echo/get?q=1`, { headers: { 'x-custom': 'c' } });
    expect(get.statusCode).toBe(200);
    // The h2 upstream sent no content-length: HTTP/1.1 gets it chunked.
    expect(get.headers['transfer-encoding']).toBe('chunked');
    const seen = (await get.body.json()) as { path: string; method: string; custom: string; length: number; sha: string; authority: string };
    expect(seen).toMatchObject({ path: '/h2echo/get?q=1', method: 'GET', custom: 'c', length: 0 });
    expect(seen.authority).toBe(`127.0.0.1:${port}`);
    const parts = Array.from({ length: 20 }, () => crypto.randomBytes(30_000));
    const post = await request(`http://127.0.0.1:${port}/h2echo/post`, { method: 'POST', body: Readable.from(parts) });
    const p = (await post.body.json()) as { length: number; sha: string };
    // The chunked request body arrives upstream as its payload, without chunk framing.
    expect(p.length).toBe(600_000);
    expect(p.sha).toBe(sha256(Buffer.concat(parts)));
  });

  it('carries a gRPC unary call with metadata and trailers', async () => {
    const r = await unary(client, Buffer.from('hi'));
    expect(r.err).toBeNull();
    expect(r.res!.toString()).toBe('echo:hi');
    expect(r.trailers!.get('x-trailer')).toEqual(['bye']);
    await strait.waitStat('http.mesh.downstream_cx_http2_total', (v) => v >= 1);
    expect(await strait.stat('cluster.grpc.upstream_cx_http2_total')).toBeGreaterThanOrEqual(1);
  });

  it('honours grpc-timeout on a route with grpc_timeout_header_max: HTTP 200 with grpc-status 4', async () => {
    // A raw HTTP/2 client: no client-side timer, so only the proxy can end this call.
    const s = http2.connect(h2url);
    try {
      const msg = Buffer.from('slow');
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
      const h = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const req = s.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '100m', 'x-route': 'grpc-timeout', 'x-delay-ms': '30000' });
        let head: http2.IncomingHttpHeaders = {};
        req.on('response', (r) => (head = r));
        req.on('trailers', (t) => (head = { ...head, ...t }));
        req.on('data', () => {});
        req.on('end', () => resolve(head));
        req.on('error', reject);
        req.end(frame);
      });
      expect(h[':status']).toBe(200);
      expect(h['grpc-status']).toBe('4');
    } finally {
      s.close();
    }
    // Stats can trail the reply by a moment. As in Envoy, grpc_timeout_header_max limits the
    // stream's duration (the connection manager's timer), not the router's.
    await strait.waitStat('http.mesh.downstream_rq_max_duration_reached', (v) => v >= 1);
  });

  it('caps a grpc-js client deadline at grpc_timeout_header_max: DEADLINE_EXCEEDED from the proxy', async () => {
    const before = (await strait.stat('http.mesh.downstream_rq_max_duration_reached')) ?? 0;
    const r = await new Promise<grpc.ServiceError | null>((resolve) => {
      const m = new grpc.Metadata();
      m.set('x-route', 'grpc-cap');
      m.set('x-delay-ms', '30000');
      // The client would wait a minute; the route caps its grpc-timeout at 0.2 s.
      client.unary(Buffer.from('slow'), m, { deadline: Date.now() + 60_000 }, (err: grpc.ServiceError | null) => resolve(err));
    });
    expect(r?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // The proxy's local reply, not grpc-js's own "Deadline exceeded" timer.
    expect(r?.details).toBe('downstream duration timeout');
    await strait.waitStat('http.mesh.downstream_rq_max_duration_reached', (v) => v >= before + 1);
  });

  it('tells the upstream the stream\'s limit in grpc-timeout on a route with max_stream_duration, as Envoy', async () => {
    const s = http2.connect(h2url);
    const seen = (path: string, timeout?: string) =>
      new Promise<{ grpcTimeout?: string }>((resolve, reject) => {
        const req = s.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', ...(timeout ? { 'grpc-timeout': timeout } : {}) });
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => resolve(JSON.parse(body) as { grpcTimeout?: string }));
        req.on('error', reject);
        req.end();
      });
    try {
      // Capped at 0.5 s; a deadline under the cap goes as it came.
      expect((await seen('/h2echo/capped', '10S')).grpcTimeout).toBe('500m');
      expect((await seen('/h2echo/capped', '100m')).grpcTimeout).toBe('100m');
      // Without a grpc-timeout the route's max_stream_duration is the limit, and the upstream is told.
      expect((await seen('/h2echo/limited')).grpcTimeout).toBe('7000m');
      expect((await seen('/h2echo/limited', '2S')).grpcTimeout).toBe('2S');
      // A route without max_stream_duration forwards the header untouched.
      expect((await seen('/h2echo/plain', '10S')).grpcTimeout).toBe('10S');
    } finally {
      s.close();
    }
  });

  it('passes an upstream gRPC error status through', async () => {
    const r = await unary(client, Buffer.from('x'), { 'x-status': String(grpc.status.NOT_FOUND) });
    expect(r.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(r.err?.details).toBe('as asked');
  });

  it('streams server-side, client-side and both ways', async () => {
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.serverStream(Buffer.from('200'));
      call.on('data', (d: Buffer) => got.push(d.toString()));
      call.on('end', resolve);
      call.on('error', reject);
    });
    expect(got.length).toBe(200);
    expect(got[199]).toBe('m199');

    const parts = Array.from({ length: 50 }, () => crypto.randomBytes(10_000));
    const summary = await new Promise<string>((resolve, reject) => {
      const call = client.clientStream((err: Error | null, res: Buffer) => (err ? reject(err) : resolve(res.toString())));
      for (const p of parts) call.write(p);
      call.end();
    });
    expect(summary).toBe(`50:${sha256(Buffer.concat(parts))}`);

    const replies: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.bidi();
      call.on('data', (d: Buffer) => {
        replies.push(d.toString());
        if (replies.length < 20) call.write(Buffer.from(`ping${replies.length}`));
        else call.end();
      });
      call.on('end', resolve);
      call.on('error', reject);
      call.write(Buffer.from('ping0'));
    });
    expect(replies[0]).toBe('re:ping0');
    expect(replies[19]).toBe('re:ping19');
  });

  it('moves 16 MiB messages each way with flow control honoured', async () => {
    const big = crypto.randomBytes(16 * 1024 * 1024);
    const r = await unary(client, big);
    expect(r.err).toBeNull();
    expect(r.res!.length).toBe(big.length + 5);
    expect(sha256(r.res!.subarray(5))).toBe(sha256(big));
  });

  it('answers local replies as gRPC status with HTTP 200', async () => {
    const dead = await unary(client, Buffer.from('x'), { 'x-route': 'dead' });
    expect(dead.err?.code).toBe(grpc.status.UNAVAILABLE);
    const slow = await unary(client, Buffer.from('x'), { 'x-route': 'slow', 'x-delay-ms': '5000' });
    expect(slow.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // And on the wire: HTTP 200, grpc-status in a trailers-only response.
    const s = http2.connect(h2url);
    try {
      const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const rq = s.request({ ':method': 'POST', ':path': '/nope.Service/Call', 'content-type': 'application/grpc', te: 'trailers' });
        rq.on('response', resolve);
        rq.on('error', reject);
        rq.end();
      });
      expect(head[':status']).toBe(200);
      expect(head['grpc-status']).toBe(String(grpc.status.UNIMPLEMENTED));
    } finally {
      s.close();
    }
  });

  it('retries a call that failed UNAVAILABLE when retry_on lists unavailable', async () => {
    failUnavailable = new Map();
    const r = await unary(client, Buffer.from('again'), { 'x-route': 'retry', 'x-fail': '1', 'x-fail-key': 'k1' });
    expect(r.err).toBeNull();
    expect(r.res!.toString()).toBe('echo:again');
    expect(await strait.stat('cluster.grpc.upstream_rq_retry')).toBe(1);
    // Without the policy the same failure reaches the client.
    const plain = await unary(client, Buffer.from('x'), { 'x-fail': '1', 'x-fail-key': 'k2' });
    expect(plain.err?.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('answers an HTTP/2 protocol error with GOAWAY on that connection only', async () => {
    const port = Number(new URL(h2url).port);
    const s = await connect(port);
    s.on('error', () => {});
    // The preface and an empty SETTINGS, then a DATA frame on stream 0: a connection error (RFC 9113 §6.1).
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), Buffer.from([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])]));
    const goaway = await new Promise<boolean>((resolve) => {
      let got = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        for (let off = 0; off + 9 <= got.length; off += 9 + got.readUIntBE(off, 3)) {
          if (got[off + 3] === 7) resolve(true);
        }
      });
      s.on('close', () => resolve(false));
    });
    s.destroy();
    expect(goaway).toBe(true);
    // The gRPC client's connection never noticed.
    const r = await unary(client, Buffer.from('still'));
    expect(r.res?.toString()).toBe('echo:still');
  });

  it('forwards h2c prior-knowledge requests to an HTTP/1.1 upstream', async () => {
    const s = http2.connect(h2url);
    try {
      const body = crypto.randomBytes(300_000);
      const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const rq = s.request({ ':method': 'POST', ':path': '/h1/upload', 'x-custom': 'c' });
        let status = 0;
        const chunks: Buffer[] = [];
        rq.on('response', (h) => (status = Number(h[':status'])));
        rq.on('data', (d: Buffer) => chunks.push(d));
        rq.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString() }));
        rq.on('error', reject);
        rq.end(body);
      });
      expect(res.status).toBe(200);
      const echo = JSON.parse(res.text) as Echo;
      expect(echo.url).toBe('/h1/upload');
      expect(echo.headers['x-custom']).toBe('c');
      expect(echo.headers.host).toBe(`127.0.0.1:${new URL(h2url).port}`);
      expect(echo.bodyLength).toBe(body.length);
      expect(echo.bodySha).toBe(sha256(body));
    } finally {
      s.close();
    }
    expect(await strait.stat('http.mesh.downstream_rq_http2_total')).toBeGreaterThanOrEqual(1);
  });

  it('sends an h2c GET ended by its HEADERS frame upstream as a bodiless HTTP/1.1 request, not chunked', async () => {
    const s = http2.connect(h2url);
    const ask = (h: http2.OutgoingHttpHeaders, body: Buffer | null) =>
      new Promise<{ status: number; text: string; trailers: boolean }>((resolve, reject) => {
        const rq = s.request(h, { endStream: body === null });
        let status = 0;
        let trailers = false;
        const chunks: Buffer[] = [];
        rq.on('response', (r) => (status = Number(r[':status'])));
        rq.on('trailers', () => (trailers = true));
        rq.on('data', (d: Buffer) => chunks.push(d));
        rq.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString(), trailers }));
        rq.on('error', reject);
        if (body) rq.end(body);
      });
    try {
      const get = await ask({ ':method': 'GET', ':path': '/h1/get' }, null);
      expect(get.status).toBe(200);
      expect(get.trailers).toBe(false);
      const g = JSON.parse(get.text) as Echo;
      expect(g.headers['transfer-encoding']).toBeUndefined();
      expect(g.bodyLength).toBe(0);
      expect(g.headers['content-length']).toBeUndefined();
      // An empty POST says so with content-length: 0, as Envoy's HTTP/1 codec sends it.
      const empty = JSON.parse((await ask({ ':method': 'POST', ':path': '/h1/empty' }, null)).text) as Echo;
      expect(empty.headers['transfer-encoding']).toBeUndefined();
      expect(empty.headers['content-length']).toBe('0');
      // A body of unknown length still goes chunked.
      const post = await ask({ ':method': 'POST', ':path': '/h1/post' }, Buffer.from('abc'));
      const p = JSON.parse(post.text) as Echo;
      expect(p.headers['transfer-encoding']).toBe('chunked');
      expect(p.bodyLength).toBe(3);
    } finally {
      s.close();
    }
  });

  it('ends a response from an HTTP/1.1 upstream with END_STREAM on its DATA frame, without an empty frame for trailers', async () => {
    // A raw client, since node:http2 hides frames: preface, empty SETTINGS, one GET (HPACK by hand).
    const lit = (nameIndex: number, v: string) => Buffer.concat([Buffer.from([0x00 | nameIndex, v.length]), Buffer.from(v)]); // literal, not indexed
    const block = Buffer.concat([Buffer.from([0x82, 0x86]), lit(4, '/h1/frames'), lit(1, 'x')]); // GET, http, :path, :authority
    const frame = (type: number, flags: number, streamId: number, payload: Buffer) => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3);
      h[3] = type;
      h[4] = flags;
      h.writeUInt32BE(streamId, 5);
      return Buffer.concat([h, payload]);
    };
    const sock = await connect(Number(new URL(h2url).port));
    const frames: Array<{ type: number; flags: number; len: number }> = [];
    try {
      await new Promise<void>((resolve, reject) => {
        let buf = Buffer.alloc(0);
        sock.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
            const len = buf.readUIntBE(0, 3);
            const f = { type: buf[3]!, flags: buf[4]!, len, stream: buf.readUInt32BE(5) & 0x7fffffff };
            buf = buf.subarray(9 + len);
            if (f.stream === 1) frames.push(f);
            if (f.stream === 1 && (f.flags & 0x1 || f.type === 3)) resolve(); // END_STREAM or RST_STREAM
          }
        });
        sock.on('error', reject);
        sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0)), frame(1, 0x5, 1, block)]));
      });
    } finally {
      sock.destroy();
    }
    // HEADERS, then the upstream's body in DATA frames, the last one carrying END_STREAM.
    expect(frames[0]).toMatchObject({ type: 1 });
    const data = frames.slice(1);
    expect(data.length).toBeGreaterThan(0);
    expect(data.every((f) => f.type === 0 && f.len > 0)).toBe(true);
    expect(data[data.length - 1]!.flags & 0x1).toBe(1);
  });
});
