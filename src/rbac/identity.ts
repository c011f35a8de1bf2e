import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { Downstream } from '../io/engine.js';
import { PerConnection } from '../io/per_connection.js';

/** Who the peer proved to be with its TLS certificate. */
export interface PeerIdentity {
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  readonly subject: string;
}

/**
 * The verified client certificate's identity, or null for plaintext connections and TLS
 * clients that sent no certificate. Prefers what the listener recorded at handshake; a
 * downstream that carries a TLSSocket without that record is asked directly.
 */
export function peerIdentity(d: Downstream): PeerIdentity | null {
  const t = d.tls;
  if (t) {
    if (!t.peerUriSans.length && !t.peerDnsSans.length && !t.peerSubject) return null;
    return { uriSans: t.peerUriSans, dnsSans: t.peerDnsSans, subject: t.peerSubject };
  }
  const sock = (d as { socket?: unknown }).socket as Partial<TLSSocket> | undefined;
  if (!sock || (sock as { encrypted?: boolean }).encrypted !== true || typeof sock.getPeerCertificate !== 'function') return null;
  // Only a certificate the handshake verified is an identity.
  if (sock.authorized !== true) return null;
  const cert = sock.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return null;
  const uriSans: string[] = [];
  const dnsSans: string[] = [];
  for (const part of (cert.subjectaltname ?? '').split(', ')) {
    if (part.startsWith('URI:')) uriSans.push(part.slice(4));
    else if (part.startsWith('DNS:')) dnsSans.push(part.slice(4));
  }
  const subject = cert.subject ? Object.entries(cert.subject).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`).join(',') : '';
  return { uriSans, dnsSans, subject };
}

const BY_SOCKET = new PerConnection<Downstream>('strait.downstream');

/**
 * Records the listener's view of the connection behind `sock` (addresses restored from
 * SO_ORIGINAL_DST or a PROXY header, TLS facts), so socketDownstream returns it instead of
 * reading the socket's own addresses.
 */
export function registerDownstream(sock: object, d: Downstream): void {
  BY_SOCKET.set(sock, d);
}

/**
 * A Downstream view of a socket, for paths that only hold the socket (an HTTP/2 session's).
 * One per socket, so requests on a connection share it; the TLS identity is read from the
 * socket itself (peerIdentity's fallback).
 */
export function socketDownstream(sock: Socket): Downstream {
  let d = BY_SOCKET.get(sock);
  if (!d) {
    const addr = (ip: string | undefined, port: number | undefined, family: string | undefined) =>
      ({ family: family === 'IPv6' ? 'IPv6' : 'IPv4', address: ip ?? '', port: port ?? 0 }) as const;
    d = { remote: addr(sock.remoteAddress, sock.remotePort, sock.remoteFamily), local: addr(sock.localAddress, sock.localPort, sock.localFamily), socket: sock, close: () => sock.destroy() } as Downstream;
    BY_SOCKET.set(sock, d);
  }
  return d;
}
