import http from 'node:http';
import net from 'node:net';
import { closeServer } from './net.js';

/**
 * A TCP upstream that writes its tag and closes, and can be stopped and started again on the
 * same port: an upstream process dying and coming back.
 */
export class RestartableTag {
  private server: net.Server | null = null;
  private readonly open = new Set<net.Socket>();
  port = 0;

  constructor(readonly tag: string) {}

  async start(): Promise<this> {
    const server = net.createServer((s) => {
      this.open.add(s);
      s.on('close', () => this.open.delete(s));
      s.on('error', () => {});
      s.end(this.tag);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    // A dying process takes its connections with it.
    for (const c of this.open) c.destroy();
    if (s) await closeServer(s);
  }
}

/** An HTTP upstream whose /healthz answer the test controls; records the Host headers it saw. */
export async function healthzServer(tag: string): Promise<{
  port: number;
  status: number;
  degraded: boolean;
  hosts: string[];
  checks: number;
  /** Answers /healthz this much later (a slow host). */
  delayMs: number;
  close(): Promise<void>;
}> {
  const state = { status: 200, degraded: false, hosts: [] as string[], checks: 0, delayMs: 0 };
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      state.checks++;
      state.hosts.push(String(req.headers.host));
      const answer = () => {
        res.writeHead(state.status, state.degraded ? { 'x-envoy-degraded': '1' } : {});
        res.end();
      };
      if (state.delayMs > 0) setTimeout(answer, state.delayMs).unref();
      else answer();
      return;
    }
    res.end(tag);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return Object.assign(state, {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
}
