import type crypto from 'node:crypto';
import fs from 'node:fs';
import type tls from 'node:tls';
import { nodeCrypto, nodeTls } from './lazy_builtins.js';
import type { FieldError } from '../errors.js';
import { compileSanMatchers, type SanMatcher } from './san.js';

type Obj = Record<string, any>;

export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const DOWNSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const RAW_BUFFER_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

/** Where a certificate, key or CA bundle comes from; `field` is its config path, for errors. */
export type DataSource =
  | { readonly kind: 'file'; readonly path: string; readonly field: string }
  | { readonly kind: 'inline'; readonly value: Buffer; readonly field: string };

export interface CertSpec {
  readonly chain: DataSource;
  readonly key: DataSource;
  readonly password: DataSource | null;
}

/** A validated `CommonTlsContext` plus the side-specific fields: frozen config, no I/O state. */
export interface TlsContextSpec {
  readonly side: 'server' | 'client';
  /** The config path of the context, for logs. */
  readonly where: string;
  readonly certs: readonly CertSpec[];
  readonly trustedCa: DataSource | null;
  readonly crl: DataSource | null;
  readonly sanMatchers: readonly SanMatcher[];
  /** trust_chain_verification: ACCEPT_UNTRUSTED. */
  readonly acceptUntrusted: boolean;
  readonly allowExpired: boolean;
  readonly alpn: readonly string[];
  readonly minVersion: tls.SecureVersion;
  readonly maxVersion: tls.SecureVersion;
  readonly ciphers: string | null;
  readonly ecdhCurve: string | null;
  /** Server: refuse clients without a (valid) certificate. */
  readonly requireClientCert: boolean;
  /** Server: refuse handshakes without SNI. */
  readonly requireSni: boolean;
  /** Client: the SNI to send ('' = none, as Envoy). */
  readonly sni: string;
  /**
   * Set when the context names SDS secrets (`sds_config`): the fields above are then only the
   * static part, and the provider resolves the full spec from the secrets as they arrive.
   */
  readonly sds?: SdsBinding | null;
}

/**
 * Where a dynamic secret comes from: the ADS stream, a stand-alone SDS gRPC service behind a
 * static cluster (Istio's `sds-grpc`), or a file in Envoy's filesystem-xDS shape.
 */
export type SdsSource =
  | { readonly kind: 'ads' }
  | { readonly kind: 'grpc'; readonly cluster: string; readonly delta: boolean }
  | { readonly kind: 'file'; readonly path: string; readonly watchDir: string | null };

/** One `sds_config` reference of a context; `field` is its config path. */
export interface SdsRef {
  readonly name: string;
  readonly source: SdsSource;
  readonly field: string;
}

/** Finds the current value of a referenced secret (undefined: not arrived yet). */
export type SdsLookup = (ref: SdsRef) => SecretSpec | undefined;

/** A context that depends on SDS secrets: its references, and how to build the full spec from them. */
export interface SdsBinding {
  readonly refs: readonly SdsRef[];
  /** The full spec with the secrets' material loaded and checked, or the errors. */
  resolve(lookup: SdsLookup): { spec: TlsContextSpec | null; errors: FieldError[] };
}

/** What the parsers collect while reading SDS references; `lookup` null = parse phase (secrets not resolved). */
interface SdsState {
  readonly refs: SdsRef[];
  readonly lookup: SdsLookup | null;
}

/** A static secret (`static_resources.secrets[]`), kept as config with its own path. */
export interface SecretSpec {
  readonly name: string;
  readonly path: string;
  readonly tlsCertificate: Obj | null;
  readonly validationContext: Obj | null;
}

export type SecretTable = ReadonlyMap<string, SecretSpec>;

export const NO_SECRETS: SecretTable = new Map();

/** `static_resources.secrets`: names must be unique; kinds Strait does not use are reported. */
export function parseSecrets(list: Obj[] | undefined, path: string, errors: FieldError[], warnings: FieldError[]): Map<string, SecretSpec> {
  const out = new Map<string, SecretSpec>();
  (list ?? []).forEach((s, i) => {
    const p = `${path}[${i}]`;
    const name = String(s.name ?? '');
    if (!name) errors.push({ path: `${p}.name`, message: 'is required (transport sockets refer to secrets by name)' });
    else if (out.has(name)) errors.push({ path: `${p}.name`, message: `duplicate secret name "${name}" (also ${out.get(name)!.path})` });
    for (const f of ['session_ticket_keys', 'generic_secret'] as const) {
      if (s[f] !== undefined) warnings.push({ path: `${p}.${f}`, message: 'is not used by Strait; ignored' });
    }
    if (name) out.set(name, { name, path: p, tlsCertificate: s.tls_certificate ?? null, validationContext: s.validation_context ?? null });
  });
  return out;
}

