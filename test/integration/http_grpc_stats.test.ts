// envoy.filters.http.grpc_stats through Strait with a real @grpc/grpc-js client and server: calls
// counted by grpc-status under the routed cluster (`cluster.<name>.grpc[.<service>.<method>].*`),
// messages counted in both directions across DATA frames, local replies and trailers-only
// answers included, on both downstream HTTP/2 engines and from an HTTP/1.1 client.
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, deadPort } from '../helpers/net.js';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const id = (b: Buffer) => b;
const method = (path: string, requestStream: boolean, responseStream: boolean) => ({ path, requestStream, responseStream, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id });
const SERVICE = {
  unary: method('/test.Echo/Unary', false, false),
  serverStream: method('/test.Echo/ServerStream', false, true),
  clientStream: method('/test.Echo/ClientStream', true, false),
  bidi: method('/test.Echo/Bidi', true, true),
  deny: method('/raw.Svc/Deny', false, false),
} as unknown as grpc.ServiceDefinition;
type Client = grpc.Client & Record<string, (...args: any[]) => any>;
const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo') as unknown as new (addr: string, creds: grpc.ChannelCredentials) => Client;

async function grpcServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const st = call.metadata.get('x-status')[0];
      if (st) cb({ code: Number(st), details: 'as asked' });
      else cb(null, Buffer.concat([Buffer.from('echo:'), call.request]));
    },
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const [n, fail] = call.request.toString().split(':');
      // Large messages: each spans several DATA frames on the way back.
      for (let i = 0; i < Number(n); i++) call.write(Buffer.alloc(40_000, i));
      if (fail) call.emit('error', { code: Number(fail), details: 'after messages' });
      else call.end();
    },
    clientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let count = 0;
      call.on('data', () => count++);
      call.on('end', () => cb(null, Buffer.from(String(count))));
    },
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (d: Buffer) => call.write(d));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, close: () => new Promise((r) => server.tryShutdown(() => r())) };
}

/** An h2c upstream that answers every call trailers-only: one HEADERS frame with grpc-status 7. */
async function trailersOnlyServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('data', () => {});
    stream.on('end', () => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'denied' }, { endStream: true }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as import('node:net').AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

function unary(c: Client, name: string, req: Buffer, md: Record<string, string> = {}): Promise<{ err: grpc.ServiceError | null; res: Buffer | null }> {
  return new Promise((resolve) => {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(md)) m.set(k, v);
    c[name]!(req, m, (err: grpc.ServiceError | null, res: Buffer | null) => resolve({ err, res }));
  });
}

function serverStream(c: Client, req: string): Promise<{ n: number; code: number }> {
  return new Promise((resolve) => {
    let n = 0;
    const call = c.serverStream(Buffer.from(req));
    call.on('data', () => n++);
    call.on('error', () => {});
    call.on('status', (s: grpc.StatusObject) => resolve({ n, code: s.code }));
  });
}

function clientStream(c: Client, msgs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const call = c.clientStream((err: grpc.ServiceError | null, res: Buffer) => (err ? reject(err) : resolve(res)));
    for (let i = 0; i < msgs; i++) call.write(Buffer.alloc(30_000 + i, i));
    call.end();
  });
}

function bidi(c: Client, msgs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    const call = c.bidi();
    call.on('data', () => n++);
    call.on('error', reject);
    call.on('status', () => resolve(n));
    for (let i = 0; i < msgs; i++) call.write(Buffer.from(`m${i}`));
    call.end();
  });
}

const H2 = '    http2_protocol_options: {}\n';
const filter = (cfg: string) => `          - name: envoy.filters.http.grpc_stats
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig
${cfg
  .trim()
  .split('\n')
  .map((l) => `              ${l}`)
  .join('\n')}
`;
/** Istio's order: grpc_stats, then fault (here aborting calls that ask, with grpc-status 8). */
const FAULT = `          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: { grpc_status: 8, percentage: { numerator: 100 } }
              headers: [{ name: x-fault, present_match: true }]
`;
const routes = (cluster: string) => `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/raw.Svc/" }
    route: { cluster: raw_${cluster} }
  - match: { prefix: "/", headers: [{ name: x-route, string_match: { exact: dead } }] }
    route: { cluster: dead_${cluster} }
  - match: { prefix: "/" }
    route: { cluster: ${cluster}, timeout: 0s }`;

