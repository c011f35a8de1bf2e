// Upstream HTTP/2 connection handling as Envoy does it, on both h2 engines (--h2-engine
// native|node): idle connections close gracefully after common_http_protocol_options.idle_timeout,
// a peer's SETTINGS_MAX_CONCURRENT_STREAMS of 0 makes requests wait (pending, bounded by the
// circuit breakers) instead of failing or opening connections past max_connections, and the
// streams a GOAWAY names as never processed are retried when the route's retry policy allows.
// Every upstream here is a raw-frame server, so the test sees exactly what the proxy sent.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { F, frame, setting, T, u32 } from '../helpers/h2frames.js';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** `:status: 200` from the HPACK static table (index 8). */
const STATUS_200 = Buffer.from([0x88]);
const SETTINGS_MAX_CONCURRENT_STREAMS = 3;

/** Polls until `cond` holds (the upstream sees frames asynchronously); fails with `what`. */
async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

interface RawConn {
  /** 0-based, in accept order. */
  id: number;
  sock: net.Socket;
  /** SETTINGS ACKs from the proxy: after the first, the proxy has applied our SETTINGS. */
  acks: number;
  goaways: number;
  closed: boolean;
  /** Request streams seen (HEADERS), and those that arrived after the proxy acked a limit of 0. */
  streams: number[];
  overLimit: number;
  /** Complete requests not answered yet. */
  held: number[];
}

type Mode = 'answer' | 'hold' | 'goaway';

/**
 * A raw h2c upstream. `answer` replies to each complete request with 200 and a body naming the
 * connection and stream; `hold` keeps replies until release(); `goaway`: on its first connection,
 * once two requests are in, it sends GOAWAY naming the lower stream as the last it processes,
 * answers that one and leaves the other untouched (later connections answer). With `maxStreams`
 * its SETTINGS carry that SETTINGS_MAX_CONCURRENT_STREAMS, and while the advertised limit is 0
 * requests are held.
 */
async function rawUpstream(mode: Mode, maxStreams?: number) {
  const conns: RawConn[] = [];
  let limit = maxStreams ?? Infinity;
  const server = net.createServer((sock) => {
    const c: RawConn = { id: conns.length, sock, acks: 0, goaways: 0, closed: false, streams: [], overLimit: 0, held: [] };
    conns.push(c);
    sock.on('close', () => (c.closed = true));
    sock.on('error', () => {});
    sock.write(frame(T.SETTINGS, 0, 0, maxStreams === undefined ? [] : setting(SETTINGS_MAX_CONCURRENT_STREAMS, maxStreams)));
    let buf = Buffer.alloc(0);
    let preface = false;
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!preface) {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
        preface = true;
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) return;
        const type = buf[3]!;
        const flags = buf[4]!;
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        buf = buf.subarray(9 + len);
        if (type === T.SETTINGS) {
          if (flags & F.ACK) c.acks++;
          else sock.write(frame(T.SETTINGS, F.ACK, 0));
        } else if (type === T.GOAWAY) {
          c.goaways++;
        } else if (type === T.HEADERS) {
          c.streams.push(stream);
          if (limit === 0 && c.acks > 0) c.overLimit++;
          if (flags & F.END_STREAM) complete(c, stream);
        } else if (type === T.DATA && flags & F.END_STREAM) {
          complete(c, stream);
        }
      }
    });
  });
  function reply(c: RawConn, stream: number): void {
    if (c.closed) return;
    c.sock.write(frame(T.HEADERS, F.END_HEADERS, stream, STATUS_200));
    c.sock.write(frame(T.DATA, F.END_STREAM, stream, Buffer.from(`c${c.id}s${stream}`)));
  }
  function complete(c: RawConn, stream: number): void {
    if (mode === 'hold' || limit === 0) {
      c.held.push(stream);
      return;
    }
    if (mode === 'goaway' && c.id === 0) {
      c.held.push(stream);
      if (c.held.length < 2) return;
      const [first, second] = c.held.sort((a, b) => a - b) as [number, number];
      c.sock.write(frame(T.GOAWAY, 0, 0, Buffer.concat([u32(first), u32(0)])));
      reply(c, first);
      return;
    }
    reply(c, stream);
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    /** Answers every held request. */
    release() {
      for (const c of conns) for (const s of c.held.splice(0)) reply(c, s);
    },
    /** Advertises a new SETTINGS_MAX_CONCURRENT_STREAMS on every open connection, then answers what it held. */
    raise(n: number) {
      limit = n;
      for (const c of conns) if (!c.closed) c.sock.write(frame(T.SETTINGS, 0, 0, setting(SETTINGS_MAX_CONCURRENT_STREAMS, n)));
      this.release();
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const c of conns) c.sock.destroy();
      }),
  };
}

