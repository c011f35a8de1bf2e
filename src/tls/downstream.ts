import type net from 'node:net';
import type tls from 'node:tls';
import { nodeTls } from './lazy_builtins.js';
import type { ConnectionTlsInfo } from '../io/stream_conn.js';
import { log } from '../log.js';
import type { StatsOf } from '../observability/stats.js';
import { MAX_HELLO, parseClientHello } from './client_hello.js';
import type { TlsContextProvider } from './provider.js';
import type { SSL_STATS } from './stats.js';
import { tlsInfoOf, verifyPeer } from './verify.js';

/** What the tls_inspector learnt: Envoy's `transport_protocol`, `server_names`, `application_protocols` inputs. */
export interface InspectResult {
  readonly transport: 'tls' | 'raw_buffer';
  readonly sni: string;
  readonly alpn: readonly string[];
}

export const RAW_BUFFER: InspectResult = Object.freeze({ transport: 'raw_buffer', sni: '', alpn: Object.freeze([]) as readonly string[] });

/**
 * The tls_inspector: reads the first bytes until they show a ClientHello (or plaintext), then
 * puts them back with unshift() so the next reader — TLS or a filter — sees the connection
 * from its first byte. `done(null)` when the client left or the timeout passed first.
 */
export function inspectTls(sock: net.Socket, timeoutMs: number, http: boolean, done: (r: InspectResult | null, timedOut: boolean) => void): void {
  let head: Buffer | null = null;
  let settled = false;
  const finish = (r: InspectResult | null, timedOut = false) => {
    if (settled) return;
    settled = true;
    if (timer) clearTimeout(timer);
    sock.off('data', onData);
    sock.off('close', onClose);
    sock.pause();
    if (head) sock.unshift(head);
    done(r, timedOut);
  };
  const onData = (d: Buffer) => {
    head = head ? Buffer.concat([head, d]) : d;
    const r = parseClientHello(head);
    if (r === 'need_more') {
      if (head.length > MAX_HELLO) finish(RAW_BUFFER);
      return;
    }
    if (r !== 'not_tls') return finish({ transport: 'tls', sni: r.sni, alpn: r.alpn });
    if (!http) return finish(RAW_BUFFER);
    // http_inspector: plaintext HTTP is told by its first line (Envoy's application protocols).
    const h = sniffHttp(head);
    if (h === 'need_more' && head.length < MAX_HTTP_SNIFF) return;
    finish(h === 'need_more' || h === null ? RAW_BUFFER : { transport: 'raw_buffer', sni: '', alpn: [h] });
  };
  const onClose = () => finish(null);
  const timer = timeoutMs > 0 ? setTimeout(() => finish(null, true), timeoutMs) : null;
  sock.on('data', onData);
  sock.once('close', onClose);
  sock.on('error', () => {});
  sock.resume();
}

/** Bytes read at most to find the end of an HTTP/1 request line. */
const MAX_HTTP_SNIFF = 8 * 1024;
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * `h2c` for the HTTP/2 preface, `http/1.1` / `http/1.0` for a request line, null when the bytes
 * cannot be HTTP, 'need_more' while they still could be.
 */
export function sniffHttp(b: Buffer): 'h2c' | 'http/1.1' | 'http/1.0' | null | 'need_more' {
  const n = Math.min(b.length, H2_PREFACE.length);
  if (b.compare(H2_PREFACE, 0, n, 0, n) === 0) return n === H2_PREFACE.length ? 'h2c' : 'need_more';
  // A method is an upper-case token followed by a space.
  let i = 0;
  while (i < b.length && i < 20 && b[i]! >= 0x41 && b[i]! <= 0x5a) i++;
  if (i === b.length) return 'need_more';
  if (i === 0 || b[i] !== 0x20) return null;
  const eol = b.indexOf('\r\n');
  if (eol < 0) return 'need_more';
  const line = b.toString('latin1', 0, eol);
  if (line.endsWith(' HTTP/1.1')) return 'http/1.1';
  if (line.endsWith(' HTTP/1.0')) return 'http/1.0';
  return null;
}

/**
 * Terminates TLS on an accepted socket with the chain's current certificate (so a rotation
 * applies to the next handshake), then verifies the client. `done(null)` on any failure; the
 * socket is destroyed by then and the failure is counted under `ssl.*`.
 */
export function terminateTls(
  sock: net.Socket,
  provider: TlsContextProvider,
  stats: StatsOf<typeof SSL_STATS>,
  sniHint: string,
  timeoutMs: number,
  done: (secure: tls.TLSSocket | null, info: ConnectionTlsInfo | null) => void,
): void {
  const spec = provider.spec;
  const secureContext = provider.secureContext;
  if (!secureContext) {
    // The certificate (an SDS secret) has not arrived: nothing to handshake with.
    stats.connection_error.value++;
    sock.destroy();
    done(null, null);
    return;
  }
  const t = new (nodeTls().TLSSocket)(sock, {
    isServer: true,
    secureContext,
    // Ask for a client certificate whenever one can be verified; refuse below, with the stat.
    requestCert: spec.trustedCa !== null,
    rejectUnauthorized: false,
    ...(spec.alpn.length ? { ALPNProtocols: [...spec.alpn] } : {}),
  });
  let settled = false;
  const fail = (why: string) => {
    if (settled) return;
    settled = true;
    if (timer) clearTimeout(timer);
    if (log.isLevelEnabled('debug')) log.debug({ remote: sock.remoteAddress, why }, 'downstream TLS refused');
    t.destroy();
    done(null, null);
  };
  const timer =
    timeoutMs > 0
      ? setTimeout(() => {
          stats.connection_error.value++;
          fail('handshake timeout');
        }, timeoutMs)
      : null;
  t.once('secure', () => {
    if (settled) return;
    // tls.Server clears this once a server socket's handshake is done; a TLSSocket made by hand
    // keeps it set, and node:http2 then waits for a 'secureConnect' that a server socket never
    // emits: no HTTP/2 over TLS, and a crash of the process when the client's first frames were
    // already buffered (the session reads them before it has a handle).
    (t as tls.TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
    const info = tlsInfoOf(t, sniHint);
    if (spec.requireSni && !info.sni) {
      stats.connection_error.value++;
      fail('client sent no SNI');
      return;
    }
    const refused = verifyPeer(t, spec, stats);
    if (refused) {
      fail(refused);
      return;
    }
    settled = true;
    if (timer) clearTimeout(timer);
    stats.handshake.value++;
    t.removeListener('error', onError);
    t.pause();
    done(t, info);
  });
  const onError = (err: Error) => {
    if (settled) return;
    stats.connection_error.value++;
    fail(err.message);
  };
  t.on('error', onError);
  t.once('close', () => fail('closed during handshake'));
  // Errors after the hand-over belong to the filter; never let one crash the process meanwhile.
  t.on('error', () => {});
}
