/**
 * Hot restart: a new Strait process takes over from the running one without losing a request.
 *
 * Every process listens on a unix SOCK_SEQPACKET channel named by `--base-id` and its own
 * `--restart-epoch`. A process started with epoch N+1 connects to epoch N's channel and:
 *   1. hello      → the parent answers with its listeners, the listening fds attached
 *                   (SCM_RIGHTS): the child serves the same sockets, nothing is re-bound;
 *   2. ready      → the child is serving: the parent stops accepting (unix paths are kept),
 *                   hands over every connection that is between requests (RPC today) with
 *                   the bytes it read but did not use, sends counter deltas so /stats never
 *                   resets, and exits when its last connection is gone or at
 *                   --parent-shutdown-time-s. Raw TCP connections finish in the parent.
 * A child that dies before `ready` leaves the parent serving untouched. A process refuses a
 * second upgrade while one is under way (it is still handing over, or still taking over).
 *
 * This is control path: both ends poll the channel on a timer instead of holding a libuv
 * handle, which keeps the native side to six synchronous calls.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PeerAddress } from '../io/engine.js';
import type { ActiveListener } from '../listener/listener.js';
import { log } from '../log.js';
import { native, type NativeAcceptor } from '../native.js';
import type { Stat, StatsStore } from '../observability/stats.js';

export function channelPath(baseId: number, epoch: number, dir = os.tmpdir()): string {
  return path.join(dir, `strait-hot-restart-${baseId}-${epoch}.sock`);
}

type Message =
  | { type: 'hello'; epoch: number; pid: number }
  | { type: 'refused'; reason: string }
  | { type: 'listeners'; listeners: Array<{ name: string }> }
  | { type: 'ready' }
  | { type: 'stats'; counters: CounterDelta[] }
  | { type: 'connection'; listener: string; remote: PeerAddress; local: PeerAddress; unread: string };

function send(fd: number, m: Message, fds: number[] = []): void {
  native().upgrade.send(fd, Buffer.from(JSON.stringify(m)), fds);
}

function recv(fd: number, timeoutMs: number): { m: Message; fds: number[] } | 'eof' | null {
  const r = native().upgrade.recv(fd, timeoutMs);
  if (r === null) return null;
  if ('eof' in r) return 'eof';
  return { m: JSON.parse(r.data.toString('utf8')) as Message, fds: r.fds };
}

/** What the hot restart needs from the running server. */
export interface UpgradeHost {
  readonly stats: StatsStore;
  /** Every listening socket to hand over, the admin one included, by name. */
  listeningSockets(): Array<{ name: string; fd: number }>;
  listeners(): readonly ActiveListener[];
  listener(name: string): ActiveListener | undefined;
  adopt(fd: number, remote: PeerAddress, local: PeerAddress): import('../io/engine.js').Downstream;
  /** Stop accepting (keeping unix paths) and report DRAINING. */
  stopAccepting(): void;
  /** Number of connections still open here. */
  openConnections(): number;
  exit(): void;
}

const POLL_MS = 50;
const STATS_EVERY_MS = 500;
/**
 * A stats delta goes in messages of at most this many bytes: a message must fit the socket's send
 * buffer whole, which without CAP_NET_ADMIN stops at net.core.wmem_max (208 KiB by default).
 */
export const STATS_MESSAGE_BYTES = 64 * 1024;

type CounterDelta = { name: string; promName: string; promLabels: string; delta: number };

/** Splits counter deltas into 'stats' messages of at most `maxBytes` of JSON each. */
export function statsMessages(counters: CounterDelta[], maxBytes = STATS_MESSAGE_BYTES): Message[] {
  const out: Message[] = [];
  // '{"type":"stats","counters":[]}' plus a comma per entry.
  const frame = 30;
  let batch: CounterDelta[] = [];
  let size = frame;
  for (const c of counters) {
    const n = Buffer.byteLength(JSON.stringify(c)) + 1;
    if (batch.length && size + n > maxBytes) {
      out.push({ type: 'stats', counters: batch });
      batch = [];
      size = frame;
    }
    batch.push(c);
    size += n;
  }
  if (batch.length) out.push({ type: 'stats', counters: batch });
  return out;
}

/** The serving side: answers the next epoch's process and hands everything over to it. */
export class HotRestartParent {
  private lfd = -1;
  private acceptor: NativeAcceptor | null = null;
  private child = -1;
  private timer: NodeJS.Timeout | null = null;
  private handingOver = false;
  private lastSent = new Map<string, number>();
  private lastStatsAt = 0;
  private shutdownAt = 0;
  /** Set while this process is itself still taking over from its parent. */
  busyReason: string | null = null;

