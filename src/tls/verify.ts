import type tls from 'node:tls';
import type { ConnectionTlsInfo } from '../io/stream_conn.js';
import type { StatsOf } from '../observability/stats.js';
import type { TlsContextSpec } from './context.js';
import { parseSubjectAltName, sansMatch } from './san.js';
import type { SSL_STATS } from './stats.js';

type SslStats = StatsOf<typeof SSL_STATS>;

/**
 * Checks the peer after a handshake, the way Envoy's default certificate validator does:
 * presence (when required), chain to trusted_ca (unless ACCEPT_UNTRUSTED; expiry forgiven with
 * allow_expired_certificate), then the SAN matchers. Node verifies the chain during the
 * handshake; the verdict is read here so one place counts every failure by Envoy's stat name.
 * Returns the reason to refuse the connection, or null.
 */
export function verifyPeer(sock: tls.TLSSocket, spec: TlsContextSpec, stats: SslStats): string | null {
  const cert = sock.getPeerX509Certificate();
  if (!cert) {
    stats.no_certificate.value++;
    // A server always presents one; a client must when the listener requires it.
    if (spec.side === 'client' ? spec.trustedCa !== null : spec.requireClientCert) {
      stats.fail_verify_no_cert.value++;
      return 'peer presented no certificate';
    }
    return null;
  }
  const chainError = spec.side === 'client' ? (sock.authorized ? null : String(sock.authorizationError ?? 'unverified')) : serverSideVerifyError(sock);
  if (spec.trustedCa && chainError !== null && !spec.acceptUntrusted) {
    const why = chainError;
    if (!(spec.allowExpired && why === 'CERT_HAS_EXPIRED')) {
      stats.fail_verify_error.value++;
      return `certificate verification failed: ${why}`;
    }
  }
  if (spec.sanMatchers.length && !sansMatch(spec.sanMatchers, parseSubjectAltName(cert.subjectAltName))) {
    stats.fail_verify_san.value++;
    return `certificate subject alt names do not match (${cert.subjectAltName ?? 'none'})`;
  }
  return null;
}

/**
 * OpenSSL's verdict on a client certificate. Node sets `authorized` on server sockets only
 * inside tls.Server; a TLSSocket made from an accepted socket (as the listener does, after
 * the tls_inspector) must ask its handle, as tls.Server itself does.
 */
function serverSideVerifyError(sock: tls.TLSSocket): string | null {
  const handle = (sock as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  const err = handle?.verifyError?.();
  if (err === undefined) return 'unverified';
  return err ? String(err.code ?? err.message) : null;
}

/** What the handshake established, read once per connection. */
export function tlsInfoOf(sock: tls.TLSSocket, sniHint: string): ConnectionTlsInfo {
  const cert = sock.getPeerX509Certificate();
  const sans = cert ? parseSubjectAltName(cert.subjectAltName) : [];
  const servername = (sock as tls.TLSSocket & { servername?: string | false }).servername;
  return {
    sni: typeof servername === 'string' && servername ? servername : sniHint,
    alpn: typeof sock.alpnProtocol === 'string' ? sock.alpnProtocol : '',
    version: sock.getProtocol() ?? '',
    peerUriSans: sans.filter((s) => s.type === 'URI').map((s) => s.value),
    peerDnsSans: sans.filter((s) => s.type === 'DNS').map((s) => s.value),
    peerSubject: cert ? rfc2253(cert.subject) : '',
    peerCertSha256: cert ? cert.fingerprint256.replaceAll(':', '').toLowerCase() : '',
    localUriSans: localUriSans(sock),
    peerPem: () => peerPemOf(sock),
  };
}

/**
 * The peer certificate and its chain (leaf first) as PEM. Node gives the chain as verified, up to
 * the trust anchor from our CA store; Envoy's Chain is what the peer sent, which as a rule stops
 * below the root: a self-signed certificate above the leaf is left out.
 */
function peerPemOf(sock: tls.TLSSocket): { cert: string; chain: string } {
  const pem = (der: Buffer) => `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
  const leaf = sock.getPeerCertificate(true);
  if (!leaf || !leaf.raw) return { cert: '', chain: '' };
  let chain = '';
  const seen = new Set<tls.DetailedPeerCertificate>();
  for (let c: tls.DetailedPeerCertificate | undefined = leaf; c && c.raw && !seen.has(c); c = c.issuerCertificate) {
    seen.add(c);
    if (c !== leaf && c.issuerCertificate === c) break; // the root
    chain += pem(c.raw);
  }
  return { cert: pem(leaf.raw), chain };
}

/**
 * Node prints a subject one RDN per line, first to last, escaped as RFC 2253 asks; RFC 2253 (what
 * Envoy prints for RBAC, access logs and x-forwarded-client-cert) lists them last to first,
 * comma-separated, with '+' inside a multi-valued RDN.
 */
function rfc2253(subject: string): string {
  return subject
    .split('\n')
    .filter((l) => l !== '')
    .reverse()
    .map((l) => l.replaceAll(' + ', '+'))
    .join(',');
}

function localUriSans(sock: tls.TLSSocket): string[] {
  const own = sock.getX509Certificate();
  return own ? parseSubjectAltName(own.subjectAltName).filter((s) => s.type === 'URI').map((s) => s.value) : [];
}
