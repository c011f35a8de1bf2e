// rpc_proxy tracing with real RPC peers: SOFARPC Bolt frames built by sofa-bolt-node (with trace
// entries in their header map) and sofa-rpc-node clients, dubbo-js clients with attachments;
// spans go to a Zipkin collector and an OTLP/HTTP receiver, which check trace ids and parents.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoltStatus } from '../../src/protocols/bolt/codec.js';
import { getCodec } from '../../src/protocols/index.js';
import { FrameKind, H } from '../../src/protocols/types.js';
import { connect, deadPort } from '../helpers/net.js';
import { ADMIN, ENGINES, REPO, rpcProxyListener, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';
import { hex, otlpReceiver, zipkinCollector, type Collector, type Got } from './collectors.js';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const boltV1 = require('sofa-bolt-node/lib/protocol/v1.js');
const RpcRequestCommand = require('sofa-bolt-node/lib/protocol/rpc_req_cmd.js');
const SimpleMapSerializer = require('sofa-bolt-node/lib/simple_map_serializer.js');
const FIXTURES = path.join(REPO, 'test/fixtures/rpc');
const { startDubboProvider } = require(path.join(FIXTURES, 'dubbo_provider.cjs'));
const run = promisify(execFile);
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

const BOLT_IFACE = 'com.example.UserService';
const DUBBO_IFACE = 'com.example.DubboService';
type Sink = 'zipkin' | 'otlp';

/**
 * A SOFARPC request whose header map carries `extra` next to `service`, as SOFARPC Java writes
 * SOFATracer's rpc_trace_context.* entries (sofa-rpc-node writes only `service` with hessian2).
 */
class TracedRequest extends RpcRequestCommand {
  constructor(
    obj: unknown,
    private readonly extra: Record<string, string>,
  ) {
    super(obj, { codecType: 'hessian2' });
  }
  serializeHeader(byteBuffer: { put(b: Buffer): void }): void {
    byteBuffer.put(SimpleMapSerializer.encode({ service: `${BOLT_IFACE}:1.0`, ...this.extra }));
  }
}

function boltFrame(id: number, method: string, extra: Record<string, string>): Buffer {
  const cmd = new TracedRequest({ serverSignature: `${BOLT_IFACE}:1.0`, methodName: method, args: [{ $class: 'java.lang.String', $: `x${id}` }], timeout: 3000 }, extra);
  return Buffer.from(boltV1.encode(cmd, { rpcType: 1, cmdCode: 1, id, codecType: 'hessian2' }));
}

/** Sends `n` calls on one connection and returns the response statuses by request id. */
async function boltCalls(port: number, n: number, method: string, extra: Record<string, string>): Promise<number[]> {
  const s = await connect(port);
  const codec = getCodec('bolt')!;
  const statuses: number[] = [];
  const hdr = new Int32Array(H.SIZE);
  let buf = Buffer.alloc(0);
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        codec.decodeHeader(buf, 0, buf.length, 1 << 20, hdr);
        if (hdr[H.STATE] !== 1) break;
        if (hdr[H.KIND] === FrameKind.RESPONSE) statuses[hdr[H.ID_LO]!] = hdr[H.STATUS]!;
        buf = buf.subarray(hdr[H.FRAME_LEN]!);
      }
      if (statuses.filter((x) => x !== undefined).length === n) resolve();
    });
    s.on('error', reject);
  });
  for (let i = 1; i <= n; i++) s.write(boltFrame(i, method, extra));
  await done;
  s.destroy();
  return statuses.slice(1);
}

