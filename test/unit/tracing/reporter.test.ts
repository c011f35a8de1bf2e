// The span exporters' batching against a real HTTP receiver: a bounded queue with a drop counter,
// bounded posts, and at most two posts in flight however far behind the reporter is.
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatsStore } from '../../../src/observability/stats.js';
import { OtlpReporter } from '../../../src/observability/tracing/otlp.js';
import type { ZipkinSpan } from '../../../src/observability/tracing/reporter.js';
import type { ClusterManager } from '../../../src/upstream/cluster_manager.js';
import { closeServer } from '../../helpers/net.js';

describe('batching span reporter', () => {
  let server: http.Server;
  let port = 0;
  const posts: number[] = [];
  let open = 0;
  let maxOpen = 0;
  let received = 0;
  let wake: (() => void) | null = null;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      let body = '';
      req.on('data', (d: Buffer) => (body += d));
      req.on('end', () => {
        const n = (JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: unknown[] }> }> }).resourceSpans.reduce((a, r) => a + r.scopeSpans[0]!.spans.length, 0);
        posts.push(n);
        received += n;
        // A slow collector: answers a little later, so posts overlap if the reporter lets them.
        setTimeout(() => {
          open--;
          res.writeHead(200).end('{}');
          wake?.();
        }, 20);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(() => closeServer(server));

  it('drops beyond its queue bound, posts at most 1000 spans at a time, two posts at once', async () => {
    const store = new StatsStore();
    // The one thing the reporter asks of the cluster manager: a host of the collector cluster.
    const clusters = { get: (name: string) => (name === 'otlp' ? { pickHost: () => ({ address: { family: 'IPv4', address: '127.0.0.1', port } }) } : undefined) } as unknown as ClusterManager;
    const r = new OtlpReporter({ kind: 'otlp', cluster: 'otlp', path: '/v1/traces', hostname: 'c', timeoutMs: 5000, headers: [], serviceName: 's' }, clusters, store.root);
    const span = (i: number): ZipkinSpan => ({ traceId: 'a'.repeat(32), id: (i + 1).toString(16).padStart(16, '0'), name: 'n', kind: 'CLIENT', timestamp: 1_700_000_000_000_000 + i, duration: 5, localEndpoint: {}, tags: {} });
    // All reported in one turn: nothing is posted until it ends, so the queue fills.
    for (let i = 0; i < 10_010; i++) r.report(span(i));
    while (received < 10_000) await new Promise<void>((res) => (wake = res));
    expect(received).toBe(10_000);
    expect(Math.max(...posts)).toBeLessThanOrEqual(1000);
    expect(maxOpen).toBeLessThanOrEqual(2);
    // The last answers may still be on their way back to the reporter.
    while (!store.renderText().includes('tracing.opentelemetry.http_reports_sent: 10\n')) await new Promise((res) => setImmediate(res));
    const text = store.renderText();
    expect(text).toContain('tracing.opentelemetry.spans_dropped: 10\n');
    expect(text).toContain('tracing.opentelemetry.spans_sent: 10000\n');
  });
});
