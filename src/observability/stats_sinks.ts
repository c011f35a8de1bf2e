/**
 * The bootstrap's `stats_sinks` of the statsd family (`envoy.stat_sinks.statsd`,
 * `envoy.stat_sinks.dog_statsd`) over UDP, flushed every `stats_flush_interval`.
 *
 * A flush walks the store's kept stats (the stats matcher already dropped the others): counters go
 * as the change since the last flush (`name:delta|c`), gauges as their value (`name:value|g`).
 * Like Envoy, a counter or gauge is sent once it has been used — here, once it has been seen
 * non-zero — so idle families do not flood the collector. Histogram samples go as they are
 * recorded, as Envoy sends them: a timer line each (`name:value|ms`), packed into the sink's
 * datagram size and sent as a datagram fills, the rest at the next flush.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { FieldError } from '../errors.js';
import { log } from '../log.js';
import type { Histogram, Stat, StatsStore } from './stats.js';

type Obj = Record<string, any>;

export interface StatsdSinkSpec {
  readonly kind: 'statsd' | 'dog_statsd';
  readonly host: string;
  readonly port: number;
  /** Prepended with a `.`: `envoy.cluster.a.upstream_rq_total`. */
  readonly prefix: string;
  /** Lines are packed into datagrams up to this size; a longer line goes alone. */
  readonly maxBytes: number;
}

export interface StatsSinksSpec {
  readonly sinks: readonly StatsdSinkSpec[];
  readonly flushMs: number;
}

const STATSD_TYPE = 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink';
const DOG_TYPE = 'type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink';
/**
 * Datagram size for the plain statsd sink: under a 1500-byte Ethernet MTU with IPv6 and UDP
 * headers, so nothing is fragmented on an ordinary network.
 */
export const STATSD_DATAGRAM_BYTES = 1400;
const DEFAULT_FLUSH_MS = 5000;

/**
 * Reads `stats_sinks`, `stats_flush_interval` and `stats_flush_on_admin`. Sinks of other kinds
 * (metrics_service, hystrix, wasm) are reported and skipped, as before they were implemented.
 * Null when no sink is to run.
 */
export function buildStatsSinks(bootstrap: Obj, errors: FieldError[], warnings: FieldError[], durationMs: (v: unknown) => number | undefined): StatsSinksSpec | null {
  let flushMs = DEFAULT_FLUSH_MS;
  if (bootstrap.stats_flush_on_admin === true) {
    errors.push({ path: 'stats_flush_on_admin', message: 'is not supported: sinks flush on stats_flush_interval' });
  }
  if (bootstrap.stats_flush_interval !== undefined) {
    const ms = durationMs(bootstrap.stats_flush_interval);
    if (ms === undefined || !(ms >= 1) || ms >= 300_000) errors.push({ path: 'stats_flush_interval', message: 'must be at least 1ms and less than 5 minutes' });
    else flushMs = ms;
  }
  const sinks: StatsdSinkSpec[] = [];
  ((bootstrap.stats_sinks ?? []) as Obj[]).forEach((s, i) => {
    const path = `stats_sinks[${i}]`;
    const tc = (s?.typed_config ?? {}) as Obj;
    const type = tc['@type'] as string | undefined;
    const kind =
      type === STATSD_TYPE || (!type && s?.name === 'envoy.stat_sinks.statsd')
        ? 'statsd'
        : type === DOG_TYPE || (!type && s?.name === 'envoy.stat_sinks.dog_statsd')
          ? 'dog_statsd'
          : null;
    if (!kind) {
      warnings.push({ path, message: `stats sink ${s?.name ?? type ?? '(unnamed)'} is not implemented; ignored (Strait sends to statsd and DogStatsD)` });
      return;
    }
    const tpath = `${path}.typed_config`;
    if (tc.tcp_cluster_name !== undefined) {
      errors.push({ path: `${tpath}.tcp_cluster_name`, message: 'is not supported: give a UDP address' });
      return;
    }
    const sa = tc.address?.socket_address as Obj | undefined;
    if (!tc.address) {
      errors.push({ path: `${tpath}.address`, message: kind === 'statsd' ? 'is required (or tcp_cluster_name)' : 'is required' });
      return;
    }
    if (!sa) {
      errors.push({ path: `${tpath}.address`, message: 'must be a socket_address' });
      return;
    }
    const host = String(sa.address ?? '');
    if (net.isIP(host) === 0) {
      errors.push({ path: `${tpath}.address.socket_address.address`, message: `"${host}" is not an IP address` });
      return;
    }
    const port = Number(sa.port_value ?? 0);
    if (!(port > 0 && port < 65536)) {
      errors.push({ path: `${tpath}.address.socket_address.port_value`, message: 'must be a port from 1 to 65535' });
      return;
    }
    const prefix = typeof tc.prefix === 'string' && tc.prefix ? tc.prefix : 'envoy';
    // DogStatsD: Envoy sends one metric per datagram unless max_bytes_per_datagram says more.
    const maxBytes = kind === 'statsd' ? STATSD_DATAGRAM_BYTES : Number(tc.max_bytes_per_datagram ?? 0) || 1;
    if (kind === 'dog_statsd' && tc.max_bytes_per_datagram !== undefined && !(Number(tc.max_bytes_per_datagram) > 0)) {
      errors.push({ path: `${tpath}.max_bytes_per_datagram`, message: 'must be greater than 0' });
    }
    sinks.push({ kind, host, port, prefix, maxBytes });
  });
  return sinks.length ? { sinks, flushMs } : null;
}