/** A TCP tap in front of a provider: keeps every byte sent to it, per connection. */
async function tap(target: number): Promise<{ port: number; boltHeaders(): Array<Record<string, string>>; close(): void }> {
  const streams: Buffer[][] = [];
  const server = net.createServer((c) => {
    const chunks: Buffer[] = [];
    streams.push(chunks);
    const up = net.connect(target, '127.0.0.1');
    c.on('data', (d: Buffer) => {
      chunks.push(d);
      up.write(d);
    });
    up.on('data', (d: Buffer) => c.write(d));
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
    c.on('error', () => {});
    up.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    // Bolt v1 requests: classLen at 14, headerLen at 16, contentLen at 18, then class, header map, content.
    boltHeaders() {
      const out: Array<Record<string, string>> = [];
      for (const chunks of streams) {
        const b = Buffer.concat(chunks);
        let p = 0;
        while (p + 22 <= b.length) {
          if (b.readUInt16BE(p + 2) !== 1) {
            p += b[p + 1] === 0 ? 20 + b.readUInt16BE(p + 12) + b.readUInt16BE(p + 14) + b.readUInt32BE(p + 16) : 22 + b.readUInt16BE(p + 14) + b.readUInt16BE(p + 16) + b.readUInt32BE(p + 18);
            continue;
          }
          const cls = b.readUInt16BE(p + 14);
          const hl = b.readUInt16BE(p + 16);
          const cl = b.readUInt32BE(p + 18);
          out.push(SimpleMapSerializer.decode(b.subarray(p + 22 + cls, p + 22 + cls + hl)));
          p += 22 + cls + hl + cl;
        }
      }
      return out;
    },
    close: () => server.close(),
  };
}

function tracing(sink: Sink, port: number): string {
  const provider =
    sink === 'zipkin'
      ? `              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: /api/v2/spans
                collector_endpoint_version: HTTP_JSON
`
      : `              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: rpc-sidecar
                http_service: { http_uri: { uri: "http://127.0.0.1:${port}/v1/traces", cluster: otlp, timeout: 2s } }
`;
  return `          tracing:
            random_sampling: { value: 100 }
            provider:
${provider}`;
}

const ROUTES = `          route_config:
          - interface: ${BOLT_IFACE}
            version: "1.0"
            routes: [ { match: {}, route: { cluster: bolt } } ]
          - interface: ${DUBBO_IFACE}
            version: "1.0.0"
            routes: [ { match: {}, route: { cluster: dubbo } } ]
`;

describe.each(ENGINES)('rpc_proxy tracing on the %s engine', (engine) => {
  let sofa: { close(): Promise<void> };
  let boltTap: Awaited<ReturnType<typeof tap>>;
  let provider: { port: number; requests: Array<{ method: string; attachments: Record<string, string> }>; close(): Promise<void> };
  let zipkin: Collector;
  let otlp: Collector;
  let strait: StraitProcess;
  const ports: Record<Sink | 'plain', number> = { zipkin: 0, otlp: 0, plain: 0 };
  const collector = (s: Sink) => (s === 'zipkin' ? zipkin : otlp);

  beforeAll(async () => {
    const server = new RpcServer({ logger: quiet, port: await deadPort() });
    server.addService({ interfaceName: BOLT_IFACE, version: '1.0' }, {
      async hello(name: string) {
        return `hello ${name}`;
      },
      async bye(name: string) {
        return `bye ${name}`;
      },
    });
    await server.start();
    sofa = { close: () => server.close() };
    boltTap = await tap(server._servers[0].address().port);
    provider = await startDubboProvider({ interface: DUBBO_IFACE, version: '1.0.0', name: 'p', methods: ['greet'] });
    zipkin = await zipkinCollector();
    otlp = await otlpReceiver();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc_zipkin', `          protocol: AUTO\n${tracing('zipkin', 0)}${ROUTES}`, 'traced_z')}${rpcProxyListener('rpc_otlp', `          protocol: AUTO\n${tracing('otlp', otlp.port)}${ROUTES}`, 'traced_o')}${rpcProxyListener('rpc_plain', `          protocol: AUTO\n${ROUTES}`, 'plain')}  clusters:
${staticCluster('bolt', [boltTap.port])}${staticCluster('dubbo', [provider.port])}${staticCluster('zipkin', [zipkin.port])}${staticCluster('otlp', [otlp.port])}`,
      { engine },
    );
    for (const l of ['zipkin', 'otlp', 'plain'] as const) ports[l] = await strait.port(`rpc_${l}`);
  });

  afterAll(async () => {
    await strait?.stop();
    boltTap?.close();
    await sofa?.close();
    await provider?.close();
    await zipkin?.close();
    await otlp?.close();
  });

  it.each(['zipkin', 'otlp'] as const)('Bolt with traceparent in the header map: the span continues the caller’s trace (%s) and the provider sees it as parent', async (sink) => {
    const traceId = hex(32);
    const caller = hex(16);
    // Five calls make a batch, so the exporter posts at once.
    expect(await boltCalls(ports[sink], 5, 'hello', { traceparent: `00-${traceId}-${caller}-01` })).toEqual(Array(5).fill(BoltStatus.SUCCESS));
    const spans = await collector(sink).spansOf(traceId, 5);
    expect(collector(sink).errors).toEqual([]);
    for (const s of spans) {
      expect(s.parentId).toBe(caller);
      expect(s.name).toBe(`${BOLT_IFACE}/hello`);
      expect(s.tags['rpc.system']).toBe('bolt');
      expect(s.tags['rpc.service']).toBe(BOLT_IFACE);
      expect(s.tags['rpc.method']).toBe('hello');
      expect(s.tags['rpc.version']).toBe('1.0');
      expect(s.tags['rpc.status_code']).toBe('0');
      expect(s.tags.upstream_cluster).toBe('bolt');
      expect(s.tags['peer.address']).toBe(`127.0.0.1:${boltTap.port}`);
      if (sink === 'otlp') expect(s.service).toBe('rpc-sidecar');
    }
    // The provider got the proxy's span as its parent, in W3C and B3 form, and the rest of the map intact.
    const seen = boltTap.boltHeaders().filter((h) => h.traceparent?.includes(traceId));
    expect(seen).toHaveLength(5);
    const ids = new Set(spans.map((s) => s.id));
    for (const h of seen) {
      const [, t, parent, flags] = h.traceparent!.split('-');
      expect([t, flags]).toEqual([traceId, '01']);
      expect(ids.has(parent!)).toBe(true);
      expect(h['x-b3-spanid']).toBe(parent);
      expect(h['x-b3-parentspanid']).toBe(caller);
      expect(h.service).toBe(`${BOLT_IFACE}:1.0`);
    }
  });

  it('Bolt with SOFATracer’s rpc_trace_context keys maps the SOFA trace onto the span', async () => {
    const sofaTraceId = `0a0fe8ec${Date.now()}1001${hex(4)}`; // IP, time, sequence, pid: all hex digits
    const extra = { 'rpc_trace_context.sofaTraceId': sofaTraceId, 'rpc_trace_context.sofaRpcId': '0.1', 'rpc_trace_context.sofaPenAttrs': 'mark=T&' };
    expect(await boltCalls(ports.zipkin, 5, 'hello', extra)).toEqual(Array(5).fill(BoltStatus.SUCCESS));
    const traceId = sofaTraceId.padStart(32, '0');
    const spans = await zipkin.spansOf(traceId, 5);
    // One caller span for all five (same rpc id), stable across hops.
    expect(new Set(spans.map((s) => s.parentId)).size).toBe(1);
    expect(spans[0]!.parentId).toMatch(/^[0-9a-f]{16}$/);
    expect(spans[0]!.tags['sofa.trace_id']).toBe(sofaTraceId);
    expect(spans[0]!.tags['sofa.rpc_id']).toBe('0.1');
    // SOFATracer's own entries reach the provider untouched, next to the proxy's context.
    const seen = boltTap.boltHeaders().filter((h) => h['rpc_trace_context.sofaTraceId'] === sofaTraceId);
    expect(seen).toHaveLength(5);
    for (const h of seen) {
      expect(h['rpc_trace_context.sofaRpcId']).toBe('0.1');
      expect(h['rpc_trace_context.sofaPenAttrs']).toBe('mark=T&');
      expect(h.traceparent!.split('-')[1]).toBe(traceId);
    }
  });

  it('a sofa-rpc-node client without context gets a new root span per call', async () => {
    const before = boltTap.boltHeaders().length;
    const { stdout } = await run(process.execPath, [path.join(FIXTURES, 'bolt_client.cjs'), String(ports.otlp), BOLT_IFACE, '1.0', 'bye', '5', 'n'], { cwd: REPO, timeout: 20_000 });
    expect(JSON.parse(stdout)).toEqual(Array.from({ length: 5 }, (_, i) => ({ ok: true, value: `bye n-${i}` })));
    const headers = boltTap.boltHeaders().slice(before).filter((h) => h.traceparent);
    expect(headers).toHaveLength(5);
    for (const h of headers) {
      const [, traceId, spanId] = h.traceparent!.split('-');
      const [span] = await otlp.spansOf(traceId!, 1);
      expect(span!.id).toBe(spanId);
      expect(span!.parentId).toBeUndefined();
      expect(span!.name).toBe(`${BOLT_IFACE}/bye`);
      expect(h['x-b3-parentspanid']).toBeUndefined();
    }
  });

  it.each(['zipkin', 'otlp'] as const)('Dubbo with Brave’s B3 attachments (%s): span under the caller, the provider under the span', async (sink) => {
    const traceId = hex(32);
    const caller = hex(16);
    const before = provider.requests.length;
    const att = { 'X-B3-TraceId': traceId, 'X-B3-SpanId': caller, 'X-B3-Sampled': '1' };
    const { stdout } = await run(process.execPath, [path.join(FIXTURES, 'dubbo_traced_client.cjs'), String(ports[sink]), DUBBO_IFACE, '1.0.0', 'greet', '5', 'd', JSON.stringify(att)], { cwd: REPO, timeout: 20_000 });
    expect(JSON.parse(stdout)).toEqual(Array.from({ length: 5 }, (_, i) => ({ ok: true, value: `p:greet:d-${i}` })));
    const spans: Got[] = await collector(sink).spansOf(traceId, 5);
    for (const s of spans) {
      expect(s.parentId).toBe(caller);
      expect(s.name).toBe(`${DUBBO_IFACE}/greet`);
      expect(s.tags['rpc.system']).toBe('dubbo');
      expect(s.tags['rpc.version']).toBe('1.0.0');
      expect(s.tags['rpc.status_code']).toBe('20');
    }
    const reqs = provider.requests.slice(before);
    expect(reqs).toHaveLength(5);
    const ids = new Set(spans.map((s) => s.id));
    for (const r of reqs) {
      const a = r.attachments;
      // Brave's spelling is kept, so a Brave provider finds its keys; no second spelling is added.
      expect(a['X-B3-TraceId']).toBe(traceId);
      expect(ids.has(a['X-B3-SpanId']!)).toBe(true);
      expect(a['X-B3-ParentSpanId']).toBe(caller);
      expect(a['x-b3-spanid']).toBeUndefined();
      expect(a.traceparent).toBe(`00-${traceId}-${a['X-B3-SpanId']}-01`);
      // dubbo-js's own attachments survive the rewrite.
      expect(a.path).toBe(DUBBO_IFACE);
      expect(a.version).toBe('1.0.0');
    }
  });

  it('without tracing nothing is exported and the frames pass unchanged', async () => {
    const traceId = hex(32);
    const caller = hex(16);
    expect(await boltCalls(ports.plain, 5, 'hello', { traceparent: `00-${traceId}-${caller}-01` })).toEqual(Array(5).fill(BoltStatus.SUCCESS));
    const dubboTrace = hex(32);
    const before = provider.requests.length;
    await run(process.execPath, [path.join(FIXTURES, 'dubbo_traced_client.cjs'), String(ports.plain), DUBBO_IFACE, '1.0.0', 'greet', '1', 'd', JSON.stringify({ traceparent: `00-${dubboTrace}-${caller}-01` })], { cwd: REPO, timeout: 20_000 });
    // The callee sees the caller's own context.
    const seen = boltTap.boltHeaders().filter((h) => h.traceparent?.includes(traceId));
    expect(seen.map((h) => h.traceparent)).toEqual(Array(5).fill(`00-${traceId}-${caller}-01`));
    expect(seen.every((h) => h['x-b3-spanid'] === undefined)).toBe(true);
    expect(provider.requests.slice(before).map((r) => r.attachments.traceparent)).toEqual([`00-${dubboTrace}-${caller}-01`]);
    // Traced calls after them fill a batch per sink; spans are posted in order, so an untraced
    // call's span would have arrived by then.
    for (const sink of ['zipkin', 'otlp'] as const) {
      const marker = hex(32);
      await boltCalls(ports[sink], 5, 'hello', { traceparent: `00-${marker}-${hex(16)}-01` });
      await collector(sink).spansOf(marker, 5);
      expect(collector(sink).spans.some((s) => s.traceId === traceId || s.traceId === dubboTrace)).toBe(false);
    }
  });
});
