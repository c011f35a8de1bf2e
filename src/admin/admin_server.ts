import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress, PeerAddress } from '../io/engine.js';
import { log } from '../log.js';

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

export class AdminServer {
  private server: http.Server | null = null;
  address: PeerAddress | null = null;

  constructor(private readonly host: AdminHost) {}

  /** `inheritFd`: the previous process's admin socket (hot restart). */
  async listen(addr: ListenAddress, inheritFd?: number): Promise<PeerAddress> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 5000;
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
        ? { family: (a as AddressInfo).family === 'IPv6' ? 'IPv6' : 'IPv4', address: a.address, port: a.port }
        : { family: 'unix', address: addr.kind === 'unix' ? addr.path : '', port: 0 };
    return this.address;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://admin');
    const ep = ENDPOINTS[url.pathname];
    const send = (status: number, body: string, type = TEXT) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-cache, max-age=0', 'x-content-type-options': 'nosniff' });
      res.end(body);
    };
    if (!ep) {
      send(url.pathname === '/' || url.pathname === '/help' ? 200 : 404, helpPage());
      return;
    }
    if ((ep.mutates === true || (typeof ep.mutates === 'function' && ep.mutates(url.searchParams))) && req.method !== 'POST') {
      send(405, `Method ${req.method} not allowed, POST required.\n`);
      return;
    }
    try {
      const r = ep.handler(this.host, url.searchParams);
      send(r.status ?? 200, r.body, r.type);
    } catch (err) {
      log.warn({ path: url.pathname, err: (err as Error).message }, 'admin request failed');
      send(400, `${(err as Error).message}\n`);
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
    s.closeAllConnections();
    return new Promise((r) => s.close(() => r()));
  }
}
