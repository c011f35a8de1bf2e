import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** A certificate and its key as files (PEM), plus their text for inline configs. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface TestCa extends CertFiles {
  readonly name: string;
  readonly dir: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function files(cert: string, key: string): CertFiles {
  return { cert, key, certPem: fs.readFileSync(cert, 'utf8'), keyPem: fs.readFileSync(key, 'utf8') };
}

/** A fresh self-signed CA (P-256) in `dir`, made with the openssl CLI at test time. */
export function createCa(dir: string, name = 'test-ca'): TestCa {
  fs.mkdirSync(dir, { recursive: true });
  openssl(
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  return { name, dir, ...files(path.join(dir, `${name}.pem`), path.join(dir, `${name}.key`)) };
}

/**
 * A leaf certificate signed by `ca`, with the given SANs (`DNS:foo.example.com`,
 * `URI:spiffe://cluster.local/ns/default/sa/foo`), usable as server and client certificate.
 */
export function issue(ca: TestCa, name: string, sans: string[], dir = ca.dir, subject = `/CN=${name}`): CertFiles {
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(
    ext,
    [`subjectAltName=${sans.join(',')}`, 'basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth', ''].join('\n'),
  );
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  openssl(
    [
      'x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${crypto.randomBytes(8).toString('hex')}`,
      '-days', '2', '-out', `${name}.pem`, '-extfile', ext,
    ],
    dir,
  );
  return files(path.join(dir, `${name}.pem`), path.join(dir, `${name}.key`));
}

export const spiffe = (sa: string, ns = 'default') => `URI:spiffe://cluster.local/ns/${ns}/sa/${sa}`;

/**
 * A filter chain's `transport_socket` (6-space indent, YAML) for mutual TLS: `server` presents
 * its certificate, clients must present one `ca` signed; ALPN h2 and http/1.1.
 */
export function mtlsTransportSocket(server: CertFiles, ca: TestCa): string {
  return `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: { filename: "${server.cert}" }
              private_key: { filename: "${server.key}" }
            validation_context:
              trusted_ca: { filename: "${ca.cert}" }
`;
}