type Up = Awaited<ReturnType<typeof rawUpstream>>;

/** One GET over a fresh HTTP/1.1 connection; status 0 when the exchange broke. */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const broke = (err: Error) => resolve({ status: 0, body: err.message });
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', broke);
    });
    req.on('error', broke);
  });
}

const IDLE_MS = 250;
const HPO = (common: string) => `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: ${common}
        explicit_http_config: { http2_protocol_options: {} }
`;
const H2 = '    http2_protocol_options: {}\n';

const CLUSTERS = {
  idle: HPO(`{ idle_timeout: ${IDLE_MS / 1000}s }`),
  // The deprecated cluster-level field, still read when no HttpProtocolOptions is given.
  idle_legacy: `${H2}    common_http_protocol_options: { idle_timeout: ${IDLE_MS / 1000}s }\n`,
  idle_off: HPO('{ idle_timeout: 0s }'),
  zero: `${H2}    circuit_breakers: { thresholds: [{ max_connections: 2, max_pending_requests: 2 }] }\n`,
  zero_timeout: `${H2}    circuit_breakers: { thresholds: [{ max_connections: 1 }] }\n`,
  goaway_refused: H2,
  goaway_reset: H2,
  goaway_none: H2,
} as const;
type Name = keyof typeof CLUSTERS;
const MODES: Record<Name, [Mode, number?]> = {
  idle: ['hold'],
  idle_legacy: ['answer'],
  idle_off: ['answer'],
  zero: ['answer', 0],
  zero_timeout: ['answer', 0],
  goaway_refused: ['goaway'],
  goaway_reset: ['goaway'],
  goaway_none: ['goaway'],
};
const TIMEOUT: Partial<Record<Name, string>> = { zero_timeout: '0.3s' };
const RETRY: Partial<Record<Name, string>> = {
  goaway_refused: ', retry_policy: { retry_on: refused-stream, num_retries: 1 }',
  goaway_reset: ', retry_policy: { retry_on: reset, num_retries: 1 }',
};

