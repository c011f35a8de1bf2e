import type * as Grpc from '@grpc/grpc-js';
import type { Host } from '../host.js';
import { Outcome, type Probe } from './probe.js';

/** `grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING`. */
const SERVING = 1;
const CHECK = '/grpc.health.v1.Health/Check';

/** HealthCheckRequest { string service = 1; } — two fields of wire format, written by hand. */
export function encodeHealthRequest(service: string): Buffer {
  const s = Buffer.from(service, 'utf8');
  if (s.length === 0) return Buffer.alloc(0);
  if (s.length > 127) throw new Error('gRPC health service name too long');
  return Buffer.concat([Buffer.from([0x0a, s.length]), s]);
}

/** HealthCheckResponse { ServingStatus status = 1; } → the status (0 = UNKNOWN when absent). */
export function decodeHealthStatus(b: Buffer): number {
  let i = 0;
  while (i < b.length) {
    const tag = b[i++]!;
    if (tag === 0x08) {
      let v = 0;
      let shift = 0;
      while (i < b.length) {
        const byte = b[i++]!;
        v |= (byte & 0x7f) << shift;
        if ((byte & 0x80) === 0) return v;
        shift += 7;
      }
      return 0;
    }
    return 0; // no other field is defined; anything else is not a status
  }
  return 0;
}

/**
 * gRPC health check (grpc.health.v1.Health/Check) through @grpc/grpc-js, loaded only when a
 * cluster asks for it. A network failure drops the channel: grpc-js would otherwise retry
 * with its own growing backoff and the check would notice a recovered host late.
 */
export class GrpcProbe implements Probe {
  private client: Grpc.Client | null = null;
  private call: Grpc.ClientUnaryCall | null = null;
  private readonly request: Buffer;

  constructor(
    private readonly grpc: typeof Grpc,
    private readonly host: Host,
    serviceName: string,
    private readonly authority: string,
    private readonly metadata: ReadonlyArray<readonly [string, string]>,
    private readonly timeoutMs: number,
  ) {
    this.request = encodeHealthRequest(serviceName);
  }

  private target(): string {
    const a = this.host.address;
    if (a.family === 'unix') return `unix:${a.address}`;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  start(done: (o: Outcome) => void): void {
    const g = this.grpc;
    this.client ??= new g.Client(this.target(), g.credentials.createInsecure(), this.authority ? { 'grpc.default_authority': this.authority } : {});
    const md = new g.Metadata();
    for (const [k, v] of this.metadata) md.add(k, v);
    this.call = this.client.makeUnaryRequest<Buffer, number>(
      CHECK,
      (b) => b,
      decodeHealthStatus,
      this.request,
      md,
      { deadline: Date.now() + this.timeoutMs },
      (err, status) => {
        this.call = null;
        if (!err) {
          done(status === SERVING ? Outcome.HEALTHY : Outcome.ACTIVE_FAILURE);
          return;
        }
        // UNIMPLEMENTED / NOT_FOUND etc. are answers from the host; transport trouble is not.
        const transport = err.code === g.status.UNAVAILABLE || err.code === g.status.DEADLINE_EXCEEDED || err.code === g.status.CANCELLED;
        if (transport) this.dropChannel();
        done(transport ? Outcome.NETWORK_FAILURE : Outcome.ACTIVE_FAILURE);
      },
    );
  }

  private dropChannel(): void {
    this.client?.close();
    this.client = null;
  }

  abort(): void {
    const c = this.call;
    this.call = null;
    c?.cancel();
    this.dropChannel();
  }

  close(): void {
    this.abort();
  }
}