function dataSource(ds: Obj | undefined, path: string, errors: FieldError[]): DataSource | null {
  if (!ds) return null;
  if (typeof ds.filename === 'string') return { kind: 'file', path: ds.filename, field: `${path}.filename` };
  if (typeof ds.inline_string === 'string') return { kind: 'inline', value: Buffer.from(ds.inline_string), field: `${path}.inline_string` };
  // proto3 JSON carries bytes as base64.
  if (typeof ds.inline_bytes === 'string') return { kind: 'inline', value: Buffer.from(ds.inline_bytes, 'base64'), field: `${path}.inline_bytes` };
  if (typeof ds.environment_variable === 'string') {
    const v = process.env[ds.environment_variable];
    if (v === undefined) {
      errors.push({ path: `${path}.environment_variable`, message: `environment variable ${ds.environment_variable} is not set` });
      return null;
    }
    return { kind: 'inline', value: Buffer.from(v), field: `${path}.environment_variable` };
  }
  errors.push({ path, message: 'needs filename, inline_string, inline_bytes or environment_variable' });
  return null;
}

function certSpec(tc: Obj, path: string, errors: FieldError[]): CertSpec | null {
  for (const f of ['private_key_provider', 'pkcs12', 'ocsp_staple', 'signed_certificate_timestamp'] as const) {
    if (tc[f] !== undefined) errors.push({ path: `${path}.${f}`, message: 'is not supported' });
  }
  const chain = dataSource(tc.certificate_chain, `${path}.certificate_chain`, errors);
  const key = dataSource(tc.private_key, `${path}.private_key`, errors);
  if (!tc.certificate_chain) errors.push({ path: `${path}.certificate_chain`, message: 'is required' });
  if (!tc.private_key) errors.push({ path: `${path}.private_key`, message: 'is required' });
  const password = dataSource(tc.password, `${path}.password`, errors);
  return chain && key ? { chain, key, password } : null;
}

/** `sds_config` of a secret reference: ADS or a file (path_config_source, or the older `path`). */
function sdsSource(src: Obj, path: string, errors: FieldError[]): SdsSource | null {
  if (src.resource_api_version !== undefined && src.resource_api_version !== 'V3') {
    errors.push({ path: `${path}.resource_api_version`, message: 'only V3 is supported' });
    return null;
  }
  if (src.ads !== undefined) return { kind: 'ads' };
  const acs = src.api_config_source as Obj | undefined;
  if (acs) {
    const p = `${path}.api_config_source`;
    const apiType = String(acs.api_type ?? '');
    if (apiType !== 'GRPC' && apiType !== 'DELTA_GRPC') {
      errors.push({ path: `${p}.api_type`, message: `${apiType || '(unset)'} is not supported for SDS (GRPC or DELTA_GRPC)` });
      return null;
    }
    if (acs.transport_api_version !== undefined && acs.transport_api_version !== 'V3') {
      errors.push({ path: `${p}.transport_api_version`, message: 'only V3 is supported' });
      return null;
    }
    const services = (acs.grpc_services ?? []) as Obj[];
    const cluster = services[0]?.envoy_grpc?.cluster_name;
    if (services.length !== 1 || typeof cluster !== 'string' || !cluster) {
      errors.push({ path: `${p}.grpc_services`, message: 'needs exactly one envoy_grpc service naming a static cluster' });
      return null;
    }
    return { kind: 'grpc', cluster, delta: apiType === 'DELTA_GRPC' };
  }
  const pcs = src.path_config_source as Obj | undefined;
  const file = pcs?.path ?? src.path;
  if (typeof file === 'string' && file) {
    const wd = pcs?.watched_directory?.path;
    return { kind: 'file', path: file, watchDir: typeof wd === 'string' && wd ? wd : null };
  }
  errors.push({ path, message: 'SDS needs ads: {}, api_config_source (GRPC to a static cluster) or path_config_source: { path }' });
  return null;
}

