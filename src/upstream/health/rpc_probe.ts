import net from 'node:net';
import { FrameKind, H, type RpcCodec } from '../../protocols/types.js';
import type { Host } from '../host.js';
import { netTarget, Outcome, type Probe } from './probe.js';

/** Heartbeat answers are tiny; anything announcing more is not a heartbeat conversation. */
const MAX_FRAME = 1 << 20;

/**
 * RPC heartbeat check (`strait.health_checkers.rpc_heartbeat`): sends the codec's own heartbeat
 * request (Bolt cmdcode 0, Dubbo event frame) and passes when the heartbeat response with the
 * same id comes back. This is what Bolt and Dubbo clients use to tell a live provider from a
 * dead one, so a provider whose port accepts but whose process is hung fails it. The connection
 * is kept between checks (reuse_connection), as RPC clients keep theirs.
 */
export class RpcHeartbeatProbe implements Probe {
  private sock: net.Socket | null = null;
  private connected = false;
  private done: ((o: Outcome) => void) | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private readonly hdr = new Int32Array(H.SIZE);
  private nextId = 1;
  private waitingId = -1;

  constructor(
    private readonly host: Host,
    private readonly codec: RpcCodec,
    private readonly reuse: boolean,
  ) {}

  start(done: (o: Outcome) => void): void {
    this.done = done;
    if (this.sock && this.connected) {
      this.ping();
      return;
    }
    this.buf = Buffer.alloc(0);
    const s = net.connect(netTarget(this.host));
    this.sock = s;
    this.connected = false;
    s.setNoDelay(true);
    s.on('connect', () => {
      this.connected = true;
      this.ping();
    });
    s.on('data', (d: Buffer) => {
      if (this.sock !== s) return;
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.parse(s);
    });
    s.on('error', () => {});
    s.on('close', () => {
      if (this.sock !== s) return;
      this.sock = null;
      this.finish(Outcome.NETWORK_FAILURE);
    });
  }

  private ping(): void {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0x7fffffff || 1;
    this.waitingId = id;
    const frame = this.codec.heartbeatRequest(0, id);
    // Config refuses codecs without heartbeats; this only guards a codec that changed its mind.
    if (!frame) return this.finish(Outcome.ACTIVE_FAILURE);
    this.sock!.write(frame);
  }

  private parse(s: net.Socket): void {
    const hdr = this.hdr;
    let off = 0;
    while (off < this.buf.length) {
      this.codec.decodeHeader(this.buf, off, this.buf.length, MAX_FRAME, hdr);
      const state = hdr[H.STATE]!;
      if (state === 0) break;
      if (state < 0) {
        // Not the protocol we expected: the provider is not one we can vouch for.
        this.sock = null;
        s.destroy();
        this.finish(Outcome.ACTIVE_FAILURE);
        return;
      }
      const kind = hdr[H.KIND]!;
      if (kind === FrameKind.HEARTBEAT_RESPONSE && hdr[H.ID_LO] === this.waitingId) {
        this.waitingId = -1;
        this.finish(Outcome.HEALTHY);
      } else if (kind === FrameKind.HEARTBEAT) {
        // Dubbo providers ping idle connections too; answer so they keep ours open.
        s.write(this.codec.heartbeatResponse(this.buf, off, hdr));
      }
      off += hdr[H.FRAME_LEN]!;
    }
    this.buf = off >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
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
    this.waitingId = -1;
    this.sock?.destroy();
    this.sock = null;
  }

  close(): void {
    this.abort();
  }
}
