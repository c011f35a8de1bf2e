import http from 'node:http';
import type { Host } from '../host.js';
import { Outcome, type Probe } from './probe.js';

type Ranges = ReadonlyArray<readonly [number, number]>;

export interface HttpProbeSpec {
  readonly host: string;
  readonly path: string;
  readonly method: string;
  readonly expected: Ranges;
  readonly retriable: Ranges;
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

function inRanges(status: number, r: Ranges): boolean {
  for (const [s, e] of r) if (status >= s && status < e) return true;
  return false;
}

/**
 * HTTP/1.1 check. Health checks are control-path traffic (one request per host per interval),
 * so node:http is fine here; with reuse_connection one kept-alive socket per host is reused.
 * `Host` is http_health_check.host, else the cluster name (Envoy's default).
 */
export class HttpProbe implements Probe {
  private readonly agent: http.Agent | false;
  private req: http.ClientRequest | null = null;
  private readonly headers: Record<string, string>;

  constructor(
    private readonly host: Host,
    private readonly spec: HttpProbeSpec,
    clusterName: string,
    reuse: boolean,
  ) {
    this.agent = reuse ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
    this.headers = { host: spec.host || clusterName, 'user-agent': 'Envoy/HC' };
    for (const [k, v] of spec.headers) this.headers[k] = v;
    if (!reuse) this.headers.connection = 'close';
  }

  start(done: (o: Outcome) => void): void {
    const a = this.host.address;
    const target = a.family === 'unix' ? { socketPath: a.address } : { host: a.address, port: a.port };
    let settled = false;
    const finish = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      this.req = null;
      done(o);
    };
    const req = http.request({ ...target, method: this.spec.method, path: this.spec.path, headers: this.headers, agent: this.agent }, (res) => {
      const status = res.statusCode ?? 0;
      const degraded = res.headers['x-envoy-degraded'] !== undefined;
      // Read the body so the connection can carry the next check.
      res.resume();
      res.on('end', () => {
        if (inRanges(status, this.spec.expected)) finish(degraded ? Outcome.DEGRADED : Outcome.HEALTHY);
        else finish(inRanges(status, this.spec.retriable) ? Outcome.RETRIABLE_FAILURE : Outcome.ACTIVE_FAILURE);
      });
      res.on('error', () => finish(Outcome.NETWORK_FAILURE));
    });
    req.on('error', () => finish(Outcome.NETWORK_FAILURE));
    req.end();
    this.req = req;
  }

  abort(): void {
    const r = this.req;
    this.req = null;
    // Destroying the request also drops its socket, so a hung host gets a fresh connection next time.
    r?.destroy();
  }

  close(): void {
    this.abort();
    if (this.agent) this.agent.destroy();
  }
}