/**
 * Resolves a secret reference: a static secret without sds_config (as Envoy for static config),
 * or an SDS secret — recorded in `sds`, and looked up when resolving.
 */
function staticSecret(ref: Obj, path: string, secrets: SecretTable, errors: FieldError[], sds: SdsState): SecretSpec | null {
  const name = String(ref.name ?? '');
  if (ref.sds_config !== undefined) {
    if (!name) {
      errors.push({ path: `${path}.name`, message: 'is required (the SDS secret to subscribe to)' });
      return null;
    }
    const source = sdsSource(ref.sds_config as Obj, `${path}.sds_config`, errors);
    if (!source) return null;
    const r: SdsRef = { name, source, field: path };
    sds.refs.push(r);
    if (!sds.lookup) return null;
    const s = sds.lookup(r);
    if (!s) errors.push({ path: `${path}.name`, message: `SDS secret "${name}" has not arrived` });
    return s ?? null;
  }
  const s = secrets.get(name);
  if (!s) errors.push({ path: `${path}.name`, message: `no static secret named "${name}" (static_resources.secrets)` });
  return s ?? null;
}

const VERSIONS: Record<string, tls.SecureVersion | null> = {
  TLS_AUTO: null,
  TLSv1_0: 'TLSv1',
  TLSv1_1: 'TLSv1.1',
  TLSv1_2: 'TLSv1.2',
  TLSv1_3: 'TLSv1.3',
};
const VERSION_ORDER: tls.SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

interface Validation {
  trustedCa: DataSource | null;
  crl: DataSource | null;
  sanMatchers: SanMatcher[];
  acceptUntrusted: boolean;
  allowExpired: boolean;
  /** A validation context comes from an SDS secret not resolved yet (parse phase). */
  pending: boolean;
}

function validation(vc: Obj, path: string, errors: FieldError[], into: Validation): void {
  for (const f of ['verify_certificate_spki', 'verify_certificate_hash', 'custom_validator_config', 'trusted_ca_provider', 'ca_certificate_provider_instance'] as const) {
    const v = vc[f];
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) errors.push({ path: `${path}.${f}`, message: 'is not supported' });
  }
  if (vc.trusted_ca) into.trustedCa = dataSource(vc.trusted_ca, `${path}.trusted_ca`, errors);
  if (vc.crl) into.crl = dataSource(vc.crl, `${path}.crl`, errors);
  into.sanMatchers.push(...compileSanMatchers(vc, path, errors));
  if (vc.allow_expired_certificate === true) into.allowExpired = true;
  if (vc.trust_chain_verification === 'ACCEPT_UNTRUSTED') into.acceptUntrusted = true;
  if ((vc.match_typed_subject_alt_names?.length || vc.match_subject_alt_names?.length) && !into.trustedCa && !into.acceptUntrusted && !into.pending) {
    // Envoy refuses this too: a name check on an unverified certificate proves nothing.
    errors.push({ path: `${path}.trusted_ca`, message: 'is required when subject alt names are matched' });
  }
}