  constructor(
    private readonly host: UpgradeHost,
    private readonly baseId: number,
    private readonly epoch: number,
    private readonly parentShutdownMs: number,
  ) {}

  get path(): string {
    return channelPath(this.baseId, this.epoch);
  }

  start(): void {
    const b = native();
    // A live process answering on this path owns this base id and epoch: never steal it.
    const probe = b.upgrade.connect(this.path);
    if (probe >= 0) {
      b.closeFd(probe);
      throw new Error(`another Strait process serves hot-restart channel ${this.path}; use a different --base-id`);
    }
    this.lfd = b.upgrade.listen(this.path);
    // The loop watches the channel, so an idle proxy does not wake to poll it; the timer runs only
    // while a newer epoch is connected (its messages, then the handover, are paced by it).
    this.acceptor = new b.Acceptor(
      this.lfd,
      (fd) => this.onAccepted(fd),
      (code) => log.warn({ code }, 'hot restart: accepting on the channel failed; retrying'),
    );
  }

  close(): void {
    this.stopPolling();
    const b = native();
    if (this.child >= 0) b.closeFd(this.child);
    if (this.lfd >= 0) {
      // The acceptor owns the listening fd and closes it.
      this.acceptor?.close();
      this.acceptor = null;
      fs.rmSync(this.path, { force: true });
    }
    this.child = this.lfd = -1;
  }

  private startPolling(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  private stopPolling(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private poll(): void {
    try {
      if (this.child >= 0) this.readChild();
      if (this.handingOver) this.handOver();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'hot restart: channel error');
      this.dropChild();
    }
    if (this.child < 0 && !this.handingOver) this.stopPolling();
  }

  private onAccepted(fd: number): void {
    try {
      this.acceptNew(fd);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'hot restart: channel error');
      this.dropChild();
    }
    if (this.child >= 0) {
      this.startPolling();
      // Its hello may already be here: read it now rather than a timer tick later.
      this.poll();
    }
  }

  private acceptNew(fd: number): void {
    const b = native();
    const busy = this.child >= 0 || this.handingOver ? `epoch ${this.epoch} is already handing over to a newer process` : this.busyReason;
    if (!busy) {
      this.child = fd;
      return;
    }
    // Say why before hanging up: the new process reports it and exits. Read its hello first:
    // closing a unix socket with unread data resets it, losing our answer.
    try {
      const hello = recv(fd, 1000);
      if (hello && hello !== 'eof') for (const f of hello.fds) b.closeFd(f);
      send(fd, { type: 'refused', reason: `upgrade refused: ${busy}` });
    } finally {
      b.closeFd(fd);
    }
  }

  private readChild(): void {
    // A message can end the channel (onReady hands over and, with nothing left to move, closes).
    while (this.child >= 0) {
      const r = recv(this.child, 0);
      if (r === null) return;
      if (r === 'eof') {
        if (!this.handingOver && this.helloSeen) log.warn({ epoch: this.epoch }, 'hot restart: the new process went away before taking over; still serving');
        this.dropChild();
        return;
      }
      for (const fd of r.fds) native().closeFd(fd);
      if (r.m.type === 'hello') this.onHello(r.m);
      else if (r.m.type === 'ready') this.onReady();
    }
  }

  private dropChild(): void {
    if (this.child >= 0) native().closeFd(this.child);
    this.child = -1;
    this.helloSeen = false;
    if (this.handingOver) this.host.exit();
  }

  private helloSeen = false;

  private onHello(m: { epoch: number; pid: number }): void {
    this.helloSeen = true;
    const b = native();
    const ls = this.host.listeningSockets();
    // Duplicates: this process keeps accepting on its own fds until the child is ready.
    const fds = ls.map((l) => b.upgrade.dup(l.fd));
    try {
      send(this.child, { type: 'listeners', listeners: ls.map((l) => ({ name: l.name })) }, fds);
    } finally {
      for (const fd of fds) b.closeFd(fd);
    }
    log.info({ epoch: this.epoch, child_epoch: m.epoch, child_pid: m.pid, listeners: ls.length }, 'hot restart: listeners handed over');
  }

  private onReady(): void {
    this.handingOver = true;
    this.host.stopAccepting();
    this.shutdownAt = Date.now() + this.parentShutdownMs;
    log.info({ epoch: this.epoch }, 'hot restart: the new process is serving; handing over connections');
    this.handOver();
  }