describe.each(['native', 'node'] as const)('grpc_stats with the %s h2 engine', (h2engine) => {
  let g: Awaited<ReturnType<typeof grpcServer>>;
  let raw: Awaited<ReturnType<typeof trailersOnlyServer>>;
  let strait: StraitProcess;
  let mesh: Client;
  let all: Client;
  let allow: Client;
  let fault: Client;
  let meshPort = 0;

  beforeAll(async () => {
    g = await grpcServer();
    raw = await trailersOnlyServer();
    const dead = await deadPort();
    const clusters = (name: string) => `${staticCluster(name, [g.port], H2)}${staticCluster(`raw_${name}`, [raw.port], H2)}${staticCluster(`dead_${name}`, [dead], H2)}`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', routes('grpc'), '', filter('emit_filter_state: true\nstats_for_all_methods: false'))}
${hcmListener('all', routes('grpc_all'), '', filter('stats_for_all_methods: true\nenable_upstream_stats: true\nreplace_dots_in_grpc_service_name: true'))}
${hcmListener('allow', routes('grpc_allow'), '', filter('individual_method_stats_allowlist: { services: [{ name: test.Echo, method_names: [Unary, Bidi] }] }'))}
${hcmListener('fault', routes('grpc_fault'), '', filter('stats_for_all_methods: false') + FAULT)}
  clusters:
${clusters('grpc')}${clusters('grpc_all')}${clusters('grpc_allow')}${clusters('grpc_fault')}`,
      { engine: ENGINES[0]!, args: ['--h2-engine', h2engine] },
    );
    meshPort = await strait.port('mesh');
    mesh = new Client(`127.0.0.1:${meshPort}`, grpc.credentials.createInsecure());
    all = new Client(`127.0.0.1:${await strait.port('all')}`, grpc.credentials.createInsecure());
    allow = new Client(`127.0.0.1:${await strait.port('allow')}`, grpc.credentials.createInsecure());
    fault = new Client(`127.0.0.1:${await strait.port('fault')}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    mesh?.close();
    all?.close();
    allow?.close();
    fault?.close();
    await strait?.stop();
    await g?.close();
    await raw?.close();
  });

  /** Every `cluster.*.grpc.*` counter from GET /stats. */
  async function grpcStats(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const line of (await strait.get('/stats')).text.split('\n')) {
      const m = /^(cluster\.[^:]*\.grpc\.[^:]*): (\d+)$/.exec(line);
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  }

  /** The counters `fn` changed, by how much. */
  async function delta(fn: () => Promise<unknown>): Promise<Record<string, number>> {
    const before = await grpcStats();
    await fn();
    const after = await grpcStats();
    const d: Record<string, number> = {};
    for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) d[k] = v - (before[k] ?? 0);
    return d;
  }

  it("counts Istio's shape (stats_for_all_methods false) without service or method: unary ok and error", async () => {
    const ok = await delta(async () => expect((await unary(mesh, 'unary', Buffer.from('hi'))).res!.toString()).toBe('echo:hi'));
    expect(ok).toEqual({
      'cluster.grpc.grpc.0': 1,
      'cluster.grpc.grpc.success': 1,
      'cluster.grpc.grpc.total': 1,
      'cluster.grpc.grpc.request_message_count': 1,
      'cluster.grpc.grpc.response_message_count': 1,
    });
    const bad = await delta(async () => expect((await unary(mesh, 'unary', Buffer.from('hi'), { 'x-status': '5' })).err!.code).toBe(5));
    expect(bad).toEqual({ 'cluster.grpc.grpc.5': 1, 'cluster.grpc.grpc.failure': 1, 'cluster.grpc.grpc.total': 1, 'cluster.grpc.grpc.request_message_count': 1 });
    // Istio's emit_filter_state has no reader in Strait: start-up says so, and nothing else.
    expect(strait.stderr).toContain('emit_filter_state');
    expect(strait.stderr).not.toContain('grpc_stats statistics and filter state are not produced yet');
  });

  it('counts a trailers-only answer by the grpc-status in its head', async () => {
    const d = await delta(async () => expect((await unary(mesh, 'deny', Buffer.from('x'))).err!.code).toBe(7));
    expect(d).toEqual({ 'cluster.raw_grpc.grpc.7': 1, 'cluster.raw_grpc.grpc.failure': 1, 'cluster.raw_grpc.grpc.total': 1, 'cluster.raw_grpc.grpc.request_message_count': 1 });
  });

  it("counts the proxy's own gRPC reply (upstream unreachable: 14) under the routed cluster", async () => {
    const d = await delta(async () => expect((await unary(mesh, 'unary', Buffer.from('x'), { 'x-route': 'dead' })).err!.code).toBe(14));
    expect(d['cluster.dead_grpc.grpc.14']).toBe(1);
    expect(d['cluster.dead_grpc.grpc.failure']).toBe(1);
    expect(d['cluster.dead_grpc.grpc.total']).toBe(1);
  });

  it("counts a later filter's reply (fault abort) under the cluster the route would have used, as Envoy does", async () => {
    const d = await delta(async () => expect((await unary(fault, 'unary', Buffer.from('x'), { 'x-fault': '1' })).err!.code).toBe(8));
    // The request message comes after the reply ended the exchange: it is not counted.
    expect(d).toEqual({ 'cluster.grpc_fault.grpc.8': 1, 'cluster.grpc_fault.grpc.failure': 1, 'cluster.grpc_fault.grpc.total': 1 });
  });

  it('counts streamed messages each way across DATA frames, and trailers after messages', async () => {
    const ss = await delta(async () => expect(await serverStream(mesh, '5')).toEqual({ n: 5, code: 0 }));
    expect(ss).toEqual({ 'cluster.grpc.grpc.0': 1, 'cluster.grpc.grpc.success': 1, 'cluster.grpc.grpc.total': 1, 'cluster.grpc.grpc.request_message_count': 1, 'cluster.grpc.grpc.response_message_count': 5 });
    const failed = await delta(async () => expect(await serverStream(mesh, '3:9')).toEqual({ n: 3, code: 9 }));
    expect(failed).toEqual({ 'cluster.grpc.grpc.9': 1, 'cluster.grpc.grpc.failure': 1, 'cluster.grpc.grpc.total': 1, 'cluster.grpc.grpc.request_message_count': 1, 'cluster.grpc.grpc.response_message_count': 3 });
    const cs = await delta(async () => expect((await clientStream(mesh, 7)).toString()).toBe('7'));
    expect(cs).toMatchObject({ 'cluster.grpc.grpc.success': 1, 'cluster.grpc.grpc.request_message_count': 7, 'cluster.grpc.grpc.response_message_count': 1 });
    const bd = await delta(async () => expect(await bidi(mesh, 4)).toBe(4));
    expect(bd).toMatchObject({ 'cluster.grpc.grpc.success': 1, 'cluster.grpc.grpc.request_message_count': 4, 'cluster.grpc.grpc.response_message_count': 4 });
  });

  it('names service and method with stats_for_all_methods (dots replaced) and records upstream_rq_time', async () => {
    const d = await delta(async () => {
      await unary(all, 'unary', Buffer.from('a'));
      await bidi(all, 2);
    });
    expect(d).toEqual({
      'cluster.grpc_all.grpc.test_Echo.Unary.0': 1,
      'cluster.grpc_all.grpc.test_Echo.Unary.success': 1,
      'cluster.grpc_all.grpc.test_Echo.Unary.total': 1,
      'cluster.grpc_all.grpc.test_Echo.Unary.request_message_count': 1,
      'cluster.grpc_all.grpc.test_Echo.Unary.response_message_count': 1,
      'cluster.grpc_all.grpc.test_Echo.Bidi.0': 1,
      'cluster.grpc_all.grpc.test_Echo.Bidi.success': 1,
      'cluster.grpc_all.grpc.test_Echo.Bidi.total': 1,
      'cluster.grpc_all.grpc.test_Echo.Bidi.request_message_count': 2,
      'cluster.grpc_all.grpc.test_Echo.Bidi.response_message_count': 2,
    });
    const text = (await strait.get('/stats')).text;
    expect(text).toMatch(/^cluster\.grpc_all\.grpc\.test_Echo\.Unary\.upstream_rq_time: /m);
    const prom = (await strait.get('/stats/prometheus')).text;
    expect(prom).toMatch(/^envoy_cluster_grpc_test_Echo_Unary_success\{envoy_cluster_name="grpc_all"\} 1$/m);
    expect(prom).toMatch(/^envoy_cluster_grpc_test_Echo_Unary_upstream_rq_time_count\{envoy_cluster_name="grpc_all"\} 1$/m);
    // The filter without enable_upstream_stats records none.
    expect(text).not.toMatch(/^cluster\.grpc\.grpc\.upstream_rq_time/m);
  });

  it('names only allowlisted methods; the others count in the unnamed set', async () => {
    const d = await delta(async () => {
      await unary(allow, 'unary', Buffer.from('a'));
      expect(await serverStream(allow, '2')).toEqual({ n: 2, code: 0 });
    });
    expect(d).toEqual({
      'cluster.grpc_allow.grpc.test.Echo.Unary.0': 1,
      'cluster.grpc_allow.grpc.test.Echo.Unary.success': 1,
      'cluster.grpc_allow.grpc.test.Echo.Unary.total': 1,
      'cluster.grpc_allow.grpc.test.Echo.Unary.request_message_count': 1,
      'cluster.grpc_allow.grpc.test.Echo.Unary.response_message_count': 1,
      'cluster.grpc_allow.grpc.0': 1,
      'cluster.grpc_allow.grpc.success': 1,
      'cluster.grpc_allow.grpc.total': 1,
      'cluster.grpc_allow.grpc.request_message_count': 1,
      'cluster.grpc_allow.grpc.response_message_count': 2,
    });
  });

  it('shows the counters in /stats/prometheus', async () => {
    const prom = (await strait.get('/stats/prometheus')).text;
    expect(prom).toMatch(/^envoy_cluster_grpc_success\{envoy_cluster_name="grpc"\} [1-9]\d*$/m);
    expect(prom).toMatch(/^envoy_cluster_grpc_request_message_count\{envoy_cluster_name="grpc"\} [1-9]\d*$/m);
  });

  it('counts gRPC from an HTTP/1.1 client (chunked, with trailers) to an HTTP/2 upstream', async () => {
    const frames = Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from('hi')]);
    const d = await delta(async () => {
      const s = await connect(meshPort);
      // Split in two chunks, the frame header across them.
      const chunk = (b: Buffer) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]);
      s.write(`POST /test.Echo/Unary HTTP/1.1\r\nhost: x\r\ncontent-type: application/grpc\r\nte: trailers\r\ntransfer-encoding: chunked\r\n\r\n`);
      s.write(chunk(frames.subarray(0, 3)));
      s.write(Buffer.concat([chunk(frames.subarray(3)), Buffer.from('0\r\n\r\n')]));
      let got = '';
      await new Promise<void>((resolve) => {
        s.on('data', (b: Buffer) => {
          got += b.toString('latin1');
          if (got.includes('\r\n0\r\n') && got.endsWith('\r\n\r\n')) resolve();
        });
      });
      s.destroy();
      expect(got).toMatch(/^HTTP\/1\.1 200/);
      expect(got).toMatch(/grpc-status: 0/);
    });
    expect(d).toEqual({
      'cluster.grpc.grpc.0': 1,
      'cluster.grpc.grpc.success': 1,
      'cluster.grpc.grpc.total': 1,
      'cluster.grpc.grpc.request_message_count': 1,
      'cluster.grpc.grpc.response_message_count': 1,
    });
  });
});
