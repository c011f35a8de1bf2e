import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { compileSanMatchers, parseSubjectAltName, sansMatch } from '../../../src/tls/san.js';

describe('subject alt names', () => {
  it('parses Node\'s subjectaltname text, quoted values included', () => {
    expect(parseSubjectAltName('DNS:a.example, URI:spiffe://cluster.local/ns/default/sa/foo, IP Address:10.0.0.1, email:x@y.z')).toEqual([
      { type: 'DNS', value: 'a.example' },
      { type: 'URI', value: 'spiffe://cluster.local/ns/default/sa/foo' },
      { type: 'IP_ADDRESS', value: '10.0.0.1' },
      { type: 'EMAIL', value: 'x@y.z' },
    ]);
    expect(parseSubjectAltName('URI:"spiffe://a/b, c", DNS:b.example')).toEqual([
      { type: 'URI', value: 'spiffe://a/b, c' },
      { type: 'DNS', value: 'b.example' },
    ]);
    expect(parseSubjectAltName(undefined)).toEqual([]);
  });

  const compile = (vc: object) => {
    const errors: FieldError[] = [];
    const m = compileSanMatchers(vc, 'vc', errors);
    expect(errors).toEqual([]);
    return m;
  };

  it('matches typed matchers only against their SAN type', () => {
    const m = compile({ match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://cluster.local/ns/default/' } }] });
    expect(sansMatch(m, parseSubjectAltName('URI:spiffe://cluster.local/ns/default/sa/foo'))).toBe(true);
    expect(sansMatch(m, parseSubjectAltName('URI:spiffe://cluster.local/ns/other/sa/foo'))).toBe(false);
    // The same text as a DNS name does not count for a URI matcher.
    expect(sansMatch(m, [{ type: 'DNS', value: 'spiffe://cluster.local/ns/default/sa/foo' }])).toBe(false);
  });

  it('lets a wildcard DNS certificate satisfy an exact name one label under it', () => {
    const m = compile({ match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'api.svc.example' } }] });
    expect(sansMatch(m, parseSubjectAltName('DNS:*.svc.example'))).toBe(true);
    expect(sansMatch(m, parseSubjectAltName('DNS:*.example'))).toBe(false);
  });

  it('matches the deprecated untyped list against any SAN type, and IPs canonically', () => {
    const m = compile({ match_subject_alt_names: [{ exact: '::1' }] });
    expect(sansMatch(m, parseSubjectAltName('IP Address:0:0:0:0:0:0:0:1'))).toBe(true);
  });

  it('rejects SAN types it cannot check', () => {
    const errors: FieldError[] = [];
    compileSanMatchers({ match_typed_subject_alt_names: [{ san_type: 'OTHER_NAME', matcher: { exact: 'x' } }] }, 'vc', errors);
    expect(errors[0]?.path).toBe('vc.match_typed_subject_alt_names[0].san_type');
  });
});
