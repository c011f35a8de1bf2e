import net from 'node:net';
import type { Host } from '../host.js';

/** What one check found. */
export const Outcome = {
  HEALTHY: 0,
  /** Passed, but the host asks to be used only as a last resort (`x-envoy-degraded`). */
  DEGRADED: 1,
  /** The host answered "unhealthy": marks it unhealthy at once. */
  ACTIVE_FAILURE: 2,
  /** Could not talk to the host (refused, reset, closed): counts towards unhealthy_threshold. */
  NETWORK_FAILURE: 3,
  /** An answer listed in retriable_statuses: a failure that counts towards the threshold. */
  RETRIABLE_FAILURE: 4,
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/** One host's checker connection(s). The session owns timing; a probe only talks. */
export interface Probe {
  /** Starts one check; `done` is called once, unless abort() comes first. */
  start(done: (outcome: Outcome) => void): void;
  /** The check timed out: drop it and whatever connection it used. */
  abort(): void;
  /** The host left the cluster or the cluster closed. */
  close(): void;
}

/** Where to connect for a host, as node:net takes it. */
export function netTarget(host: Host): net.NetConnectOpts {
  const a = host.address;
  return a.family === 'unix' ? { path: a.address } : { host: a.address, port: a.port };
}

/**
 * Finds each expected payload in order in what was received (Envoy's TCP check matches the
 * same way), so a reply split across reads or carrying extra bytes still passes.
 */
export function containsInOrder(buf: Buffer, parts: readonly Buffer[]): boolean {
  let at = 0;
  for (const p of parts) {
    const i = buf.indexOf(p, at);
    if (i < 0) return false;
    at = i + p.length;
  }
  return true;
}

/**
 * TCP check: connect, optionally send a payload and wait for the expected bytes. With
 * reuse_connection the connection stays open between checks; a check on an open connection
 * without a payload passes (the peer has not hung up).
 */
export class TcpProbe implements Probe {
  private sock: net.Socket | null = null;
  private connected = false;
  private done: ((o: Outcome) => void) | null = null;
  private received: Buffer = Buffer.alloc(0);

  constructor(
    private readonly host: Host,
    private readonly send: Buffer | null,
    private readonly receive: readonly Buffer[],
    private readonly reuse: boolean,
  ) {}

  start(done: (o: Outcome) => void): void {
    this.done = done;
    this.received = Buffer.alloc(0);
    if (this.sock && this.connected) {
      this.exchange();
      return;
    }
    const s = net.connect(netTarget(this.host));
    this.sock = s;
    this.connected = false;
    s.setNoDelay(true);
    s.on('connect', () => {
      this.connected = true;
      this.exchange();
    });
    s.on('data', (d: Buffer) => {
      if (this.sock !== s || !this.done || this.receive.length === 0) return;
      this.received = Buffer.concat([this.received, d]);
      if (containsInOrder(this.received, this.receive)) this.finish(Outcome.HEALTHY);
    });
    s.on('error', () => {});
    s.on('close', () => {
      // A socket this probe already let go of (finished or aborted) reports nothing.
      if (this.sock !== s) return;
      this.sock = null;
      this.finish(Outcome.NETWORK_FAILURE);
    });
  }

  private exchange(): void {
    if (this.send) this.sock!.write(this.send);
    if (this.receive.length === 0) this.finish(Outcome.HEALTHY);
  }

  private finish(o: Outcome): void {
    const d = this.done;
    if (!d) return;
    this.done = null;
    if (!this.reuse && this.sock) {
      const s = this.sock;
      this.sock = null;
      s.destroy();
    }
    d(o);
  }

  abort(): void {
    this.done = null;
    this.sock?.destroy();
    this.sock = null;
  }

  close(): void {
    this.abort();
  }
}
