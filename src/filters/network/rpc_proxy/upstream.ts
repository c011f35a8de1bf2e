import net from 'node:net';
import { log } from '../../../log.js';
import { openUpstreamSocket } from '../../../tls/upstream.js';
import { FrameKind, H, type RpcCodec } from '../../../protocols/types.js';
import type { Cluster, ClusterConnPools } from '../../../upstream/cluster.js';
import type { Host } from '../../../upstream/host.js';
import { OutlierResult } from '../../../upstream/outlier/monitor.js';
import { Framer } from './framer.js';
import { corkedWrite, directWrites, flushNow, inReadBatch, unsentBytes } from './write_batch.js';
import { http1BatchReader } from '../../../protocols/http1/batch_reader.js';

/** One call waiting for its response on an upstream connection. */
export interface PendingCall {
  /** The response frame; the id is still the upstream one. */
  onResponse(buf: Buffer, off: number, hdr: Int32Array): void;
  /** The connection failed before the response came: `connect` if it never connected. */
  onFail(reason: 'connect' | 'reset'): void;
}

/** Slots of a new connection's call table; it doubles while more than half are taken. */
const INITIAL_SLOTS = 64;

const nextIdAfter = (id: number): number => (id === 0x7fffffff ? 1 : id + 1);

/**
 * A multiplexed upstream connection: every downstream connection's calls to this host share
 * it. The proxy owns the request-id space here — clients number their calls from 1 per
 * process, so their ids collide — and maps each response back through the call table.
 */
export class RpcUpstreamConn {
  private readonly socket: net.Socket;
  private readonly framer: Framer;
  // Calls in flight by id: slot id & mask, never probed (send skips ids whose slot is taken).
  // Not a Map: with ids always new, V8 keeps rebuilding a Map's table, and each old table (linked
  // to its successor, stale entries kept) that reached old space kept every later call alive
  // through young-generation GCs: ~40 % of them survived, scavenges took ~10 ms, and those
  // pauses were the RPC p99 (perf-reports/2026-12-03-rpc-tail.md).
  private slots: (PendingCall | null)[] = new Array<PendingCall | null>(INITIAL_SLOTS).fill(null);
  private slotIds = new Int32Array(INITIAL_SLOTS);
  private mask = INITIAL_SLOTS - 1;
  private pendingCount = 0;
  private nextId = 1;
  private connected = false;
  closed = false;
  // Keep-alive: any frame either way marks the connection busy; an idle one gets a heartbeat,
  // and a heartbeat still unanswered when the next is due means the peer is gone.
  private busy = false;
  private heartbeatOut = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** Out of its pool (host removed, cluster retired): closes once no call is pending. */
  private draining = false;

