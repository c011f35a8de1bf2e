import { FilterState, LOCAL_PRINCIPAL_KEY, PEER_PRINCIPAL_KEY } from '../../../io/filter_state.js';
import type { ConnectionContext, NetworkFilter } from '../types.js';

const SPIFFE = 'spiffe://';

function firstSpiffe(sans: readonly string[] | undefined): string | undefined {
  if (sans) for (const s of sans) if (s.startsWith(SPIFFE)) return s;
  return undefined;
}

/**
 * istio-proxy's `istio_authn` network filter: publishes who the mTLS peer is, and who this side
 * is, as the connection's filter state `io.istio.peer_principal` and `io.istio.local_principal`
 * — each the first URI SAN starting with `spiffe://` of the peer's and the local certificate —
 * for the RBAC principals Istio generates from AuthorizationPolicy `principals` / `namespaces`.
 * As in istio-proxy, nothing is set unless the peer presented a certificate (so a plaintext or
 * certificate-less connection matches no such principal), and the filter never refuses
 * anything. The listener finishes the TLS handshake (and its verification) before any network
 * filter sees the connection, so the facts are final here (istio-proxy waits for Connected).
 * Istio's filter keeps no stats; neither does this one.
 */
export class IstioAuthnFilter implements NetworkFilter {
  constructor(private readonly next: NetworkFilter) {}

  onNewConnection(conn: ConnectionContext): void {
    const d = conn.downstream;
    const tls = d.tls;
    // The fingerprint is '' when the peer sent no certificate; records without one (made
    // elsewhere than the listener's handshake) tell by the subject and SANs.
    const presented = tls ? (tls.peerCertSha256 !== undefined ? tls.peerCertSha256 !== '' : tls.peerSubject !== '' || tls.peerUriSans.length > 0 || tls.peerDnsSans.length > 0) : false;
    if (tls && presented) {
      const peer = firstSpiffe(tls.peerUriSans);
      const local = firstSpiffe(tls.localUriSans);
      if (peer !== undefined || local !== undefined) {
        const fs = (d.filterState ??= new FilterState());
        if (peer !== undefined) fs.setReadOnly(PEER_PRINCIPAL_KEY, peer);
        if (local !== undefined) fs.setReadOnly(LOCAL_PRINCIPAL_KEY, local);
      }
    }
    this.next.onNewConnection(conn);
  }
}
