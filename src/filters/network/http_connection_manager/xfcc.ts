/**
 * x-forwarded-client-cert (XFCC), as Envoy's connection manager handles it per request:
 * `forward_client_cert_details` decides whether the header a client sent goes on, and on a
 * mutual-TLS connection `set_current_client_cert_details` what this hop adds about the client's
 * certificate. The default, SANITIZE, removes the header: a client must not be able to claim a
 * certificate identity to the application behind the proxy.
 */
import type { ConnectionTlsInfo } from '../../../io/stream_conn.js';
import { PerConnection } from '../../../io/per_connection.js';

export const XFCC = 'x-forwarded-client-cert';

export type ForwardClientCert = 'SANITIZE' | 'FORWARD_ONLY' | 'APPEND_FORWARD' | 'SANITIZE_SET' | 'ALWAYS_FORWARD_ONLY';
export const FORWARD_CLIENT_CERT: readonly ForwardClientCert[] = ['SANITIZE', 'FORWARD_ONLY', 'APPEND_FORWARD', 'SANITIZE_SET', 'ALWAYS_FORWARD_ONLY'];

export interface XfccConfig {
  readonly mode: ForwardClientCert;
  /** set_current_client_cert_details fields. */
  readonly subject: boolean;
  readonly cert: boolean;
  readonly chain: boolean;
  readonly uri: boolean;
  readonly dns: boolean;
}

/** What a request's XFCC header becomes upstream. */
export const XfccAction = {
  /** Removed. */
  DROP: 0,
  /** Passed on as the client sent it (or absent). */
  KEEP: 1,
  /** This hop's details appended to what the client sent, comma-separated. */
  APPEND: 2,
  /** Replaced by this hop's details. */
  SET: 3,
} as const;

export function xfccAction(cfg: XfccConfig, tls: ConnectionTlsInfo | null | undefined): number {
  if (cfg.mode === 'ALWAYS_FORWARD_ONLY') return XfccAction.KEEP;
  // Without a client certificate every mode but ALWAYS_FORWARD_ONLY removes it.
  if (cfg.mode === 'SANITIZE' || !tls?.peerCertSha256) return XfccAction.DROP;
  if (cfg.mode === 'FORWARD_ONLY') return XfccAction.KEEP;
  return cfg.mode === 'APPEND_FORWARD' ? XfccAction.APPEND : XfccAction.SET;
}

/** One connection's element, made on its first request (the same for all of them). */
const made = new PerConnection<string>('strait.xfccElement');

/**
 * This hop's element: `By=<own URI SAN>;Hash=<peer cert SHA-256>` and the fields configured, in
 * Envoy's order (Cert, Chain, Subject, URI, DNS).
 */
export function xfccElement(cfg: XfccConfig, tls: ConnectionTlsInfo): string {
  let v = made.get(tls);
  if (v !== undefined) return v;
  const parts: string[] = [];
  for (const u of tls.localUriSans ?? []) parts.push(`By=${u}`);
  if (tls.peerCertSha256) parts.push(`Hash=${tls.peerCertSha256}`);
  if ((cfg.cert || cfg.chain) && tls.peerPem) {
    // URL-encoded PEM, quoted, as Envoy writes them (the chain leaf first).
    const p = tls.peerPem();
    if (cfg.cert) parts.push(`Cert="${encodeURIComponent(p.cert)}"`);
    if (cfg.chain) parts.push(`Chain="${encodeURIComponent(p.chain)}"`);
  }
  // Subject and URI are written even when empty, DNS only when there is one (as Envoy does).
  if (cfg.subject) parts.push(`Subject="${tls.peerSubject}"`);
  if (cfg.uri) {
    if (tls.peerUriSans.length === 0) parts.push('URI=');
    for (const u of tls.peerUriSans) parts.push(`URI=${u}`);
  }
  if (cfg.dns) for (const d of tls.peerDnsSans) parts.push(`DNS=${d}`);
  v = parts.join(';');
  made.set(tls, v);
  return v;
}

/** The upstream value for APPEND/SET given what the client sent (undefined: nothing). */
export function xfccValue(action: number, element: string, sent: string | undefined): string {
  return action === XfccAction.APPEND && sent ? `${sent},${element}` : element;
}