  private handOver(): void {
    const b = native();
    for (const l of this.host.listeners()) {
      for (const c of l.detachIdle()) {
        try {
          send(this.child, { type: 'connection', listener: l.spec.name, remote: c.remote, local: c.local, unread: c.handover.unread.toString('base64') }, [c.handover.fd]);
        } finally {
          b.closeFd(c.handover.fd);
        }
      }
    }
    const now = Date.now();
    const last = this.host.openConnections() === 0 || now >= this.shutdownAt;
    if (last || now - this.lastStatsAt >= STATS_EVERY_MS) this.sendStats();
    if (last) {
      log.info({ epoch: this.epoch, open: this.host.openConnections() }, 'hot restart: handover done; exiting');
      this.close();
      this.host.exit();
    }
  }

  /** Counter deltas since the last send, so the child's totals continue ours. */
  private sendStats(): void {
    this.lastStatsAt = Date.now();
    const counters: CounterDelta[] = [];
    for (const s of this.host.stats.all()) {
      if (s.kind !== 'counter') continue;
      const delta = s.value - (this.lastSent.get(s.name) ?? 0);
      if (delta === 0) continue;
      this.lastSent.set(s.name, s.value);
      counters.push({ name: s.name, promName: s.promName, promLabels: s.promLabels, delta });
    }
    for (const m of statsMessages(counters)) send(this.child, m);
  }
}

/** The new process's side: connects to the previous epoch and takes its listeners. */
export class HotRestartChild {
  private timer: NodeJS.Timeout | null = null;
  adopted = 0;

  private constructor(
    private readonly fd: number,
    readonly inherited: ReadonlyMap<string, number>,
    private readonly parentEpoch: number,
  ) {}

  /**
   * Connects to epoch `epoch - 1`. Null when nothing runs there (a fresh start); throws with
   * the parent's reason when it refuses (an upgrade already under way).
   */
  static connect(baseId: number, epoch: number): HotRestartChild | null {
    const b = native();
    const parentEpoch = epoch - 1;
    const fd = b.upgrade.connect(channelPath(baseId, parentEpoch));
    if (fd < 0) return null;
    send(fd, { type: 'hello', epoch, pid: process.pid });
    const r = recv(fd, 10_000);
    if (r === null || r === 'eof') {
      b.closeFd(fd);
      throw new Error(`hot restart: epoch ${parentEpoch} did not answer`);
    }
    if (r.m.type === 'refused') {
      b.closeFd(fd);
      throw new Error(r.m.reason);
    }
    if (r.m.type !== 'listeners') throw new Error(`hot restart: unexpected ${r.m.type} from epoch ${parentEpoch}`);
    const inherited = new Map<string, number>();
    r.m.listeners.forEach((l, i) => inherited.set(l.name, r.fds[i]!));
    return new HotRestartChild(fd, inherited, parentEpoch);
  }

  /** Closes inherited fds no listener took (the new config dropped those listeners). */
  closeUnused(used: ReadonlySet<string>): void {
    for (const [name, fd] of this.inherited) if (!used.has(name)) native().closeFd(fd);
  }

  /** Tells the parent we serve, then takes its connections and counters until it exits. */
  ready(host: UpgradeHost, onDone: () => void): void {
    send(this.fd, { type: 'ready' });
    this.timer = setInterval(() => {
      try {
        for (;;) {
          const r = recv(this.fd, 0);
          if (r === null) return;
          if (r === 'eof') {
            log.info({ parent_epoch: this.parentEpoch, adopted: this.adopted }, 'hot restart: previous process has exited');
            this.stop();
            onDone();
            return;
          }
          this.onMessage(host, r.m, r.fds);
        }
      } catch (err) {
        log.error({ err: (err as Error).message }, 'hot restart: channel error');
        this.stop();
        onDone();
      }
    }, POLL_MS / 2);
    this.timer.unref();
  }

  private onMessage(host: UpgradeHost, m: Message, fds: number[]): void {
    if (m.type === 'stats') {
      for (const c of m.counters) {
        const s = host.stats.get(c.name) ?? host.stats.rejected(c.name);
        if (s) s.value += c.delta;
        // A stat this epoch's stats_matcher rejects stays out, as it would had it been made here.
        else if (host.stats.accepts(c.name)) host.stats.add({ kind: 'counter', name: c.name, promName: c.promName, promLabels: c.promLabels, value: c.delta } satisfies Stat);
      }
      return;
    }
    if (m.type === 'connection') {
      const fd = fds[0];
      if (fd === undefined) return;
      const l = host.listener(m.listener);
      if (!l) {
        // The new config has no such listener: nobody here can serve it.
        native().closeFd(fd);
        return;
      }
      this.adopted++;
      l.adopt(host.adopt(fd, m.remote, m.local), Buffer.from(m.unread, 'base64'));
      return;
    }
    for (const f of fds) native().closeFd(f);
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    native().closeFd(this.fd);
  }
}