function commonContext(side: 'server' | 'client', c: Obj, path: string, secrets: SecretTable, errors: FieldError[], sds: SdsState): Omit<TlsContextSpec, 'requireClientCert' | 'requireSni' | 'sni'> {
  for (const f of ['tls_certificate_provider_instance', 'tls_certificate_certificate_provider', 'tls_certificate_certificate_provider_instance', 'validation_context_certificate_provider', 'validation_context_certificate_provider_instance', 'custom_handshaker', 'key_log'] as const) {
    if (c[f] !== undefined) errors.push({ path: `${path}.${f}`, message: 'is not supported' });
  }
  const certs: CertSpec[] = [];
  ((c.tls_certificates ?? []) as Obj[]).forEach((tc, i) => {
    const s = certSpec(tc, `${path}.tls_certificates[${i}]`, errors);
    if (s) certs.push(s);
  });
  ((c.tls_certificate_sds_secret_configs ?? []) as Obj[]).forEach((ref, i) => {
    const s = staticSecret(ref, `${path}.tls_certificate_sds_secret_configs[${i}]`, secrets, errors, sds);
    if (!s) return;
    if (!s.tlsCertificate) {
      errors.push({ path: `${path}.tls_certificate_sds_secret_configs[${i}].name`, message: `secret "${s.name}" has no tls_certificate` });
      return;
    }
    const spec = certSpec(s.tlsCertificate, `${s.path}.tls_certificate`, errors);
    if (spec) certs.push(spec);
  });

  const v: Validation = { trustedCa: null, crl: null, sanMatchers: [], acceptUntrusted: false, allowExpired: false, pending: false };
  const fromSecret = (ref: Obj, p: string) => {
    const before = sds.refs.length;
    const s = staticSecret(ref, p, secrets, errors, sds);
    if (!sds.lookup && sds.refs.length > before) v.pending = true;
    if (s && !s.validationContext) errors.push({ path: `${p}.name`, message: `secret "${s.name}" has no validation_context` });
    if (s?.validationContext) validation(s.validationContext, `${s.path}.validation_context`, errors, v);
  };
  if (c.validation_context) validation(c.validation_context, `${path}.validation_context`, errors, v);
  if (c.validation_context_sds_secret_config) fromSecret(c.validation_context_sds_secret_config, `${path}.validation_context_sds_secret_config`);
  if (c.combined_validation_context) {
    // Istio's shape: a default context (usually the SAN matchers) merged with the secret's CA.
    const cv = c.combined_validation_context as Obj;
    const p = `${path}.combined_validation_context`;
    if (cv.validation_context_sds_secret_config) fromSecret(cv.validation_context_sds_secret_config, `${p}.validation_context_sds_secret_config`);
    if (cv.default_validation_context) validation(cv.default_validation_context, `${p}.default_validation_context`, errors, v);
  }

  const tp = (c.tls_params ?? {}) as Obj;
  const minName = String(tp.tls_minimum_protocol_version ?? 'TLS_AUTO');
  const maxName = String(tp.tls_maximum_protocol_version ?? 'TLS_AUTO');
  // Envoy's defaults: TLS 1.2 to TLS 1.3 on both sides.
  const minVersion = VERSIONS[minName] ?? 'TLSv1.2';
  const maxVersion = VERSIONS[maxName] ?? 'TLSv1.3';
  if (VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)) {
    errors.push({ path: `${path}.tls_params.tls_minimum_protocol_version`, message: `${minName} is above the maximum ${maxName}` });
  }
  // BoringSSL's equal-preference groups (`[A|B]`) have no OpenSSL spelling; keep the order.
  const ciphers = (tp.cipher_suites as string[] | undefined)?.flatMap((s) => s.replace(/[[\]]/g, '').split('|')).join(':') || null;
  const ecdhCurve = (tp.ecdh_curves as string[] | undefined)?.join(':') || null;
  if (tp.signature_algorithms?.length) errors.push({ path: `${path}.tls_params.signature_algorithms`, message: 'is not supported' });

  const { pending: _, ...validated } = v;
  return {
    side,
    where: path,
    certs,
    ...validated,
    alpn: Object.freeze([...((c.alpn_protocols ?? []) as string[])]),
    minVersion,
    maxVersion,
    ciphers,
    ecdhCurve,
  };
}

/** The typed_config of a transport_socket, or null for raw_buffer (plaintext). */
function tlsTypedConfig(ts: Obj, path: string, want: string, errors: FieldError[]): Obj | null {
  const tc = (ts.typed_config ?? {}) as Obj;
  const type = tc['@type'] as string | undefined;
  if (type === RAW_BUFFER_TYPE || (!type && ts.name === 'envoy.transport_sockets.raw_buffer')) return null;
  if (type !== want) {
    errors.push({ path: type ? `${path}.typed_config.@type` : `${path}.name`, message: `unsupported transport socket ${type ?? ts.name ?? ''} (supported: ${want}, raw_buffer)` });
    return null;
  }
  return tc;
}

/**
 * Parses a context once without its SDS secrets; when it names any, the spec carries a binding
 * that re-parses it with the secrets' current values (the same code path, so the same checks).
 */
