import type net from 'node:net';
import tls from 'node:tls';
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
export function inspectTls(sock: net.Socket, timeoutMs: number, done: (r: InspectResult | null, timedOut: boolean) => void): void {
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
    finish(r === 'not_tls' ? RAW_BUFFER : { transport: 'tls', sni: r.sni, alpn: r.alpn });
  };
  const onClose = () => finish(null);
  const timer = timeoutMs > 0 ? setTimeout(() => finish(null, true), timeoutMs) : null;
  sock.on('data', onData);
  sock.once('close', onClose);
  sock.on('error', () => {});
  sock.resume();
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
  const t = new tls.TLSSocket(sock, {
    isServer: true,
    secureContext: provider.secureContext,
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
