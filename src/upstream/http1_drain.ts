// The rest of an abandoned HTTP/1.1 response, read and dropped so that its connection can be pooled.
//
// When a client goes away after its whole request went upstream, Envoy and nginx close the
// upstream connection: the response still on its way would otherwise be read as the answer to the
// next request. A client that gives up on many requests at once (a deadline, a load generator
// stopping, a browser leaving a page) then costs as many reconnects, each with a TLS handshake
// under mTLS, all at once. Strait reads the rest instead, for at most DRAIN_MS and DRAIN_BYTES, and
// pools the connection when the response ends cleanly within both; otherwise it closes it as
// before. A slow or large answer is not waited for.
import { BODY_ERROR, BodyFramer, BodyMode } from '../protocols/http1/body.js';
import { responseHasNoBody, wantsKeepAlive } from '../protocols/http1/decoder.js';
import { parseResponseHead } from '../protocols/http1/parser.js';
import { HeadStatus } from '../protocols/http1/types.js';
import type { Http1ConnUser, Http1UpstreamConn } from './http1_pool.js';

export const DRAIN_MS = 1000;
export const DRAIN_BYTES = 64 * 1024;

/**
 * Takes `conn` over from an exchange whose client left. `already`: bytes of a response head that
 * had begun to arrive; `body`: the framer of a response whose head was handled and whose body is
 * under way (its state is copied: the caller's framer is reused), with `keepAlive` from that head.
 * Returns false, touching nothing, when the response cannot be drained (its body runs until the
 * connection closes): the caller closes the connection as before.
 */
export function drainResponse(conn: Http1UpstreamConn, method: string, already: Buffer | null, body: BodyFramer | null, keepAlive = true): boolean {
  if (body !== null && body.mode === BodyMode.UNTIL_CLOSE) return false;
  new ResponseDrain(conn, method, already, body, keepAlive);
  return true;
}

class ResponseDrain implements Http1ConnUser {
  private conn: Http1UpstreamConn | null;
  private buf: Buffer | null;
  /** Null until the final response head is read. */
  private framer: BodyFramer | null = null;
  private left = DRAIN_BYTES;
  private readonly timer: NodeJS.Timeout;

  constructor(
    conn: Http1UpstreamConn,
    private readonly method: string,
    already: Buffer | null,
    body: BodyFramer | null,
    private keepAlive: boolean,
  ) {
    this.conn = conn;
    this.buf = already;
    if (body !== null) (this.framer = new BodyFramer()).assign(body);
    conn.user = this;
    // An exchange that paused the read for a slow client left it paused.
    conn.socket.resume();
    this.timer = setTimeout(() => this.close(), DRAIN_MS).unref();
    if (this.framer !== null && this.framer.done) this.finish(true);
  }

  onUpstreamRead(src: Buffer, off: number, end: number): void {
    if ((this.left -= end - off) < 0) {
      this.close();
      return;
    }
    if (this.framer !== null) this.feed(src, off, end);
    else this.head(this.buf !== null ? Buffer.concat([this.buf, src.subarray(off, end)]) : src.subarray(off, end));
  }

  onUpstreamData(chunk: Buffer): void {
    this.onUpstreamRead(chunk, 0, chunk.length);
  }

  onUpstreamClose(): void {
    this.conn = null;
    clearTimeout(this.timer);
  }

  /** `buf` may be a view of a reused read buffer: what is kept of it is copied. */
  private head(buf: Buffer): void {
    let off = 0;
    for (;;) {
      const r = parseResponseHead(buf, off, buf.length);
      if (typeof r === 'number') {
        if (r === HeadStatus.NEED_MORE) this.buf = Buffer.from(buf.subarray(off));
        else this.close();
        return;
      }
      off += r.headBytes;
      if (r.status >= 100 && r.status < 200) {
        // A 101 turns the connection into a tunnel: nothing of it can be pooled.
        if (r.status === 101) {
          this.close();
          return;
        }
        continue;
      }
      this.buf = null;
      this.keepAlive = wantsKeepAlive(r);
      const f = (this.framer = new BodyFramer());
      const noBody = responseHasNoBody(r.status, this.method);
      if (!noBody && !r.chunked && r.contentLength < 0) {
        this.close();
        return;
      }
      f.reset(noBody ? BodyMode.NONE : r.chunked ? BodyMode.CHUNKED : BodyMode.LENGTH, r.contentLength > 0 ? r.contentLength : 0);
      this.feed(buf, off, buf.length);
      return;
    }
  }

  private feed(buf: Buffer, off: number, end: number): void {
    const e = this.framer!.feed(buf, off, end);
    if (e === BODY_ERROR) this.close();
    // Bytes past the response answer nothing that was asked: the connection is unusable.
    else if (this.framer!.done) this.finish(e === end);
  }

  private finish(clean: boolean): void {
    const c = this.conn;
    this.conn = null;
    clearTimeout(this.timer);
    if (c !== null) c.pool.release(c, clean && this.keepAlive, !this.keepAlive);
  }

  private close(): void {
    const c = this.conn;
    this.conn = null;
    clearTimeout(this.timer);
    if (c !== null) {
      c.user = null;
      c.destroy();
    }
  }
}