function withSds(parse: (sds: SdsState, errors: FieldError[]) => TlsContextSpec | null, errors: FieldError[]): TlsContextSpec | null {
  const first: SdsState = { refs: [], lookup: null };
  const spec = parse(first, errors);
  if (!spec || first.refs.length === 0) return spec;
  const refs = Object.freeze([...first.refs]);
  const binding: SdsBinding = {
    refs,
    resolve(lookup) {
      const errs: FieldError[] = [];
      const full = parse({ refs: [], lookup }, errs);
      return { spec: full && !errs.length ? Object.freeze({ ...full, sds: binding }) : null, errors: errs };
    },
  };
  return Object.freeze({ ...spec, sds: binding });
}

export function parseDownstreamTls(ts: Obj, path: string, secrets: SecretTable, errors: FieldError[]): TlsContextSpec | null {
  const tc = tlsTypedConfig(ts, path, DOWNSTREAM_TLS_TYPE, errors);
  if (!tc) return null;
  const p = `${path}.typed_config`;
  return withSds((sds, errors) => {
    const start = errors.length;
    if (tc.ocsp_staple_policy !== undefined && tc.ocsp_staple_policy !== 'LENIENT_STAPLING') errors.push({ path: `${p}.ocsp_staple_policy`, message: 'is not supported' });
    const common = commonContext('server', tc.common_tls_context ?? {}, `${p}.common_tls_context`, secrets, errors, sds);
    // Parse phase with SDS references: what they will bring is checked when they arrive.
    const pending = !sds.lookup && sds.refs.length > 0;
    if (common.certs.length === 0 && !pending) errors.push({ path: `${p}.common_tls_context.tls_certificates`, message: 'a TLS listener needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)' });
    const requireClientCert = tc.require_client_certificate === true;
    if (requireClientCert && !common.trustedCa && !pending) errors.push({ path: `${p}.require_client_certificate`, message: 'needs a validation_context with trusted_ca' });
    if (errors.length > start) return null;
    const spec: TlsContextSpec = { ...common, requireClientCert, requireSni: tc.require_sni === true, sni: '' };
    if (pending) return spec;
    return checkMaterials(spec, errors) ? Object.freeze(spec) : null;
  }, errors);
}

export function parseUpstreamTls(ts: Obj, path: string, secrets: SecretTable, errors: FieldError[]): TlsContextSpec | null {
  const tc = tlsTypedConfig(ts, path, UPSTREAM_TLS_TYPE, errors);
  if (!tc) return null;
  const p = `${path}.typed_config`;
  return withSds((sds, errors) => {
    const start = errors.length;
    const common = commonContext('client', tc.common_tls_context ?? {}, `${p}.common_tls_context`, secrets, errors, sds);
    if (errors.length > start) return null;
    const spec: TlsContextSpec = { ...common, requireClientCert: false, requireSni: false, sni: String(tc.sni ?? '') };
    if (!sds.lookup && sds.refs.length > 0) return spec;
    return checkMaterials(spec, errors) ? Object.freeze(spec) : null;
  }, errors);
}

// ---- Materials: the bytes behind a spec, and the SecureContext built from them ----