/** DogStatsD forbids `|`, `,` and `#` in tag text, and `:` separates a tag's name from its value. */
function dogTag(v: string): string {
  return v.replace(/[|,#\n]/g, '_');
}

class UdpSink {
  private readonly sock: dgram.Socket;
  /** What goes before `:value` per stat, built once per stat name. */
  private readonly heads = new Map<string, string>();
  private readonly tails = new Map<string, string>();

  constructor(
    readonly spec: StatsdSinkSpec,
    private readonly store: StatsStore,
  ) {
    this.sock = dgram.createSocket(net.isIPv6(spec.host) ? 'udp6' : 'udp4');
    // A stats sink never keeps the process alive, nor takes it down: a collector that is not
    // there yet answers with ICMP port unreachable, which surfaces here.
    this.sock.unref();
    this.sock.on('error', (err) => log.debug({ err: err.message, sink: `${spec.host}:${spec.port}` }, 'stats sink: send failed'));
  }

  /** `prefix.name` (statsd) or `prefix.tag_extracted_name` (DogStatsD). */
  private head(s: Stat | Histogram): string {
    let h = this.heads.get(s.name);
    if (h === undefined) {
      h = `${this.spec.prefix}.${this.spec.kind === 'dog_statsd' ? this.store.tagged(s.name).name : s.name}`;
      this.heads.set(s.name, h);
    }
    return h;
  }

  /** DogStatsD's `|#tag:value,…`; '' for statsd. */
  private tail(s: Stat | Histogram): string {
    if (this.spec.kind !== 'dog_statsd') return '';
    let t = this.tails.get(s.name);
    if (t === undefined) {
      const tags = this.store.tagged(s.name).tags;
      t = tags.length ? `|#${tags.map(([k, v]) => `${dogTag(k)}:${dogTag(v)}`).join(',')}` : '';
      this.tails.set(s.name, t);
    }
    return t;
  }

  line(s: Stat | Histogram, value: number, type: 'c' | 'g' | 'ms'): string {
    return `${this.head(s)}:${value}|${type}${this.tail(s)}`;
  }

  /** Timer lines waiting for their datagram to fill (or the next flush), joined by newlines. */
  private timers = '';

  /** One histogram sample; a full datagram goes at once, so what waits stays under maxBytes. */
  sample(h: Histogram, v: number): void {
    // Durations are kept in fractional milliseconds; microseconds are plenty for a collector.
    const l = this.line(h, Math.round(v * 1000) / 1000, 'ms');
    const cur = this.timers;
    if (cur === '') this.timers = l;
    else if (cur.length + 1 + l.length > this.spec.maxBytes) {
      // Lines are ASCII (stat names and numbers), so length is the byte count.
      this.sock.send(cur, this.spec.port, this.spec.host);
      this.timers = l;
    } else this.timers = `${cur}\n${l}`;
  }

  /** The timer lines still waiting, handed over for the flush. */
  takeTimers(): string[] {
    const t = this.timers;
    this.timers = '';
    return t === '' ? [] : t.split('\n');
  }

  /** Packs lines into datagrams of at most maxBytes; resolves once all are handed to the kernel. */
  send(lines: readonly string[]): Promise<void> {
    const grams: Buffer[] = [];
    let cur = '';
    for (const l of lines) {
      const next = cur ? `${cur}\n${l}` : l;
      if (cur && Buffer.byteLength(next) > this.spec.maxBytes) {
        grams.push(Buffer.from(cur));
        cur = l;
      } else cur = next;
    }
    if (cur) grams.push(Buffer.from(cur));
    return Promise.all(
      grams.map((g) => new Promise<void>((resolve) => this.sock.send(g, this.spec.port, this.spec.host, () => resolve()))),
    ).then(() => undefined);
  }

  close(): void {
    this.sock.close();
  }
}

/** Runs the sinks: a flush every interval (an unref'd timer), a last one at stop. */
export class StatsFlusher {
  private timer: NodeJS.Timeout | null = null;
  private readonly sinks: UdpSink[];
  /** Counter values at the last flush, and the stats seen non-zero (Envoy's "used"). */
  private readonly last = new Map<Stat, number>();
  private readonly used = new Set<Stat>();
  private stopped = false;

  constructor(
    private readonly store: StatsStore,
    readonly spec: StatsSinksSpec,
    /** Called before each flush, so gauges computed on demand (server.uptime) are current. */
    private readonly beforeFlush: () => void = () => {},
  ) {
    this.sinks = spec.sinks.map((s) => new UdpSink(s, store));
    const sinks = this.sinks;
    store.setHistogramSampleSink(
      sinks.length === 1
        ? (h, v) => sinks[0]!.sample(h, v)
        : (h, v) => {
            for (const k of sinks) k.sample(h, v);
          },
    );
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.flush(), this.spec.flushMs);
    this.timer.unref();
  }

  /** One flush to every sink; resolves once its datagrams are sent. */
  flush(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.beforeFlush();
    const changes: Array<[Stat, number]> = [];
    for (const s of this.store.all()) {
      if (s.kind === 'counter') {
        const prev = this.last.get(s) ?? 0;
        // A counter that went down (a hot-restart handover replaces none, but be safe) restarts.
        const delta = s.value >= prev ? s.value - prev : s.value;
        this.last.set(s, s.value);
        if (delta !== 0) this.used.add(s);
        if (this.used.has(s)) changes.push([s, delta]);
      } else {
        if (s.value !== 0) this.used.add(s);
        if (this.used.has(s)) changes.push([s, s.value]);
      }
    }
    return Promise.all(
      this.sinks.map((sink) => {
        const lines = changes.map(([s, v]) => sink.line(s, v, s.kind === 'counter' ? 'c' : 'g'));
        lines.push(...sink.takeTimers());
        return lines.length ? sink.send(lines) : undefined;
      }),
    ).then(() => undefined);
  }

  /** Stops the timer, sends what changed since the last flush, and closes the sockets. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    try {
      await this.flush();
    } finally {
      this.stopped = true;
      this.store.setHistogramSampleSink(null);
      for (const s of this.sinks) s.close();
    }
  }
}