  constructor(
    readonly host: Host,
    private readonly codec: RpcCodec,
    readonly cluster: Cluster,
    maxFrame: number,
    heartbeatMs: number,
    private readonly onClosed: (conn: RpcUpstreamConn) => void,
    private readonly onUnmatched: (kind: number) => void,
    directIo = false,
  ) {
    const a = host.address;
    // Plain TCP, or TLS when the cluster has a transport_socket: `ready` runs after the handshake.
    this.socket = openUpstreamSocket(cluster, a, () => ready());
    // Plain TCP with the native engine: the addon's batch reader reads it from the connect on
    // (paused until then, so Node never starts its own reads), and responses are decoded in
    // place from the reader's arena. TLS bytes exist only in Node's TLS stack: a stream.
    const reader = directIo && !cluster.tls ? http1BatchReader() : null;
    if (reader) this.socket.pause();
    cluster.stats.upstream_cx_total.value++;
    host.counters.cx_total++;
    const timeout = cluster.spec.connectTimeoutMs;
    if (timeout > 0) {
      this.socket.setTimeout(timeout, () => {
        if (this.connected) return;
        cluster.stats.upstream_cx_connect_timeout.value++;
        this.socket.destroy(new Error('connect timeout'));
      });
    }
    const ready = () => {
      this.connected = true;
      this.socket.setTimeout(0);
      if (reader && !reader.attach(this.socket, (d) => this.framer.push(d), (b, o, e) => this.onRead(b, o, e))) {
        // dup/poll failed (EMFILE...): this connection reads through the stream after all.
        this.socket.on('data', (d: Buffer) => this.framer.push(d));
        this.socket.resume();
      }
      if (directIo) directWrites(this.socket);
      cluster.stats.upstream_cx_active.value++;
      host.counters.cx_active++;
      host.outlier.putResult(OutlierResult.CONNECT_SUCCESS);
      // Drained while connecting with nothing to carry: close now (a one-way send already ended it).
      if (this.draining && this.pendingCount === 0 && !this.socket.writableEnded) return this.closeDrained();
      if (heartbeatMs > 0) {
        this.heartbeatTimer = setInterval(() => this.keepAlive(), heartbeatMs);
        this.heartbeatTimer.unref();
      }
    };
    this.framer = new Framer(codec, maxFrame, (buf, off, hdr) => this.onFrame(buf, off, hdr), (code) => {
      log.warn({ host: host.label, code }, 'malformed frame from upstream; closing the connection');
      this.socket.destroy();
    });
    if (!reader) this.socket.on('data', (d: Buffer) => this.framer.push(d));
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      if (this.connected) {
        cluster.stats.upstream_cx_active.value--;
        cluster.stats.upstream_cx_destroy.value++;
        host.counters.cx_active--;
      } else {
        cluster.stats.upstream_cx_connect_fail.value++;
        host.counters.cx_connect_fail++;
        host.outlier.putResult(OutlierResult.CONNECT_FAILED);
      }
      const calls: PendingCall[] = [];
      for (let i = 0; i < this.slots.length; i++) {
        const c = this.slots[i];
        if (c) calls.push(c);
        this.slots[i] = null;
      }
      this.pendingCount = 0;
      this.onClosed(this);
      for (const c of calls) c.onFail(this.connected ? 'reset' : 'connect');
    });
  }

  /**
   * A read of the batch reader: frames are decoded from its arena, valid during this call only.
   * Responses are written back as views of it; the write batch sends them when the read batch
   * ends (inReadBatch) and copies what cannot leave at once.
   */
  private onRead(buf: Buffer, off: number, end: number): void {
    inReadBatch(buf);
    this.framer.pushAt(buf, off, end, false);
  }

  /** Bytes written but not yet sent. */
  get buffered(): number {
    return unsentBytes(this.socket);
  }

  get sink(): net.Socket {
    return this.socket;
  }

  get inFlight(): number {
    return this.pendingCount;
  }

  /** Whether new calls may be sent here: open and not draining (what the pool hands out). */
  get takesCalls(): boolean {
    return !this.closed && !this.draining;
  }

  /** Sends a request frame, rewriting its id to one this connection owns; returns that id. */
  send(buf: Buffer, off: number, len: number, call: PendingCall | null): number {
    if (this.pendingCount * 2 >= this.slots.length) this.growSlots();
    // Bolt ids are u32, Dubbo's int64: stay in the positive int32 range, wrapping. An id whose
    // slot still holds a slow call is skipped, so no two calls in flight share an id or a slot
    // (one-way calls too: a provider answering one anyway must not hit another call).
    let id = this.nextId;
    while (this.slots[id & this.mask] !== null) id = nextIdAfter(id);
    this.nextId = nextIdAfter(id);
    this.codec.writeRequestId(buf, off, 0, id);
    if (call) {
      const i = id & this.mask;
      this.slots[i] = call;
      this.slotIds[i] = id;
      this.pendingCount++;
    }
    this.busy = true;
    corkedWrite(this.socket, buf, off, len);
    // A one-way send on a draining connection: close once the bytes are out.
    if (this.draining && this.pendingCount === 0) {
      flushNow(this.socket);
      this.socket.end();
    }
    return id;
  }

  /** The call waiting for `id`, taken out of the table; null when none is (late or unknown). */
  private take(id: number): PendingCall | null {
    const i = id & this.mask;
    const c = this.slots[i];
    if (!c || this.slotIds[i] !== id) return null;
    this.slots[i] = null;
    this.pendingCount--;
    return c;
  }

  /** Doubles the table; ids distinct modulo the old size stay distinct modulo the new one. */
  private growSlots(): void {
    const n = this.slots.length * 2;
    const slots = new Array<PendingCall | null>(n).fill(null);
    const ids = new Int32Array(n);
    for (let i = 0; i < this.slots.length; i++) {
      const c = this.slots[i];
      if (!c) continue;
      const id = this.slotIds[i]!;
      slots[id & (n - 1)] = c;
      ids[id & (n - 1)] = id;
    }
    this.slots = slots;
    this.slotIds = ids;
    this.mask = n - 1;
  }

  /** Forgets a call (timed out, or its client went away); a late response is then dropped. */
  forget(id: number): void {
    if (this.take(id) && this.draining && this.pendingCount === 0) this.closeDrained();
  }

  /**
   * Envoy's drain for a multiplexed connection: no new call is sent here (the pool no longer
   * hands it out) and it closes when the last pending call has its response.
   */
  drain(): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    if (this.pendingCount === 0 && this.connected) this.closeDrained();
  }

  /** Marks a connection opened for a retired host: it carries its calls, then closes. */
  markDraining(): void {
    this.draining = true;
  }

  private closeDrained(): void {
    if (this.closed || this.socket.writableEnded) return;
    this.cluster.stats.upstream_cx_destroy_local.value++;
    // Bytes still queued (a one-way call): let them out before the FIN.
    if (unsentBytes(this.socket) > 0) {
      flushNow(this.socket);
      this.socket.end();
    } else this.socket.destroy();
  }

  private keepAlive(): void {
    if (this.heartbeatOut) {
      log.warn({ host: this.host.label }, 'upstream heartbeat unanswered; closing the connection');
      this.socket.destroy();
      return;
    }
    if (this.busy || this.pendingCount) {
      this.busy = false;
      return;
    }
    // Id 0 is never given to a call (ids start at 1), so the ack cannot be mistaken for a response.
    const hb = this.codec.heartbeatRequest(0, 0);
    if (!hb) return; // the protocol has no heartbeat (Thrift)
    this.heartbeatOut = true;
    corkedWrite(this.socket, hb);
  }

  private onFrame(buf: Buffer, off: number, hdr: Int32Array): void {
    const kind = hdr[H.KIND]!;
    this.busy = true;
    if (kind === FrameKind.HEARTBEAT_RESPONSE) {
      this.heartbeatOut = false;
      return;
    }
    if (kind === FrameKind.RESPONSE) {
      const call = this.take(hdr[H.ID_LO]!);
      if (call) {
        call.onResponse(buf, off, hdr);
        if (this.draining && this.pendingCount === 0) this.closeDrained();
      } else this.onUnmatched(kind);
      return;
    }
    if (kind === FrameKind.HEARTBEAT) {
      // Providers probe idle connections (Dubbo sends unsolicited heartbeats): answer them.
      corkedWrite(this.socket, this.codec.heartbeatResponse(buf, off, hdr));
      this.onUnmatched(kind);
      return;
    }
    // Heartbeat responses and events that match nothing are tolerated, and counted.
    this.onUnmatched(kind);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Upstream connections per host, one multiplexed connection each, shared by a filter's sessions. */
export class RpcConnPool implements ClusterConnPools {
  private readonly conns = new Map<Host, RpcUpstreamConn>();
  /** Clusters this pool asked to be told about host removal and retirement (left when they retire). */
  private readonly watched = new Set<Cluster>();
  /** Retired with its filter: any connection still asked for serves its call, then closes. */
  private retired = false;

  constructor(
    private readonly codec: RpcCodec,
    private readonly maxFrame: number,
    private readonly heartbeatMs: number,
    private readonly onUnmatched: (kind: number) => void,
    /** Native engine: upstream sockets read by the batch reader, written with direct sends. */
    private readonly directIo = false,
  ) {}

  get(cluster: Cluster, host: Host): RpcUpstreamConn {
    let c = this.conns.get(host);
    if (!c || c.closed) {
      c = new RpcUpstreamConn(host, this.codec, cluster, this.maxFrame, this.heartbeatMs, (dead) => {
        if (this.conns.get(host) === dead) this.conns.delete(host);
      }, this.onUnmatched, this.directIo);
      if (this.retired || cluster.isRetired(host)) {
        // Picked just before the host left (or through a retired cluster): serve, never pool.
        c.markDraining();
        return c;
      }
      if (!this.watched.has(cluster)) {
        this.watched.add(cluster);
        cluster.addConnPools(this);
      }
      this.conns.set(host, c);
    }
    return c;
  }

  drainHosts(cluster: Cluster, hosts: readonly Host[] | null): void {
    if (hosts !== null) {
      for (const h of hosts) {
        const c = this.conns.get(h);
        if (!c) continue;
        this.conns.delete(h);
        c.drain();
      }
      return;
    }
    this.watched.delete(cluster);
    for (const [h, c] of this.conns) {
      if (c.cluster !== cluster) continue;
      this.conns.delete(h);
      c.drain();
    }
  }

  /**
   * The filter owning this pool is gone (its listener removed or drained, or its chain
   * replaced): idle connections close now, busy ones after their last call, as a cluster drain
   * does, and the clusters stop telling this pool about their hosts.
   */
  retire(): void {
    this.retired = true;
    for (const c of this.conns.values()) c.drain();
    this.conns.clear();
    for (const cl of this.watched) cl.removeConnPools(this);
    this.watched.clear();
  }
}
