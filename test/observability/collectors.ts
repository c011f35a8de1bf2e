import http from 'node:http';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeServer } from '../helpers/net.js';

/** A received span, whichever wire format carried it. */
export interface Got {
  traceId: string;
  id: string;
  parentId: string | undefined;
  name: string;
  kind: 'SERVER' | 'CLIENT';
  tags: Record<string, string>;
  /** OTLP only: resource service.name, raw times, status code. */
  service?: string;
  start?: string;
  end?: string;
  statusCode?: number;
}

export interface Collector {
  port: number;
  readonly spans: Got[];
  readonly posts: number;
  /** Request headers of the last post. */
  readonly lastHeaders: http.IncomingHttpHeaders;
  /** Posts that failed the receiver's checks. */
  readonly errors: string[];
  /** Waits (bounded by the test's timeout) until `n` spans of `traceId` arrived. */
  spansOf(traceId: string, n: number): Promise<Got[]>;
  close(): Promise<void>;
}

async function collector(path: string, parse: (body: unknown) => Got[]): Promise<Collector> {
  const state = { spans: [] as Got[], posts: 0, headers: {} as http.IncomingHttpHeaders, errors: [] as string[] };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === path && req.headers['content-type'] === 'application/json') {
        state.posts++;
        state.headers = req.headers;
        try {
          state.spans.push(...parse(JSON.parse(body)));
        } catch (err) {
          state.errors.push((err as Error).message);
          return void res.writeHead(400).end();
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else res.writeHead(400).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    get spans() {
      return state.spans;
    },
    get posts() {
      return state.posts;
    },
    get errors() {
      return state.errors;
    },
    get lastHeaders() {
      return state.headers;
    },
    async spansOf(traceId: string, n: number) {
      for (;;) {
        const s = state.spans.filter((x) => x.traceId === traceId);
        if (s.length >= n) return s;
        await sleep(25);
      }
    },
    close: () => closeServer(server),
  };
}

/** A Zipkin v2 collector on /api/v2/spans. */
export function zipkinCollector(): Promise<Collector> {
  return collector('/api/v2/spans', (b) =>
    (b as Array<Record<string, any>>).map((s) => ({ traceId: s.traceId, id: s.id, parentId: s.parentId, name: s.name, kind: s.kind, tags: s.tags ?? {} })),
  );
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string;
}

/**
 * An OTLP/HTTP receiver on /v1/traces (JSON encoding). It checks what a real collector's
 * decoder needs: the resourceSpans → scopeSpans → spans nesting, hex ids of the right width,
 * nanosecond times as decimal strings, and known span kinds; anything else fails the post.
 */
export function otlpReceiver(): Promise<Collector> {
  return collector('/v1/traces', (b) => {
    const out: Got[] = [];
    const req = b as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: OtlpValue }> }; scopeSpans: Array<{ spans: Array<Record<string, any>> }> }> };
    for (const rs of req.resourceSpans) {
      const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          if (!/^[0-9a-f]{32}$/.test(s.traceId) || !/^[0-9a-f]{16}$/.test(s.spanId)) throw new Error(`bad ids ${s.traceId} ${s.spanId}`);
          if (s.parentSpanId !== undefined && !/^[0-9a-f]{16}$/.test(s.parentSpanId)) throw new Error(`bad parent ${s.parentSpanId}`);
          if (!/^\d+$/.test(s.startTimeUnixNano) || !/^\d+$/.test(s.endTimeUnixNano) || BigInt(s.endTimeUnixNano) < BigInt(s.startTimeUnixNano)) throw new Error('bad times');
          if (s.kind !== 2 && s.kind !== 3) throw new Error(`bad kind ${s.kind}`);
          const tags: Record<string, string> = {};
          for (const a of s.attributes as Array<{ key: string; value: OtlpValue }>) tags[a.key] = a.value.stringValue ?? a.value.intValue ?? '';
          out.push({
            traceId: s.traceId,
            id: s.spanId,
            parentId: s.parentSpanId,
            name: s.name,
            kind: s.kind === 2 ? 'SERVER' : 'CLIENT',
            tags,
            service,
            start: s.startTimeUnixNano,
            end: s.endTimeUnixNano,
            statusCode: s.status?.code,
          });
        }
      }
    }
    return out;
  });
}

/** `n` random lower-case hex digits, never all zero. */
export function hex(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(Math.random() * 16)];
  return s.replace(/^0/, '1');
}
