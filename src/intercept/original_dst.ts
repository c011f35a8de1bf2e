/**
 * The listener side of iptables/nft capture: a REDIRECTed connection arrives at the sidecar's
 * port, and SO_ORIGINAL_DST (conntrack's record of the NAT) tells where it was going.
 */
import type { Downstream, PeerAddress } from '../io/engine.js';
import { log } from '../log.js';
import { nativeBpf } from './native_bpf.js';

/** The accepted socket's fd, whichever engine accepted it. */
function fdOf(d: Downstream): number {
  const x = d as unknown as { fd?: number; socket?: { _handle?: { fd?: number } } };
  if (typeof x.fd === 'number') return x.fd; // native engine: FdSocket
  return x.socket?._handle?.fd ?? -1; // node engine: net.Socket's libuv handle
}

/**
 * SO_ORIGINAL_DST of a downstream; for a connection that was not NATed, its own local address
 * (getsockname: what sk_lookup inbound capture and TPROXY leave); null for unix sockets.
 */
export function originalDestination(d: Downstream): PeerAddress | null {
  if (d.local.family === 'unix') return null;
  const fd = fdOf(d);
  if (fd < 0) return null;
  return nativeBpf().originalDst(fd);
}

/**
 * What Envoy's original_dst listener filter does: the connection's local address becomes its
 * original destination, so filter chain matching and ORIGINAL_DST clusters see where the
 * app was really connecting. Connections that were not redirected keep their address.
 */
export function restoreOriginalDst(d: Downstream): void {
  let orig: PeerAddress | null;
  try {
    orig = originalDestination(d);
  } catch (err) {
    // A connection reset before we asked has no socket name any more: leave it as it is.
    log.debug({ err: (err as Error).message }, 'SO_ORIGINAL_DST failed');
    return;
  }
  // `local` is readonly for filters; restoring it here, before any filter sees the
  // connection, is the one place it changes.
  if (orig) (d as { local: PeerAddress }).local = orig;
}
