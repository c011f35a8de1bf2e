import fs from 'node:fs';
import net from 'node:net';
import type { ListenAddress, PeerAddress } from '../io/engine.js';
import { log } from '../log.js';
import { BODY_ERROR, BodyFramer, BodyMode } from '../protocols/http1/body.js';
import { parseRequestHead } from '../protocols/http1/decoder.js';
import { encodeLocalResponse } from '../protocols/http1/encoder.js';
import { HeadStatus } from '../protocols/http1/types.js';

/** What the admin API can see and do; the server implements it. */
export interface AdminHost {
  /** LIVE, DRAINING, PRE_INITIALIZING or INITIALIZING, as Envoy reports it. */
  readonly state: 'LIVE' | 'DRAINING' | 'PRE_INITIALIZING' | 'INITIALIZING';
  renderStats(format: 'text' | 'json', filter?: RegExp): string;
  renderPrometheus(): string;
  configDump(resource?: string): unknown;
  renderClusters(format: 'text' | 'json'): string;
  renderListeners(format: 'text' | 'json'): string;
  serverInfo(): unknown;
  drainListeners(graceful: boolean): void;
  setHealthCheckFailed(failed: boolean): void;
  quit(): void;
  /** A second line for /ready when the state needs explaining (xDS served from a persisted snapshot). */
  readyDetail?(): string | null;
  /** xDS on-demand clusters: the subscription as JSON; absent without xDS. */
  onDemandClusters?(): unknown;
  /** Declares (or with `remove`, withdraws) clusters the app calls; throws on bad input. */
  declareOnDemandClusters?(names: readonly string[], remove: boolean): void;
}

type Handler = (host: AdminHost, q: URLSearchParams) => { status?: number; type?: string; body: string };

interface Endpoint {
  readonly help: string;
  /** True, or a test of the query when only some forms of the endpoint change state. */
  readonly mutates: boolean | ((q: URLSearchParams) => boolean);
  readonly handler: Handler;
}

const TEXT = 'text/plain; charset=UTF-8';
const JSON_TYPE = 'application/json';

function regexParam(q: URLSearchParams): RegExp | undefined {
  const f = q.get('filter');
  return f ? new RegExp(f) : undefined;
}

