import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';
import { eventually } from '../helpers/xds.js';

/**
 * hedge_policy.hedge_on_per_try_timeout: two upstreams per cluster; the first request marked
 * `x-hang` (whichever upstream gets it) answers only after 3 s, far past the 0.3 s per-try
 * timeout; every other request is answered at once with the upstream's tag.
 */
const HANG_MS = 3_000;

interface Seen {
  tag: string;
  key: string;
  conn: number;
  bodyLength: number;
}

/**
 * Shared by every upstream: which request hangs, and whether the proxy let go of it. `delays`:
 * what the first requests marked x-hang wait before answering (the first one's tag is `tag`).
 */
const hang = { armed: false, delays: [] as number[], tag: '', conn: 0, released: false, laterReleased: false };
const seen: Seen[] = [];

function arm(delays = [HANG_MS]): void {
  hang.armed = true;
  hang.delays = [...delays];
  hang.tag = '';
  hang.conn = 0;
  hang.released = false;
  hang.laterReleased = false;
  seen.length = 0;
}

interface Up {
  tag: string;
  port: number;
  readonly connections: number;
  close(): Promise<void>;
}

async function h1Upstream(tag: string): Promise<Up> {
  let connections = 0;
  const server = http.createServer((req, res) => {
    const conn = (req.socket as net.Socket & { testId?: number }).testId ?? 0;
    let len = 0;
    req.on('data', (d: Buffer) => (len += d.length));
    req.on('end', () => {
      seen.push({ tag, key: String(req.headers['x-key'] ?? ''), conn, bodyLength: len });
      if (req.headers['x-hang'] && hang.armed) {
        const ms = hang.delays.shift()!;
        hang.armed = hang.delays.length > 0;
        const first = !hang.tag;
        if (first) {
          hang.tag = tag;
          hang.conn = conn;
        }
        const t = setTimeout(() => res.end(`late:${tag}`), ms);
        if (!first) {
          req.socket.once('close', () => {
            clearTimeout(t);
            hang.laterReleased = true;
          });
          return;
        }
        req.socket.once('close', () => {
          clearTimeout(t);
          hang.released = true;
        });
        return;
      }
      res.writeHead(200, { 'x-conn': String(conn) });
      res.end(`${tag}:${len}`);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: net.Socket & { testId?: number }) => (s.testId = ++connections));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    tag,
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function h2Upstream(tag: string): Promise<Up> {
  let connections = 0;
  const server = http2.createServer();
  server.on('connection', () => connections++);
  server.on('stream', (stream, headers) => {
    let len = 0;
    stream.on('data', (d: Buffer) => (len += d.length));
    stream.on('error', () => {});
    stream.on('end', () => {
      seen.push({ tag, key: String(headers['x-key'] ?? ''), conn: 0, bodyLength: len });
      if (headers['x-hang'] && hang.armed) {
        hang.armed = false;
        hang.tag = tag;
        const t = setTimeout(() => {
          if (!stream.closed) stream.respond({ ':status': 200 }, { endStream: false }), stream.end(`late:${tag}`);
        }, HANG_MS);
        stream.once('close', () => {
          clearTimeout(t);
          hang.released = true;
        });
        return;
      }
      stream.respond({ ':status': 200 });
      stream.end(`${tag}:${len}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  return {
    tag,
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}

const id = (b: Buffer) => b;
const SERVICE = {
  unary: { path: '/test.Hedge/Unary', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
} as unknown as grpc.ServiceDefinition;
type HedgeClient = grpc.Client & { unary(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void };
const HedgeClient = grpc.makeGenericClientConstructor(SERVICE, 'Hedge') as unknown as new (addr: string, creds: grpc.ChannelCredentials) => HedgeClient;

async function grpcUpstream(tag: string): Promise<Up> {
  const server = new grpc.Server();
  server.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.push({ tag, key: String(call.metadata.get('x-key')[0] ?? ''), conn: 0, bodyLength: call.request.length });
      if (call.metadata.get('x-hang').length && hang.armed) {
        hang.armed = false;
        hang.tag = tag;
        const t = setTimeout(() => cb(null, Buffer.from(`late:${tag}`)), HANG_MS);
        call.on('cancelled', () => {
          clearTimeout(t);
          hang.released = true;
        });
        return;
      }
      cb(null, Buffer.from(`${tag}:${call.request.length}`));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { tag, port, connections: 0, close: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}

const H2 = '    http2_protocol_options: {}\n';
const RETRY = 'retry_policy: { retry_on: retriable-status-codes, retriable_status_codes: [418], num_retries: 1, per_try_timeout: 0.3s }';
const HEDGE = 'hedge_policy: { hedge_on_per_try_timeout: true }';

describe.each(ENGINES.slice(0, 1))('http hedge_policy on the %s engine', (engine) => {
  let a: Up, b: Up, h2a: Up, h2b: Up, ga: Up, gb: Up;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    [a, b, h2a, h2b, ga, gb] = await Promise.all([h1Upstream('a'), h1Upstream('b'), h2Upstream('h2a'), h2Upstream('h2b'), grpcUpstream('ga'), grpcUpstream('gb')]);
    const rc = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/cbhedge" }
    route: { cluster: nobudget, timeout: 10s, ${RETRY}, ${HEDGE} }
  - match: { prefix: "/nohedge" }
    route: { cluster: pair, timeout: 10s, ${RETRY} }
  - match: { prefix: "/hedge" }
    route: { cluster: pair, timeout: 10s, ${RETRY}, ${HEDGE} }
  - match: { prefix: "/h2hedge" }
    route: { cluster: h2pair, timeout: 10s, ${RETRY}, ${HEDGE} }
  - match: { prefix: "/test.Hedge/" }
    route: { cluster: gpair, timeout: 10s, ${RETRY}, ${HEDGE} }`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('hedge', rc)}
  clusters:
${staticCluster('pair', [a.port, b.port])}
${staticCluster('nobudget', [a.port, b.port], '    circuit_breakers: { thresholds: [{ max_retries: 0 }] }\n')}
${staticCluster('h2pair', [h2a.port, h2b.port], H2)}
${staticCluster('gpair', [ga.port, gb.port], H2)}`,
      { engine },
    );
    port = await strait.port('hedge');
  });

  afterAll(async () => {
    await strait?.stop();
    await Promise.all([a, b, h2a, h2b, ga, gb].map((u) => u?.close()));
  });

  const other = (tag: string, x: string, y: string) => (tag === x ? y : x);

  it('HTTP/1.1 to HTTP/1.1: the hedged try answers, the late try still got the request and its connection is closed, not reused', async () => {
    arm();
    const body = 'x'.repeat(1000);
    const r = await request(`http://127.0.0.1:${port}/hedge`, { method: 'POST', body, headers: { 'x-hang': '1', 'x-key': 'k1' } });
    const text = await r.body.text();
    expect(r.statusCode).toBe(200);
    const winner = other(hang.tag, 'a', 'b');
    // Both upstreams saw the request, with its whole body (the hedge replays the retry buffer).
    expect(seen.filter((s) => s.key === 'k1').map((s) => [s.tag, s.bodyLength]).sort()).toEqual([
      ['a', 1000],
      ['b', 1000],
    ]);
    expect(text).toBe(`${winner}:1000`);
    // The loser's response was abandoned: its connection must be closed by the proxy...
    await eventually(async () => hang.released, (v) => v, 5_000, 'the late try released');
    // ...and the next request to that upstream arrives on a fresh connection.
    const loser = hang.tag === 'a' ? a : b;
    const hungConn = hang.conn;
    for (let i = 0; i < 4 && !seen.some((s) => s.key === 'after' && s.tag === loser.tag); i++) {
      const r2 = await request(`http://127.0.0.1:${port}/hedge`, { headers: { 'x-key': 'after' } });
      expect(r2.statusCode).toBe(200);
      await r2.body.text();
    }
    const next = seen.find((s) => s.key === 'after' && s.tag === loser.tag);
    expect(next).toBeDefined();
    expect(next!.conn).not.toBe(hungConn);
    expect(await strait.stat('cluster.pair.upstream_rq_per_try_timeout')).toBeGreaterThanOrEqual(1);
  });

  it('the late try still wins when it answers before the hedged one; the hedged connection is closed', async () => {
    arm([800, HANG_MS]);
    const r = await request(`http://127.0.0.1:${port}/hedge`, { method: 'POST', body: 'late', headers: { 'x-hang': '1', 'x-key': 'k7' } });
    const text = await r.body.text();
    expect(r.statusCode).toBe(200);
    expect(seen.filter((s) => s.key === 'k7').map((s) => s.tag).sort()).toEqual(['a', 'b']);
    expect(text).toBe(`late:${hang.tag}`);
    await eventually(async () => hang.laterReleased, (v) => v, 5_000, 'the hedged try released');
    // The first try's connection carried a whole response: it may go back to the pool.
    expect(hang.released).toBe(false);
  });

  it('without hedge_policy the per-try timeout ends the request (504), no second try', async () => {
    arm();
    const r = await request(`http://127.0.0.1:${port}/nohedge`, { headers: { 'x-hang': '1', 'x-key': 'k2' } });
    await r.body.text();
    expect(r.statusCode).toBe(504);
    expect(seen.filter((s) => s.key === 'k2')).toHaveLength(1);
  });

  it('a hedge is a retry: with no max_retries budget the per-try timeout ends the request', async () => {
    arm();
    const r = await request(`http://127.0.0.1:${port}/cbhedge`, { headers: { 'x-hang': '1', 'x-key': 'k8' } });
    await r.body.text();
    expect(r.statusCode).toBe(504);
    expect(seen.filter((s) => s.key === 'k8')).toHaveLength(1);
    expect(await strait.stat('cluster.nobudget.upstream_rq_retry_overflow')).toBe(1);
  });

  it('HTTP/1.1 to HTTP/2 upstream: the hedged try answers and the late stream is reset', async () => {
    arm();
    const r = await request(`http://127.0.0.1:${port}/h2hedge`, { method: 'POST', body: 'abc', headers: { 'x-hang': '1', 'x-key': 'k3' } });
    const text = await r.body.text();
    expect(r.statusCode).toBe(200);
    expect(seen.filter((s) => s.key === 'k3').map((s) => s.tag).sort()).toEqual(['h2a', 'h2b']);
    expect(text).toBe(`${other(hang.tag, 'h2a', 'h2b')}:3`);
    await eventually(async () => hang.released, (v) => v, 5_000, 'the late stream reset');
  });

  async function h2Get(path: string, headers: Record<string, string>, body: string): Promise<{ status: number; text: string }> {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      return await new Promise((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': path, ...headers });
        let status = 0;
        let text = '';
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', (d: Buffer) => (text += d.toString()));
        s.on('end', () => resolve({ status, text }));
        s.on('error', reject);
        s.end(body);
      });
    } finally {
      session.close();
    }
  }

  it('HTTP/2 downstream to HTTP/1.1 upstreams: hedged, and the late connection is closed', async () => {
    arm();
    const r = await h2Get('/hedge', { 'x-hang': '1', 'x-key': 'k4' }, 'hello');
    expect(r.status).toBe(200);
    expect(seen.filter((s) => s.key === 'k4').map((s) => [s.tag, s.bodyLength]).sort()).toEqual([
      ['a', 5],
      ['b', 5],
    ]);
    expect(r.text).toBe(`${other(hang.tag, 'a', 'b')}:5`);
    await eventually(async () => hang.released, (v) => v, 5_000, 'the late try released');
  });

  it('HTTP/2 downstream to HTTP/2 upstreams: hedged', async () => {
    arm();
    const r = await h2Get('/h2hedge', { 'x-hang': '1', 'x-key': 'k5' }, 'hey');
    expect(r.status).toBe(200);
    expect(seen.filter((s) => s.key === 'k5').map((s) => s.tag).sort()).toEqual(['h2a', 'h2b']);
    expect(r.text).toBe(`${other(hang.tag, 'h2a', 'h2b')}:3`);
    await eventually(async () => hang.released, (v) => v, 5_000, 'the late stream reset');
  });

  it('gRPC unary: the hedged call answers, the late one is cancelled', async () => {
    arm();
    const client = new HedgeClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const md = new grpc.Metadata();
      md.set('x-hang', '1');
      md.set('x-key', 'k6');
      const res = await new Promise<Buffer>((resolve, reject) => client.unary(Buffer.from('ping'), md, (err, v) => (err ? reject(err) : resolve(v!))));
      expect(seen.filter((s) => s.key === 'k6').map((s) => s.tag).sort()).toEqual(['ga', 'gb']);
      expect(res.toString()).toBe(`${other(hang.tag, 'ga', 'gb')}:4`);
      await eventually(async () => hang.released, (v) => v, 5_000, 'the late call cancelled');
    } finally {
      client.close();
    }
  });
});
