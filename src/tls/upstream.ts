import net from 'node:net';
import os from 'node:os';
import type tls from 'node:tls';
import { nodeTls } from './lazy_builtins.js';
import type { Cancelable, ConnectDone, IoEngine, PeerAddress } from '../io/engine.js';
import { StreamUpstream } from '../io/stream_conn.js';
import { log } from '../log.js';
import type { StatsOf } from '../observability/stats.js';
import type { TlsContextProvider } from './provider.js';
import type { SSL_STATS } from './stats.js';
import { verifyPeer } from './verify.js';

/** What a cluster with an UpstreamTlsContext carries at run time. */
export interface UpstreamTls {
  readonly provider: TlsContextProvider;
  readonly stats: StatsOf<typeof SSL_STATS>;
}

/** The part of a Cluster these helpers need (kept structural so any pool can call them). */
export interface TlsCluster {
  readonly name: string;
  readonly tls: UpstreamTls | null;
}

function tlsOptions(up: UpstreamTls, secureContext: tls.SecureContext, target: PeerAddress, noDelay: boolean): tls.ConnectionOptions {
  const spec = up.provider.spec;
  return {
    ...(target.family === 'unix' ? { path: target.address } : { host: target.address, port: target.port }),
    secureContext,
    // Envoy sends SNI only when configured; Node would otherwise derive one from a host name.
    servername: spec.sni || undefined,
    ...(spec.alpn.length ? { ALPNProtocols: [...spec.alpn] } : {}),
    // Verification happens in verifyPeer, after the handshake, with Envoy's rules and stats.
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
    // tcp_proxy carries half-close; tls.connect hands both on to its socket (untyped in @types/node).
    ...({ allowHalfOpen: true, noDelay } as object),
  };
}

/**
 * Opens a connection to an upstream host for a stream-based filter (rpc_proxy, HTTP pools):
 * plain TCP, or TLS when the cluster has a transport socket. `onReady` runs once the
 * connection may carry requests — after the handshake and peer verification for TLS.
 * Failures surface as 'error' + 'close' on the returned socket, as with net.connect.
 */
export function openUpstreamSocket(cluster: TlsCluster, target: PeerAddress, onReady: () => void): net.Socket {
  const up = cluster.tls;
  if (!up) {
    const s = target.family === 'unix' ? net.connect({ path: target.address }) : net.connect({ host: target.address, port: target.port, noDelay: true });
    s.once('connect', onReady);
    return s;
  }
  const ctx = up.provider.secureContext;
  if (!ctx) {
    // The client certificate (an SDS secret) has not arrived: fail like a refused connect.
    up.stats.connection_error.value++;
    const dead = new net.Socket();
    process.nextTick(() => dead.destroy(new Error(`cluster ${cluster.name}: TLS secret not received yet (SDS)`)));
    return dead;
  }
  const s = nodeTls().connect(tlsOptions(up, ctx, target, true));
  let handshaken = false;
  s.once('secureConnect', () => {
    handshaken = true;
    const refused = verifyPeer(s, up.provider.spec, up.stats);
    if (refused) {
      if (log.isLevelEnabled('debug')) log.debug({ cluster: cluster.name, why: refused }, 'upstream TLS refused');
      s.destroy(new Error(refused));
      return;
    }
    up.stats.handshake.value++;
    onReady();
  });
  s.on('error', () => {
    if (!handshaken) up.stats.connection_error.value++;
  });
  return s;
}

const ETIMEDOUT = -os.constants.errno.ETIMEDOUT;
const ECONNRESET = -os.constants.errno.ECONNRESET;

function errnoOf(err: NodeJS.ErrnoException): number {
  const n = err.code ? (os.constants.errno as Record<string, number>)[err.code] : undefined;
  // TLS failures have no errno; report them as a reset connect.
  return n ? -n : ECONNRESET;
}

/**
 * The connect step of an L4 proxy (tcp_proxy): the engine's own connect for plaintext
 * clusters; a TLS client connection, delivered as a StreamUpstream, for TLS clusters. Both
 * engines pipe a StreamUpstream (the native one falls back to Node streams for it).
 */
export function connectUpstream(engine: IoEngine, cluster: TlsCluster, target: PeerAddress, timeoutMs: number, done: ConnectDone): Cancelable {
  if (!cluster.tls) return engine.connect(target, timeoutMs, done);
  let settled = false;
  const s = openUpstreamSocket(cluster, target, () => {
    if (settled) return;
    settled = true;
    if (timer) clearTimeout(timer);
    s.pause();
    done(0, new StreamUpstream(s));
  });
  const timer =
    timeoutMs > 0
      ? setTimeout(() => {
          if (settled) return;
          settled = true;
          s.destroy();
          done(ETIMEDOUT, null);
        }, timeoutMs)
      : null;
  const fail = (err: Error | undefined) => {
    if (settled) return;
    settled = true;
    if (timer) clearTimeout(timer);
    s.destroy();
    done(err ? errnoOf(err) : ECONNRESET, null);
  };
  s.on('error', fail);
  s.once('close', () => fail(undefined));
  return {
    cancel: () => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      s.destroy();
    },
  };
}
