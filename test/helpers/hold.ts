import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** An HTTP upstream that answers a request only when the test releases it (a real slow backend). */
export interface HoldServer {
  readonly port: number;
  /** Request paths in arrival order. */
  readonly arrivals: string[];
  /** Resolves once `n` requests have arrived in total. */
  arrived(n: number): Promise<void>;
  /** Answers the held request for `path` (200, body `done <path>`). */
  release(path: string): void;
  releaseAll(): void;
  close(): Promise<void>;
}

export async function holdServer(): Promise<HoldServer> {
  const arrivals: string[] = [];
  const held = new Map<string, http.ServerResponse>();
  let waiters: Array<() => void> = [];
  const server = http.createServer((req, res) => {
    const p = req.url ?? '';
    arrivals.push(p);
    held.set(p, res);
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    arrivals,
    async arrived(n) {
      while (arrivals.length < n) await new Promise<void>((r) => waiters.push(r));
    },
    release(p) {
      const res = held.get(p);
      if (!res) throw new Error(`${p} is not held (arrived: ${arrivals.join(' ')})`);
      held.delete(p);
      res.end(`done ${p}`);
    },
    releaseAll() {
      for (const [p, res] of held) {
        held.delete(p);
        res.end(`done ${p}`);
      }
    },
    close: () =>
      new Promise<void>((r) => {
        for (const res of held.values()) res.destroy();
        held.clear();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
