// OTLP/HTTP export from the HTTP connection manager: a local receiver checks the
// ExportTraceServiceRequest JSON and the parent/child links across client → Strait → upstream.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { httpUpstream, simpleRoutes, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, rpcProxyListener, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { hex, otlpReceiver, type Collector } from './collectors.js';

function hcm(name: string, tracing: string, routes: string): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ${name}
${tracing}          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
${routes}
`;
}

function otelTracing(port: number, extra = ''): string {
  return `          tracing:
            random_sampling: { value: 100 }
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: edge-proxy
                http_service:
                  http_uri: { uri: "http://127.0.0.1:${port}/v1/traces", cluster: otlp, timeout: 2s }
                  request_headers_to_add:
                  - header: { key: x-api-key, value: s3cret }
${extra}`;
}

describe.each(ENGINES.slice(0, 1))('OTLP/HTTP tracing in the HTTP connection manager on the %s engine', (engine) => {
  let up: TestUpstream;
  let otlp: Collector;
  let strait: StraitProcess;
  let traced = '';
  let plain = '';

  beforeAll(async () => {
    up = await httpUpstream('a');
    otlp = await otlpReceiver();
    const rc = simpleRoutes('a')
      .split('\n')
      .map((l) => `            ${l}`)
      .join('\n');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcm('traced', otelTracing(otlp.port), rc)}${hcm('plain', '', rc)}  clusters:
${staticCluster('a', [up.port])}${staticCluster('otlp', [otlp.port])}`,
      { engine },
    );
    traced = `http://127.0.0.1:${await strait.port('traced')}`;
    plain = `http://127.0.0.1:${await strait.port('plain')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
    await otlp?.close();
  });

  async function get(base: string, p: string, headers: Record<string, string>): Promise<Echo> {
    const r = await request(`${base}${p}`, { headers });
    expect(r.statusCode).toBe(200);
    return (await r.body.json()) as Echo;
  }

  it('continues the caller’s W3C trace: server span under the client’s span, the upstream under Strait’s client span', async () => {
    const traceId = hex(32);
    const callerSpan = hex(16);
    const seen: Echo[] = [];
    // Three requests make six spans: more than a batch (5), so the exporter posts at once.
    for (let i = 0; i < 3; i++) seen.push(await get(traced, `/otlp/${i}?q=1`, { traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: 'vendor=1' }));
    const spans = await otlp.spansOf(traceId, 6);
    expect(otlp.errors).toEqual([]);
    for (const e of seen) {
      const tp = String(e.headers.traceparent).split('-');
      expect(tp[1]).toBe(traceId);
      expect(tp[3]).toBe('01');
      // The upstream's parent is Strait's CLIENT span, itself a child of Strait's SERVER span.
      const client = spans.find((s) => s.id === tp[2])!;
      expect(client.kind).toBe('CLIENT');
      const server = spans.find((s) => s.id === client.parentId)!;
      expect(server.kind).toBe('SERVER');
      expect(server.parentId).toBe(callerSpan);
      expect(server.tags['http.method']).toBe('GET');
      expect(server.tags['http.status_code']).toBe('200');
      expect(client.tags.upstream_cluster).toBe('a');
      expect(client.tags['network.peer.address']).toBe('127.0.0.1');
      // tracestate is the caller's to carry on; Strait leaves it alone.
      expect(e.headers.tracestate).toBe('vendor=1');
    }
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(['edge-proxy']));
    expect(otlp.lastHeaders['x-api-key']).toBe('s3cret');
    expect(otlp.lastHeaders.host).toBe(`127.0.0.1:${otlp.port}`);
    expect(await strait.waitStat('tracing.opentelemetry.spans_sent', (v) => v >= 6)).toBeGreaterThanOrEqual(6);
  });

  it('reads traceparent before B3 and starts 128-bit traces for requests without context', async () => {
    const w3cTrace = hex(32);
    const b3Trace = hex(32);
    const caller = hex(16);
    const e1 = await get(traced, '/both', { traceparent: `00-${w3cTrace}-${caller}-01`, 'x-b3-traceid': b3Trace, 'x-b3-spanid': hex(16), 'x-b3-sampled': '1' });
    expect(String(e1.headers.traceparent).split('-')[1]).toBe(w3cTrace);
    const e2 = await get(traced, '/fresh', {});
    const fresh = String(e2.headers.traceparent).split('-')[1]!;
    expect(fresh).toMatch(/^[0-9a-f]{32}$/);
    await get(traced, '/fill', {});
    const s1 = await otlp.spansOf(w3cTrace, 2);
    expect(s1.find((s) => s.kind === 'SERVER')!.parentId).toBe(caller);
    const s2 = await otlp.spansOf(fresh, 2);
    expect(s2.find((s) => s.kind === 'SERVER')!.parentId).toBeUndefined();
  });

  it('exports nothing for a connection manager without tracing', async () => {
    const traceId = hex(32);
    const e = await get(plain, '/untraced', { traceparent: `00-${traceId}-${hex(16)}-01` });
    // Without tracing the caller's context passes through untouched.
    expect(String(e.headers.traceparent).split('-')[1]).toBe(traceId);
    expect(e.headers['x-b3-traceid']).toBeUndefined();
    // Three traced requests fill a batch; spans are posted in order, so by then an untraced
    // request's span would have arrived too.
    const marker = hex(32);
    for (let i = 0; i < 3; i++) await get(traced, '/marker', { traceparent: `00-${marker}-${hex(16)}-01` });
    await otlp.spansOf(marker, 6);
    expect(otlp.spans.some((s) => s.traceId === traceId)).toBe(false);
  });
});

describe('OpenTelemetry tracer config errors', () => {
  const dir = tmpDir();
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function config(typed: string): string {
    return `static_resources:
  listeners:
${hcm('l', `          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
${typed}`, '            virtual_hosts: [{ name: v, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: otlp } }] }]')}  clusters:
${staticCluster('otlp', [9])}`;
  }

  it.each([
    ['grpc_service', '                grpc_service: { envoy_grpc: { cluster_name: otlp } }\n', ['tracing.provider.typed_config.grpc_service', 'OTLP/gRPC export is not supported']],
    ['no exporter', '                service_name: x\n', ['tracing.provider.typed_config.http_service', 'is required']],
    ['unknown cluster', '                http_service: { http_uri: { uri: "http://c:4318/v1/traces", cluster: nope, timeout: 1s } }\n', ['http_service.http_uri.cluster', 'unknown cluster "nope"']],
  ])('%s is refused with its field path', async (what, typed, fragments) => {
    const file = path.join(dir, `${what.replace(/\W+/g, '_')}.yaml`);
    fs.writeFileSync(file, config(typed));
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code, r.stderr).toBe(1);
    for (const f of fragments) expect(r.stderr).toContain(f);
  });

  it('names rpc_proxy’s tracing field path too', async () => {
    const file = path.join(dir, 'rpc.yaml');
    fs.writeFileSync(
      file,
      `static_resources:
  listeners:
${rpcProxyListener('rpc', `          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                http_service: { http_uri: { uri: "http://c:4318/v1/traces", cluster: otlp } }
          route_config: []`)}  clusters:
${staticCluster('otlp', [9])}`,
    );
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('tracing.provider.typed_config.http_service.http_uri.timeout');
  });
});