/** A certificate, key or CA that cannot be used; `field` is the config path to blame. */
export class MaterialError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function read(ds: DataSource): Buffer {
  if (ds.kind === 'inline') return ds.value;
  try {
    return fs.readFileSync(ds.path);
  } catch (err) {
    throw new MaterialError(ds.field, `cannot read ${ds.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export interface Materials {
  readonly certs: readonly { chain: Buffer; key: Buffer; password: string | undefined }[];
  readonly ca: Buffer | null;
  readonly crl: Buffer | null;
}

/** Every file a spec reads: what rotation watches. */
export function filesOf(spec: TlsContextSpec): string[] {
  const all = [...spec.certs.flatMap((c) => [c.chain, c.key, c.password]), spec.trustedCa, spec.crl];
  return [...new Set(all.flatMap((d) => (d?.kind === 'file' ? [d.path] : [])))];
}

export function readMaterials(spec: TlsContextSpec): Materials {
  return {
    certs: spec.certs.map((c) => ({ chain: read(c.chain), key: read(c.key), password: c.password ? read(c.password).toString('utf8').trim() : undefined })),
    ca: spec.trustedCa ? read(spec.trustedCa) : null,
    crl: spec.crl ? read(spec.crl) : null,
  };
}

function shortError(err: unknown): string {
  // OpenSSL messages carry an error-queue prefix ("error:0480006C:PEM routines::"); keep the words.
  return ((err as Error).message ?? String(err)).replace(/^error:[0-9A-F]+:/, '').replace(/^[^:]*::/, '');
}

/**
 * Builds the SecureContext, blaming the field at fault: a certificate that does not parse,
 * a key that does not parse (or needs a password), a key that is not the certificate's.
 */
export function buildSecureContext(spec: TlsContextSpec, m: Materials): tls.SecureContext {
  m.certs.forEach((c, i) => {
    const s = spec.certs[i]!;
    let cert: crypto.X509Certificate;
    try {
      cert = new (nodeCrypto().X509Certificate)(c.chain);
    } catch (err) {
      throw new MaterialError(s.chain.field, `not a PEM certificate: ${shortError(err)}`);
    }
    let key: crypto.KeyObject;
    try {
      key = nodeCrypto().createPrivateKey({ key: c.key, ...(c.password !== undefined ? { passphrase: c.password } : {}) });
    } catch (err) {
      throw new MaterialError(s.key.field, `not a usable PEM private key: ${shortError(err)}`);
    }
    if (!cert.checkPrivateKey(key)) throw new MaterialError(s.key.field, `does not match the certificate in ${s.chain.field}`);
  });
  if (m.ca) {
    try {
      // X509Certificate reads the first certificate of a bundle: enough to reject non-PEM.
      new (nodeCrypto().X509Certificate)(m.ca);
    } catch (err) {
      throw new MaterialError(spec.trustedCa!.field, `not a PEM CA bundle: ${shortError(err)}`);
    }
  }
  try {
    return nodeTls().createSecureContext({
      cert: m.certs.map((c) => c.chain),
      key: m.certs.map((c) => ({ pem: c.key, ...(c.password !== undefined ? { passphrase: c.password } : {}) })),
      ...(m.ca ? { ca: m.ca } : {}),
      ...(m.crl ? { crl: m.crl } : {}),
      minVersion: spec.minVersion,
      maxVersion: spec.maxVersion,
      ...(spec.ciphers ? { ciphers: spec.ciphers } : {}),
      ...(spec.ecdhCurve ? { ecdhCurve: spec.ecdhCurve } : {}),
    });
  } catch (err) {
    throw new MaterialError(spec.where, shortError(err));
  }
}

/** Loads a spec's certificates once at config time so bad material fails with its field path. */
function checkMaterials(spec: TlsContextSpec, errors: FieldError[]): boolean {
  try {
    buildSecureContext(spec, readMaterials(spec));
    return true;
  } catch (err) {
    if (err instanceof MaterialError) errors.push({ path: err.field, message: err.message });
    else errors.push({ path: spec.where, message: shortError(err) });
    return false;
  }
}

/** A Secret resource (SDS) as the context parsers use it; `path` prefixes its field paths in logs. */
export function secretSpecOf(name: string, value: Obj, path: string): SecretSpec {
  return { name, path, tlsCertificate: value.tls_certificate ?? null, validationContext: value.validation_context ?? null };
}

/**
 * Checks that an SDS Secret can be used before it replaces the current one: certificate and
 * key parse and match, the CA bundle parses. Paths are relative to the secret, for the NACK.
 */
export function checkSecret(value: Obj): FieldError[] {
  const errors: FieldError[] = [];
  const certs: CertSpec[] = [];
  if (value.tls_certificate) {
    const c = certSpec(value.tls_certificate as Obj, 'tls_certificate', errors);
    if (c) certs.push(c);
  }
  const v: Validation = { trustedCa: null, crl: null, sanMatchers: [], acceptUntrusted: false, allowExpired: false, pending: false };
  if (value.validation_context) validation(value.validation_context as Obj, 'validation_context', errors, v);
  if (!value.tls_certificate && !value.validation_context && !value.generic_secret && !value.session_ticket_keys) {
    errors.push({ path: '', message: 'has neither tls_certificate nor validation_context' });
  }
  if (errors.length) return errors;
  const { pending: _, ...validated } = v;
  const spec: TlsContextSpec = {
    side: 'server',
    where: '',
    certs,
    ...validated,
    alpn: [],
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: null,
    ecdhCurve: null,
    requireClientCert: false,
    requireSni: false,
    sni: '',
  };
  checkMaterials(spec, errors);
  return errors;
}