/** Envoy's admin endpoints. Mutating ones require POST, as Envoy enforces. */
const ENDPOINTS: Record<string, Endpoint> = {
  '/ready': {
    help: 'print server state, return 200 if LIVE, otherwise return 503',
    mutates: false,
    handler: (h) => {
      const detail = h.readyDetail?.();
      return { status: h.state === 'LIVE' ? 200 : 503, body: detail ? `${h.state}\n${detail}\n` : `${h.state}\n` };
    },
  },
  '/stats': {
    help: 'print server stats',
    mutates: false,
    handler: (h, q) =>
      q.get('format') === 'json'
        ? { type: JSON_TYPE, body: h.renderStats('json', regexParam(q)) }
        : q.get('format') === 'prometheus'
          ? { type: 'text/plain; version=0.0.4; charset=UTF-8', body: h.renderPrometheus() }
          : { body: h.renderStats('text', regexParam(q)) },
  },
  '/stats/prometheus': {
    help: 'print server stats in prometheus format',
    mutates: false,
    handler: (h) => ({ type: 'text/plain; version=0.0.4; charset=UTF-8', body: h.renderPrometheus() }),
  },
  '/config_dump': {
    help: 'dump current Envoy configs (secrets redacted)',
    mutates: false,
    handler: (h, q) => ({ type: JSON_TYPE, body: JSON.stringify(h.configDump(q.get('resource') ?? undefined), null, 2) }),
  },
  '/clusters': {
    help: 'upstream cluster status',
    mutates: false,
    handler: (h, q) => (q.get('format') === 'json' ? { type: JSON_TYPE, body: h.renderClusters('json') } : { body: h.renderClusters('text') }),
  },
  '/listeners': {
    help: 'print listener info',
    mutates: false,
    handler: (h, q) => (q.get('format') === 'json' ? { type: JSON_TYPE, body: h.renderListeners('json') } : { body: h.renderListeners('text') }),
  },
  '/server_info': {
    help: 'print server version/status information',
    mutates: false,
    handler: (h) => ({ type: JSON_TYPE, body: JSON.stringify(h.serverInfo(), null, 2) }),
  },
  '/drain_listeners': {
    help: 'drain listeners (graceful: let open connections finish)',
    mutates: true,
    handler: (h, q) => {
      h.drainListeners(q.has('graceful'));
      return { body: 'OK\n' };
    },
  },
  '/healthcheck/fail': {
    help: 'cause the server to fail health checks',
    mutates: true,
    handler: (h) => {
      h.setHealthCheckFailed(true);
      return { body: 'OK\n' };
    },
  },
  '/healthcheck/ok': {
    help: 'cause the server to pass health checks',
    mutates: true,
    handler: (h) => {
      h.setHealthCheckFailed(false);
      return { body: 'OK\n' };
    },
  },
  '/ondemand/clusters': {
    help: 'xDS on-demand clusters: GET lists the subscription; POST ?name=C (repeatable, &remove to withdraw) declares clusters the app calls',
    // Listing is a read; a name means a change of subscription, which needs POST.
    mutates: (q) => q.has('name') || q.has('remove'),
    handler: (h, q) => {
      if (!h.onDemandClusters) return { status: 404, body: 'xDS is not configured\n' };
      if (q.has('name') || q.has('remove')) {
        h.declareOnDemandClusters!(q.getAll('name'), q.has('remove'));
      }
      return { type: JSON_TYPE, body: JSON.stringify(h.onDemandClusters(), null, 2) };
    },
  },
  '/quitquitquit': {
    help: 'exit the server',
    mutates: true,
    handler: (h) => {
      // Answer first; the exit happens after the response is flushed.
      setImmediate(() => h.quit());
      return { body: 'OK\n' };
    },
  },
};

function helpPage(): string {
  return 'admin commands are:\n' + Object.entries(ENDPOINTS).map(([p, e]) => `  ${p}: ${e.help}`).join('\n') + '\n';
}

/** Admin connections close after this long without a request, as node:http's keep-alive default. */
const IDLE_MS = 5000;
/** Admin requests carry no body worth reading; a bigger one is refused (413) rather than buffered. */
const MAX_BODY = 64 * 1024;
const HEADERS = 'content-type: %T\r\ncache-control: no-cache, max-age=0\r\nx-content-type-options: nosniff\r\n';

interface Reply {
  status: number;
  body: string;
  type: string;
}

/**
 * The admin API over the proxy's own HTTP/1.1 codec (protocols/http1) on a net.Server: node:http
 * would add ~0.9 MB to an idle proxy for a handful of small GETs. Keep-alive, pipelining (answered
 * in order), HTTP/1.0, HEAD, Expect: 100-continue and request bodies (read and dropped) work as a
 * curl or Prometheus scraper expects; a malformed head gets 400 and a close.
 */
export class AdminServer {
  private server: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();
  address: PeerAddress | null = null;

  constructor(private readonly host: AdminHost) {}

