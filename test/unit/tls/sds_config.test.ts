import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import type { FieldError } from '../../../src/errors.js';
import { checkSecret, parseDownstreamTls, parseUpstreamTls, NO_SECRETS, secretSpecOf } from '../../../src/tls/context.js';
import { createCa, issue, type CertFiles, type TestCa } from '../../helpers/certs.js';
import { tmpDir } from '../../helpers/strait.js';

const DOWN = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const UP = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

const ts = (type: string, common: object, extra: object = {}) => ({ name: 'envoy.transport_sockets.tls', typed_config: { '@type': type, common_tls_context: common, ...extra } });
const secretValue = (c: CertFiles) => ({ name: 'default', tls_certificate: { certificate_chain: { inline_string: c.certPem }, private_key: { inline_string: c.keyPem } } });

describe('SDS references in TLS contexts', () => {
  let dir: string;
  let ca: TestCa;
  let a: CertFiles;
  let b: CertFiles;

  beforeAll(() => {
    dir = tmpDir('strait-sds-unit-');
    ca = createCa(path.join(dir, 'ca'));
    a = issue(ca, 'a', ['DNS:a.example']);
    b = issue(ca, 'b', ['DNS:b.example']);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('accepts ads and path_config_source references and resolves them when the secrets are there', () => {
    const errors: FieldError[] = [];
    const spec = parseDownstreamTls(
      ts(DOWN, {
        tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {}, resource_api_version: 'V3' } }],
        combined_validation_context: {
          default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://x' } }] },
          validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: { path_config_source: { path: '/etc/certs/root.yaml' } } },
        },
      }, { require_client_certificate: true }),
      'l',
      NO_SECRETS,
      errors,
    );
    expect(errors).toEqual([]);
    expect(spec!.sds!.refs.map((r) => [r.name, r.source.kind])).toEqual([['default', 'ads'], ['ROOTCA', 'file']]);
    // Before the secrets come: the missing one is named with its field path.
    const missing = spec!.sds!.resolve(() => undefined);
    expect(missing.spec).toBeNull();
    expect(missing.errors[0]).toMatchObject({ path: 'l.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name', message: 'SDS secret "default" has not arrived' });
    const full = spec!.sds!.resolve((r) =>
      r.name === 'default' ? secretSpecOf('default', secretValue(a), 'Secret "default"') : secretSpecOf('ROOTCA', { validation_context: { trusted_ca: { inline_string: ca.certPem } } }, 'Secret "ROOTCA"'),
    );
    expect(full.errors).toEqual([]);
    expect(full.spec!.certs).toHaveLength(1);
    expect(full.spec!.trustedCa).not.toBeNull();
    expect(full.spec!.sanMatchers).toHaveLength(1);
  });

  it('refuses SDS sources it cannot follow, naming the field', () => {
    const errors: FieldError[] = [];
    parseUpstreamTls(ts(UP, { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { api_config_source: { api_type: 'REST' } } }] }), 'c', NO_SECRETS, errors);
    parseUpstreamTls(ts(UP, { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { api_config_source: { api_type: 'GRPC' } } }] }), 'd', NO_SECRETS, errors);
    parseUpstreamTls(ts(UP, { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: {} }] }), 'e', NO_SECRETS, errors);
    expect(errors.map((e) => e.path)).toEqual([
      'c.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.api_config_source.api_type',
      'd.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.api_config_source.grpc_services',
      'e.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config',
    ]);
    expect(errors[0]!.message).toMatch(/REST is not supported for SDS/);
  });

  it('reads Istio\'s sds-grpc reference as a gRPC SDS source', () => {
    const errors: FieldError[] = [];
    const sds = { api_config_source: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }] }, resource_api_version: 'V3' };
    const spec = parseUpstreamTls(ts(UP, { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: sds }] }), 'c', NO_SECRETS, errors);
    expect(errors).toEqual([]);
    expect(spec!.sds!.refs[0]!.source).toEqual({ kind: 'grpc', cluster: 'sds-grpc', delta: false });
    // The older file form, `path:` directly in the config source.
    const old = parseUpstreamTls(ts(UP, { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { path: '/etc/sds/cert.yaml' } }] }), 'o', NO_SECRETS, errors);
    expect(errors).toEqual([]);
    expect(old!.sds!.refs[0]!.source).toEqual({ kind: 'file', path: '/etc/sds/cert.yaml', watchDir: null });
  });

  it('checks a secret before use: a key that is not the certificate\'s is refused with its field', () => {
    expect(checkSecret(secretValue(a))).toEqual([]);
    const bad = checkSecret({ tls_certificate: { certificate_chain: { inline_string: a.certPem }, private_key: { inline_string: b.keyPem } } });
    expect(bad).toEqual([{ path: 'tls_certificate.private_key.inline_string', message: 'does not match the certificate in tls_certificate.certificate_chain.inline_string' }]);
    const notPem = checkSecret({ validation_context: { trusted_ca: { inline_string: 'nope' } } });
    expect(notPem[0]!.path).toBe('validation_context.trusted_ca.inline_string');
  });
});
