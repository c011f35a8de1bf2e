import type { Transform } from 'node:stream';
import type { ResponseBodyFilter } from '../../http/types.js';
import type { HeaderObject, TryEvents, TryFailureKind, UpstreamTry } from './upstream_try.js';

/** Why the inner try is paused: the exchange asked (its client is slow), or the transform's input is full. */
const BY_OWNER = 1;
const BY_TRANSFORM = 2;

const noop = (): void => {};

/**
 * One upstream try whose response body goes through a filter's transform (the compressor's zlib
 * stream): it stands between the try and the exchange, as the try to the exchange and as the
 * events to the try. Built only for requests whose filters set HttpFilterRequest.responseBody, so
 * every other request keeps handing itself to its try directly. It offers only the generic
 * events (no onH1ResponseHead, onH2ResponseFlat or onEndFlat), so the try hands on a header
 * object and body chunks, and the exchange takes its generic path (no flat or whole-response
 * writes) for the response.
 *
 * Backpressure runs end to end: the exchange's pause() pauses the transform's output and the
 * try; a transform whose input is full pauses the try until it drains. The transform is ended
 * when the upstream's response is, and the exchange hears onEnd only once the transform's last
 * bytes (the compressor's flush) went to it. An abort either way destroys the transform.
 */
export class TransformTry implements UpstreamTry, TryEvents {
  /** The try this one wraps, set right after it is made (its constructor may already fail through us). */
  inner: UpstreamTry | null = null;
  private z: Transform | null = null;
  private holds = 0;
  /** Nothing more reaches the exchange (ended, aborted, failed). */
  private done = false;
  private trailers: HeaderObject | null = null;

  constructor(
    private readonly ev: TryEvents,
    private readonly filter: ResponseBodyFilter,
  ) {}

  get requestNeverIndexed(): string | undefined {
    return this.ev.requestNeverIndexed;
  }

  // ---- UpstreamTry: the exchange drives the try through here ----

  write(chunk: Buffer): boolean {
    return this.inner!.write(chunk);
  }

  end(): void {
    this.inner!.end();
  }

  onDrain(cb: () => void): void {
    this.inner!.onDrain(cb);
  }

  pause(): void {
    this.hold(BY_OWNER);
    this.z?.pause();
  }

  resume(): void {
    this.z?.resume();
    this.release(BY_OWNER);
  }

  abort(downstreamGone = false): void {
    this.done = true;
    this.destroy();
    this.inner?.abort(downstreamGone);
  }

  private hold(why: number): void {
    const was = this.holds;
    this.holds |= why;
    if (was === 0) this.inner?.pause();
  }

  private release(why: number): void {
    if ((this.holds & why) === 0) return;
    this.holds &= ~why;
    if (this.holds === 0) this.inner?.resume();
  }

  // ---- TryEvents: the try reports here ----

  onResponse(status: number, headers: HeaderObject, endStream: boolean): void {
    if (this.done) return;
    const z = this.filter.onResponseHeaders(status, headers, endStream);
    if (z !== null) {
      this.z = z;
      // Each listener checks it still serves the live transform: destroy() only lets go of it.
      z.on('data', (d: Buffer) => {
        if (this.z === z && !this.done) this.ev.onData(d);
      });
      z.on('drain', () => {
        if (this.z === z) this.release(BY_TRANSFORM);
      });
      z.on('end', () => {
        if (this.z === z) this.ended();
      });
      z.on('error', () => {
        if (this.z === z) this.failed();
      });
    }
    this.ev.onResponse(status, headers, endStream);
  }

  onData(chunk: Buffer): void {
    if (this.done) return;
    const z = this.z;
    if (z === null) this.ev.onData(chunk);
    else if (!z.write(chunk)) this.hold(BY_TRANSFORM);
  }

  onEnd(trailers: HeaderObject | null): void {
    if (this.done) return;
    const z = this.z;
    if (z === null) {
      this.done = true;
      this.ev.onEnd(trailers);
      return;
    }
    // The transform's tail (a compressor's final block) comes first; its 'end' ends the exchange.
    this.trailers = trailers;
    z.end();
  }

  onFailure(kind: TryFailureKind): void {
    if (this.done) return;
    this.done = true;
    // Should a try fail once its head was in, its transform (native zlib memory) goes too.
    this.destroy();
    this.ev.onFailure(kind);
  }

  onAbort(): void {
    if (this.done) return;
    this.done = true;
    this.destroy();
    this.ev.onAbort();
  }

  /** The transform's 'end': all its output reached the exchange. */
  private ended(): void {
    this.z = null;
    if (this.done) return;
    this.done = true;
    this.ev.onEnd(this.trailers);
  }

  /** The transform failed mid-body: the client has a head already, so only an abort can say so. */
  private failed(): void {
    if (this.done) return;
    this.done = true;
    this.destroy();
    this.inner?.abort();
    this.ev.onAbort();
  }

  /** Frees the transform (a zlib stream holds native memory until destroyed). */
  private destroy(): void {
    const z = this.z;
    if (z === null) return;
    this.z = null;
    // Its listeners now ignore it; an error from a write still in flight must not throw.
    z.on('error', noop);
    z.destroy();
  }
}

/** The try an exchange's own checks look at (an H1Try's lack of trailers) under a TransformTry. */
export function innerTry(t: UpstreamTry | null): UpstreamTry | null {
  return t instanceof TransformTry ? t.inner : t;
}