  /** `inheritFd`: the previous process's admin socket (hot restart). */
  async listen(addr: ListenAddress, inheritFd?: number): Promise<PeerAddress> {
    const server = net.createServer((sock) => this.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (inheritFd !== undefined) server.listen({ fd: inheritFd }, resolve);
      else if (addr.kind === 'tcp') server.listen({ host: addr.host, port: addr.port }, resolve);
      else server.listen({ path: addr.path }, resolve);
    });
    if (addr.kind === 'unix' && addr.mode !== undefined) fs.chmodSync(addr.path, addr.mode);
    this.server = server;
    const a = server.address();
    this.address =
      typeof a === 'object' && a
        ? { family: a.family === 'IPv6' ? 'IPv6' : 'IPv4', address: a.address, port: a.port }
        : { family: 'unix', address: addr.kind === 'unix' ? addr.path : '', port: 0 };
    return this.address;
  }

  private serve(sock: net.Socket): void {
    this.conns.add(sock);
    sock.setTimeout(IDLE_MS, () => sock.destroy());
    sock.on('error', () => {}); // 'close' follows
    sock.on('close', () => this.conns.delete(sock));
    let buf: Buffer = Buffer.alloc(0);
    const body = new BodyFramer();
    // The request whose body is being read (and dropped); it runs once its body has ended, so a
    // mutating endpoint acts on a complete request, as one arriving in a single packet would.
    let pending: { method: string; target: string; close: boolean } | null = null;
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let off = 0;
      while (off < buf.length || (pending && body.done)) {
        if (pending) {
          const e = body.feed(buf, off, buf.length);
          if (e === BODY_ERROR || body.payloadBytes > MAX_BODY) return this.fail(sock, e === BODY_ERROR ? 400 : 413);
          off = e;
          if (!body.done) break;
          const p = pending;
          pending = null;
          const r = this.handle(p.method, p.target);
          this.write(sock, r, p.method === 'HEAD', p.close);
          if (p.close) return;
          continue;
        }
        const h = parseRequestHead(buf, off, buf.length);
        if (h === HeadStatus.NEED_MORE) break;
        if (typeof h === 'number') return this.fail(sock, h === HeadStatus.TOO_LARGE ? 431 : 400);
        off += h.headBytes;
        if (h.contentLength > MAX_BODY) return this.fail(sock, 413);
        if (h.expectContinue && h.versionMinor === 1) sock.write('HTTP/1.1 100 Continue\r\n\r\n');
        pending = { method: h.method, target: h.target, close: h.connectionClose || (h.versionMinor === 0 && !h.connectionKeepAlive) };
        body.reset(h.chunked ? BodyMode.CHUNKED : h.contentLength > 0 ? BodyMode.LENGTH : BodyMode.NONE, Math.max(h.contentLength, 0));
      }
      buf = off < buf.length ? buf.subarray(off) : Buffer.alloc(0);
    });
  }

  private write(sock: net.Socket, r: Reply, head: boolean, close: boolean): void {
    const out = encodeLocalResponse(r.status, HEADERS.replace('%T', r.type), r.body, close);
    // HEAD: the head the GET would have (its content-length included), without the body.
    sock.write(head ? out.subarray(0, out.length - Buffer.byteLength(r.body)) : out);
    if (close) sock.end();
  }

  private fail(sock: net.Socket, status: number): void {
    this.write(sock, { status, body: '', type: TEXT }, false, true);
  }

  private handle(method: string, target: string): Reply {
    let url: URL;
    try {
      url = new URL(target, 'http://admin');
    } catch {
      return { status: 400, body: 'bad request target\n', type: TEXT };
    }
    const ep = ENDPOINTS[url.pathname];
    if (!ep) return { status: url.pathname === '/' || url.pathname === '/help' ? 200 : 404, body: helpPage(), type: TEXT };
    if ((ep.mutates === true || (typeof ep.mutates === 'function' && ep.mutates(url.searchParams))) && method !== 'POST') {
      return { status: 405, body: `Method ${method} not allowed, POST required.\n`, type: TEXT };
    }
    try {
      const r = ep.handler(this.host, url.searchParams);
      return { status: r.status ?? 200, body: r.body, type: r.type ?? TEXT };
    } catch (err) {
      log.warn({ path: url.pathname, err: (err as Error).message }, 'admin request failed');
      return { status: 400, body: `${(err as Error).message}\n`, type: TEXT };
    }
  }

  /** The listening socket, for a hot restart; -1 when closed. */
  get fd(): number {
    return (this.server as unknown as { _handle?: { fd?: number } } | null)?._handle?.fd ?? -1;
  }

  close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return Promise.resolve();
    for (const c of this.conns) c.destroy();
    return new Promise((r) => s.close(() => r()));
  }
}
