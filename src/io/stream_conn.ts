import type net from 'node:net';
import type { Downstream, PeerAddress, Upstream } from './engine.js';
import type { FilterState } from './filter_state.js';

/** What a TLS handshake established, for filter chain match, RBAC and access logs. */
export interface ConnectionTlsInfo {
  /** The server name the client asked for ('' without SNI). */
  readonly sni: string;
  /** The negotiated ALPN protocol, or ''. */
  readonly alpn: string;
  /** `TLSv1.3`, ... */
  readonly version: string;
  /** URI SANs of the peer certificate (SPIFFE identities); empty without a client certificate. */
  readonly peerUriSans: readonly string[];
  readonly peerDnsSans: readonly string[];
  /** The peer certificate's subject in RFC 2253 form (as Envoy prints it), or ''. */
  readonly peerSubject: string;
  /** SHA-256 of the peer certificate (DER), lower-case hex; '' without a client certificate. */
  readonly peerCertSha256?: string;
  /** URI SANs of the certificate this side presented (x-forwarded-client-cert's By=). */
  readonly localUriSans?: readonly string[];
  /**
   * The peer's certificate and its chain (leaf first) in PEM, read from the connection when
   * first asked (x-forwarded-client-cert's Cert= and Chain=); '' without a client certificate.
   */
  readonly peerPem?: () => { readonly cert: string; readonly chain: string };
}

/**
 * A downstream carried by a Node stream rather than a raw fd: after a listener filter read
 * from it (tls_inspector) or TLS was terminated on it. Both engines accept it — the native
 * engine then splices it with Node streams, since its fd-level pipe cannot see plaintext.
 */
export class StreamDownstream implements Downstream {
  filterState: FilterState | null = null;

  constructor(
    readonly socket: net.Socket,
    readonly remote: PeerAddress,
    readonly local: PeerAddress,
    readonly tls: ConnectionTlsInfo | null,
  ) {}
  close(): void {
    this.socket.destroy();
  }
}

/** An upstream carried by a Node stream (a TLS client connection). */
export class StreamUpstream implements Upstream {
  constructor(readonly socket: net.Socket) {}
  close(): void {
    this.socket.destroy();
  }
}
