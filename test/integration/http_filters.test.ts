import crypto from 'node:crypto';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { sha256 } from '../helpers/net.js';
import { httpUpstream, simpleRoutes, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** An HCM listener with HTTP filters (YAML list items at the http_filters indentation) before the router. */
function listener(name: string, filters: string): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ${name}
          http_filters:
${filters}
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
${simpleRoutes('a').split('\n').map((l) => `            ${l}`).join('\n')}
`;
}

const FAULT = `          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              headers: [{ name: x-chaos, present_match: true }]
              delay: { header_delay: {}, percentage: { numerator: 100 } }
              abort: { header_abort: {}, percentage: { numerator: 100 } }`;

const FIXED_ABORT = `          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              headers: [{ name: x-break, string_match: { exact: "yes" } }]
              abort: { http_status: 503, percentage: { numerator: 100 } }`;

const RATELIMIT = `          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: limiter
              token_bucket: { max_tokens: 3, tokens_per_fill: 1, fill_interval: 3600s }
              filter_enabled: { default_value: { numerator: 100 }, runtime_key: rl_enabled }
              filter_enforced: { default_value: { numerator: 100 }, runtime_key: rl_enforced }
              response_headers_to_add: [{ header: { key: x-local-rate-limit, value: "true" } }]`;

describe.each(ENGINES.slice(0, 1))('HTTP filters on the %s engine', (engine) => {
  let a: TestUpstream;
  let strait: StraitProcess;
  const url: Record<string, string> = {};

  beforeAll(async () => {
    a = await httpUpstream('a');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${listener('chaos', FAULT)}
${listener('broken', FIXED_ABORT)}
${listener('limited', RATELIMIT)}
  clusters:
${staticCluster('a', [a.port])}`,
      { engine },
    );
    for (const n of ['chaos', 'broken', 'limited']) url[n] = `http://127.0.0.1:${await strait.port(n)}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  it('aborts matching requests with the configured status, and only those', async () => {
    const hit = await request(`${url.broken}/x`, { headers: { 'x-break': 'yes' } });
    expect(hit.statusCode).toBe(503);
    expect(await hit.body.text()).toBe('fault filter abort');
    const miss = await request(`${url.broken}/x`, { headers: { 'x-break': 'no' } });
    expect(miss.statusCode).toBe(200);
    await miss.body.dump();
    expect(await strait.stat('http.broken.fault.aborts_injected')).toBe(1);
    expect(await strait.stat('http.broken.fault.active_faults')).toBe(0);
  });

  it('aborts with the status a header asks for when header_abort is configured', async () => {
    const r = await request(`${url.chaos}/x`, { headers: { 'x-chaos': '1', 'x-envoy-fault-abort-request': '418' } });
    expect(r.statusCode).toBe(418);
    await r.body.dump();
    // The filter's own header matcher gates header faults too.
    const ungated = await request(`${url.chaos}/x`, { headers: { 'x-envoy-fault-abort-request': '418' } });
    expect(ungated.statusCode).toBe(200);
    await ungated.body.dump();
  });

  it('delays a request by the header value and still delivers its whole body', async () => {
    const body = crypto.randomBytes(200_000);
    const r = await request(`${url.chaos}/slow`, { method: 'POST', body, headers: { 'x-chaos': '1', 'x-envoy-fault-delay-request': '200' } });
    expect(r.statusCode).toBe(200);
    const echo = (await r.body.json()) as Echo;
    expect(echo.bodyLength).toBe(body.length);
    expect(echo.bodySha).toBe(sha256(body));
    expect(await strait.stat('http.chaos.fault.delays_injected')).toBe(1);
  });

  it('answers a gRPC request aborted by header with the gRPC status over HTTP 200', async () => {
    const s = http2.connect(url.chaos!);
    try {
      const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const rq = s.request({ ':method': 'POST', ':path': '/svc/Call', 'content-type': 'application/grpc', 'x-chaos': '1', 'x-envoy-fault-abort-grpc-request': '8' });
        rq.on('response', resolve);
        rq.on('error', reject);
        rq.end();
      });
      expect(head[':status']).toBe(200);
      expect(head['grpc-status']).toBe('8');
    } finally {
      s.close();
    }
  });

  it('rate-limits with a token bucket: 429 with the configured header once the tokens are gone', async () => {
    const statuses: number[] = [];
    let limitedHeader: string | string[] | undefined;
    for (let i = 0; i < 5; i++) {
      const r = await request(`${url.limited}/x`);
      statuses.push(r.statusCode);
      if (r.statusCode === 429) limitedHeader = r.headers['x-local-rate-limit'];
      await r.body.dump();
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(limitedHeader).toBe('true');
    expect(await strait.stat('limiter.http_local_rate_limit.rate_limited')).toBe(2);
    expect(await strait.stat('limiter.http_local_rate_limit.enforced')).toBe(2);
    expect(await strait.stat('limiter.http_local_rate_limit.ok')).toBe(3);
  });
});
