import crypto from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';

/** What the echo upstream saw, returned as its JSON body. */
export interface Echo {
  tag: string;
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  bodyLength: number;
  bodySha: string;
  connection: number;
}

export interface TestUpstream {
  port: number;
  tag: string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Requests served so far. */
  readonly requests: number;
  close(): Promise<void>;
}

/** A node:http upstream that counts the connections it accepted and saw close. */
export interface CountingUpstream {
  port: number;
  accepted: number;
  closed: number;
  server: http.Server;
}

/**
 * Serves `handler` on 127.0.0.1 (port from the OS), counting connections. Keep-alive lasts a
 * minute, so that the proxy's side decides when a connection closes.
 */
export async function countingUpstream(handler: http.RequestListener): Promise<CountingUpstream> {
  const up = { port: 0, accepted: 0, closed: 0, server: http.createServer(handler) };
  up.server.keepAliveTimeout = 60_000;
  up.server.on('connection', (s: net.Socket) => {
    up.accepted++;
    s.on('close', () => up.closed++);
  });
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', r));
  up.port = (up.server.address() as net.AddressInfo).port;
  return up;
}

/**
 * A node:http upstream driven by request headers:
 * - `x-test-status: N` answers with status N;
 * - `x-test-fail: N` + `x-test-key: K` makes the first N requests with key K fail (`x-test-fail-mode`:
 *   `status` (503, default), `reset` (socket destroyed before any byte), `hang` (never answers),
 *   or a status number);
 * - `x-test-delay-ms: N` waits before answering; `x-test-size: N` answers N bytes, chunked when
 *   `x-test-chunked` is set;
 * - otherwise it echoes what it received (see Echo), with `x-upstream: <tag>`.
 */
export async function httpUpstream(tag: string): Promise<TestUpstream> {
  let connections = 0;
  let requests = 0;
  const failures = new Map<string, number>();
  const server = http.createServer((req, res) => {
    requests++;
    const connId = (req.socket as net.Socket & { testId?: number }).testId ?? 0;
    const hash = crypto.createHash('sha256');
    let len = 0;
    req.on('data', (d: Buffer) => {
      len += d.length;
      hash.update(d);
    });
    req.on('end', () => {
      const h = req.headers;
      const key = String(h['x-test-key'] ?? '');
      const failN = Number(h['x-test-fail'] ?? 0);
      if (failN > 0) {
        const seen = failures.get(key) ?? 0;
        failures.set(key, seen + 1);
        if (seen < failN) {
          const mode = String(h['x-test-fail-mode'] ?? 'status');
          if (mode === 'reset') {
            req.socket.destroy();
            return;
          }
          if (mode === 'hang') return;
          res.writeHead(mode === 'status' ? 503 : Number(mode), { 'x-upstream': tag, 'x-attempt': String(seen + 1) });
          res.end('failed');
          return;
        }
      }
      const answer = () => {
        if (h['x-test-size']) {
          const n = Number(h['x-test-size']);
          const body = crypto.createHash('sha256').update(String(n)).digest();
          const chunked = h['x-test-chunked'] !== undefined;
          res.writeHead(Number(h['x-test-status'] ?? 200), chunked ? { 'x-upstream': tag } : { 'x-upstream': tag, 'content-length': String(n) });
          // Deterministic bytes: the test recomputes them.
          let sent = 0;
          const step = 64 * 1024;
          const pump = () => {
            while (sent < n) {
              const k = Math.min(step, n - sent);
              const b = Buffer.alloc(k, body[sent % 32]!);
              sent += k;
              if (!res.write(b)) {
                res.once('drain', pump);
                return;
              }
            }
            res.end();
          };
          pump();
          return;
        }
        const echo: Echo = {
          tag,
          method: req.method!,
          url: req.url!,
          headers: h,
          rawHeaders: req.rawHeaders,
          bodyLength: len,
          bodySha: hash.digest('hex'),
          connection: connId,
        };
        const body = JSON.stringify(echo);
        res.writeHead(Number(h['x-test-status'] ?? 200), { 'content-type': 'application/json', 'x-upstream': tag, 'x-upstream-remove-me': 'yes', server: 'test-upstream' });
        res.end(body);
      };
      const delay = Number(h['x-test-delay-ms'] ?? 0);
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: net.Socket & { testId?: number }) => {
    s.testId = ++connections;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    tag,
    get connections() {
      return connections;
    },
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The bytes `x-test-size: n` makes the upstream send. */
export function expectedSizedBody(n: number): Buffer {
  const body = crypto.createHash('sha256').update(String(n)).digest();
  const out = Buffer.alloc(n);
  const step = 64 * 1024;
  for (let sent = 0; sent < n; sent += step) out.fill(body[sent % 32]!, sent, Math.min(n, sent + step));
  return out;
}

/**
 * An http_connection_manager listener around an inline route_config (YAML, indented to fit).
 * `extra`: HCM fields (10-space indent); `httpFilters`: http_filters entries before the router
 * (10-space indent, `- name: ...`).
 */
export function hcmListener(name: string, routeConfig: string, extra = '', httpFilters = ''): string {
  const rc = routeConfig
    .trim()
    .split('\n')
    .map((l) => `            ${l}`)
    .join('\n');
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ${name}
          http_filters:
${httpFilters ? `${httpFilters.replace(/\n$/, '')}\n` : ''}          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
${extra}          route_config:
${rc}
`;
}

/** One virtual host `*` with one prefix route to `cluster`, plus optional route fields. */
export function simpleRoutes(cluster: string, routeExtra = ''): string {
  return `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: ${cluster}${routeExtra ? `, ${routeExtra}` : ''} }`;
}

/** One GET over a fresh h2c connection: the response headers and body; the connection is closed after. */
export function h2cGet(port: number, path: string, authority = 'svc'): Promise<{ headers: http2.IncomingHttpHeaders; status: number; body: string }> {
  return h2cRequest(port, { path, authority });
}

/** One request without a body over a fresh h2c connection (h2cGet with a method and headers). */
export async function h2cRequest(
  port: number,
  r: { path: string; method?: string; authority?: string; headers?: Record<string, string> },
): Promise<{ headers: http2.IncomingHttpHeaders; status: number; body: string }> {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise((resolve, reject) => {
      c.on('error', reject);
      h2SessionRequest(c, r).then(resolve, reject);
    });
  } finally {
    c.close();
  }
}

/** One request without a body on an open HTTP/2 session: the response headers, status and body. */
export function h2SessionRequest(
  session: http2.ClientHttp2Session,
  r: { path: string; method?: string; authority?: string; headers?: Record<string, string> },
): Promise<{ headers: http2.IncomingHttpHeaders; status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const rq = session.request({ ':method': r.method ?? 'GET', ':path': r.path, ':authority': r.authority ?? 'svc', ...r.headers });
    let headers: http2.IncomingHttpHeaders = {};
    let body = '';
    rq.on('response', (h) => (headers = h));
    rq.on('data', (d: Buffer) => (body += d.toString()));
    rq.on('end', () => resolve({ headers, status: Number(headers[':status']), body }));
    rq.on('error', reject);
    rq.end();
  });
}