describe.each(['native', 'node'] as const)('upstream HTTP/2 connections with the %s h2 engine', (h2engine) => {
  const ups = {} as Record<Name, Up>;
  let strait: StraitProcess;
  let port: number;
  const stat = (cluster: Name, name: string) => strait.stat(`cluster.${cluster}.${name}`);

  beforeAll(async () => {
    for (const n of Object.keys(CLUSTERS) as Name[]) ups[n] = await rawUpstream(...MODES[n]);
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
${(Object.keys(CLUSTERS) as Name[]).map((n) => `  - match: { prefix: "/${n}/" }\n    route: { cluster: ${n}, timeout: ${TIMEOUT[n] ?? '20s'}${RETRY[n] ?? ''} }`).join('\n')}`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('edge', routes)}
  clusters:
${(Object.keys(CLUSTERS) as Name[]).map((n) => staticCluster(n, [ups[n].port], CLUSTERS[n])).join('')}`,
      { engine: ENGINES[0]!, args: ['--h2-engine', h2engine] },
    );
    port = await strait.port('edge');
  });

  afterAll(async () => {
    await strait?.stop();
    for (const u of Object.values(ups)) await u?.close();
  });

  it('closes an upstream connection with GOAWAY once it has had no stream for idle_timeout, never while a stream is open', async () => {
    const up = ups.idle;
    const pending = get(port, '/idle/held');
    await until(() => up.conns[0]?.held.length === 1, 'the held request');
    // Several idle timeouts pass with the stream open: the connection must stay.
    await sleep(4 * IDLE_MS);
    expect(up.conns[0]!.goaways).toBe(0);
    expect(up.conns[0]!.closed).toBe(false);
    up.release();
    expect(await pending).toEqual({ status: 200, body: 'c0s1' });
    // Now idle: a graceful close (GOAWAY first; node:http2 sends a second one as it ends the
    // session), and the proxy closes the socket itself.
    await until(() => up.conns[0]!.goaways >= 1 && up.conns[0]!.closed, 'GOAWAY and close on the idle connection');
    expect(await stat('idle', 'upstream_cx_idle_timeout')).toBe(1);
    expect(await strait.waitStat('cluster.idle.upstream_cx_active', (v) => v === 0)).toBe(0);
    expect(await stat('idle', 'upstream_cx_destroy_local')).toBeGreaterThanOrEqual(1);
    // The next request opens a new connection.
    const next = get(port, '/idle/again');
    await until(() => up.conns[1]?.held.length === 1, 'the request on a second connection');
    up.release();
    expect(await next).toEqual({ status: 200, body: 'c1s1' });
    expect(await stat('idle', 'upstream_cx_total')).toBe(2);
  });

  it('reads idle_timeout from the deprecated cluster common_http_protocol_options too; 0s disables it', async () => {
    expect(await get(port, '/idle_legacy/x')).toEqual({ status: 200, body: 'c0s1' });
    expect(await get(port, '/idle_off/x')).toEqual({ status: 200, body: 'c0s1' });
    await until(() => ups.idle_legacy.conns[0]!.goaways >= 1 && ups.idle_legacy.conns[0]!.closed, 'the legacy-configured idle close');
    expect(await stat('idle_legacy', 'upstream_cx_idle_timeout')).toBe(1);
    // Well past the other cluster's timeout, the one with idle_timeout 0s keeps its connection.
    await sleep(2 * IDLE_MS);
    expect(ups.idle_off.conns[0]!.goaways).toBe(0);
    expect(ups.idle_off.conns[0]!.closed).toBe(false);
    expect(await stat('idle_off', 'upstream_cx_idle_timeout')).toBe(0);
    expect(await get(port, '/idle_off/y')).toEqual({ status: 200, body: 'c0s3' });
  });

  it('queues requests while the peer allows 0 streams: no connection past max_connections, pending bounded, served once the peer raises its limit', async () => {
    const up = ups.zero;
    const r1 = get(port, '/zero/1');
    // Acked: the proxy has applied SETTINGS_MAX_CONCURRENT_STREAMS 0 on this connection.
    await until(() => up.conns[0]?.acks === 1, 'SETTINGS ack on the first connection');
    // The first connection allows no stream: the pool opens a second (max_connections 2).
    const r2 = get(port, '/zero/2');
    await until(() => up.conns[1]?.acks === 1, 'SETTINGS ack on the second connection');
    // At max_connections, two requests wait as pending (max_pending_requests 2)...
    const r3 = get(port, '/zero/3');
    const r4 = get(port, '/zero/4');
    expect(await strait.waitStat('cluster.zero.upstream_rq_pending_active', (v) => v === 2)).toBe(2);
    // ...and a third is refused at once as a pending overflow.
    expect((await get(port, '/zero/5')).status).toBe(503);
    expect(await stat('zero', 'upstream_rq_pending_overflow')).toBe(1);
    expect(up.conns).toHaveLength(2);
    // No stream was opened on a connection after the proxy learned its limit was 0.
    expect(up.conns.map((c) => c.overLimit)).toEqual([0, 0]);
    up.raise(10);
    const rs = await Promise.all([r1, r2, r3, r4]);
    for (const r of rs) {
      expect(r.status).toBe(200);
      expect(r.body).toMatch(/^c[01]s\d+$/);
    }
    expect(up.conns).toHaveLength(2);
    expect(await stat('zero', 'upstream_cx_total')).toBe(2);
    expect(await stat('zero', 'upstream_rq_pending_total')).toBe(2);
    expect(await stat('zero', 'upstream_cx_overflow')).toBeGreaterThanOrEqual(2);
    expect(await strait.waitStat('cluster.zero.upstream_rq_pending_active', (v) => v === 0)).toBe(0);
    // The admin /clusters page counts the host's two connections.
    expect((await strait.get('/clusters')).text).toContain(`zero::127.0.0.1:${up.port}::cx_total::2\n`);
  });

  it('a request that waits past its route timeout gets 504 and is never sent once the peer makes room', async () => {
    const up = ups.zero_timeout;
    const r1 = get(port, '/zero_timeout/1');
    await until(() => up.conns[0]?.acks === 1, 'SETTINGS ack');
    // The only connection allows no stream and max_connections is 1: this one waits as pending.
    const r2 = get(port, '/zero_timeout/2');
    expect((await r1).status).toBe(504);
    expect((await r2).status).toBe(504);
    expect(await stat('zero_timeout', 'upstream_rq_pending_total')).toBe(1);
    // The timed-out request left the queue at once (H2Try cancels its wait), before any room appears.
    expect(await stat('zero_timeout', 'upstream_rq_pending_active')).toBe(0);
    up.raise(10);
    expect(await strait.waitStat('cluster.zero_timeout.upstream_rq_pending_active', (v) => v === 0)).toBe(0);
    // Only the stream sent before the proxy knew the limit ever reached the upstream.
    expect(up.conns.map((c) => c.overLimit)).toEqual([0]);
    expect(up.conns[0]!.streams.length).toBeLessThanOrEqual(1);
    // The connection still serves.
    expect(await get(port, '/zero_timeout/3')).toMatchObject({ status: 200 });
    expect(up.conns).toHaveLength(1);
  });

  it.each(['goaway_refused', 'goaway_reset'] as const)(
    '%s: a stream above GOAWAY last_stream_id was never processed and is retried on a new connection',
    async (name) => {
      const up = ups[name];
      const rs = await Promise.all([get(port, `/${name}/a`), get(port, `/${name}/b`)]);
      // Both answered: one on the first connection (the stream it processed), one retried on a second.
      expect(rs.map((r) => r.status)).toEqual([200, 200]);
      expect(rs.map((r) => r.body.slice(0, 2)).sort()).toEqual(['c0', 'c1']);
      expect(up.conns[0]!.streams).toHaveLength(2);
      expect(up.conns).toHaveLength(2);
      expect(await stat(name, 'upstream_rq_retry')).toBe(1);
      expect(await stat(name, 'upstream_cx_close_notify')).toBe(1);
    },
  );

  it('without a retry policy the unprocessed stream fails (503), the processed one is answered', async () => {
    const rs = await Promise.all([get(port, '/goaway_none/a'), get(port, '/goaway_none/b')]);
    expect(rs.map((r) => r.status).sort()).toEqual([200, 503]);
    expect(await stat('goaway_none', 'upstream_rq_retry')).toBe(0);
    expect(await stat('goaway_none', 'upstream_cx_close_notify')).toBe(1);
  });
});

it('rejects a negative idle_timeout, naming the field in either place', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'bad.yaml');
  fs.writeFileSync(
    file,
    `static_resources:
  clusters:
${staticCluster('typed', [9], HPO('{ idle_timeout: -1s }'))}${staticCluster('legacy', [9], `${H2}    common_http_protocol_options: { idle_timeout: -0.5s }\n`)}`,
  );
  const r = await runCli(['--mode', 'validate', '--config', file]);
  fs.rmSync(dir, { recursive: true, force: true });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain(
    'static_resources.clusters[0].typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].common_http_protocol_options.idle_timeout: must not be negative',
  );
  expect(r.stderr).toContain('static_resources.clusters[1].common_http_protocol_options.idle_timeout: must not be negative');
});
