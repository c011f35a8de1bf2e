import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { compileMatch, needsInspection, selectChain } from '../../../src/listener/filter_chain_match.js';

const local = { family: 'IPv4' as const, address: '127.0.0.1', port: 443 };
const remote = { family: 'IPv4' as const, address: '127.0.0.1', port: 5000 };
const tlsFacts = (sni: string, alpn: string[] = []) => ({ transport: 'tls', sni, alpn });

describe('filter chain match on TLS facts', () => {
  const errors: FieldError[] = [];
  const chains = [
    compileMatch({ server_names: ['api.example.com'] }, 'c0', errors),
    compileMatch({ server_names: ['*.example.com'] }, 'c1', errors),
    compileMatch({ server_names: ['*.eu.example.com'] }, 'c2', errors),
    compileMatch({ transport_protocol: 'tls', application_protocols: ['h2'] }, 'c3', errors),
    compileMatch({ transport_protocol: 'tls' }, 'c4', errors),
    compileMatch({ transport_protocol: 'raw_buffer' }, 'c5', errors),
  ];

  it('compiles, and knows which chains need the ClientHello', () => {
    expect(errors).toEqual([]);
    expect(chains.map(needsInspection)).toEqual([true, true, true, true, true, false]);
  });

  it('prefers an exact server name, then the longest wildcard suffix', () => {
    expect(selectChain(chains, local, remote, tlsFacts('api.example.com'))).toBe(0);
    expect(selectChain(chains, local, remote, tlsFacts('www.example.com'))).toBe(1);
    expect(selectChain(chains, local, remote, tlsFacts('a.eu.example.com'))).toBe(2);
    // The bare domain is not covered by its own wildcard.
    expect(selectChain(chains, local, remote, tlsFacts('example.com'))).toBe(4);
  });

  it('then matches transport protocol and ALPN', () => {
    expect(selectChain(chains, local, remote, tlsFacts('other.test', ['http/1.1', 'h2']))).toBe(3);
    expect(selectChain(chains, local, remote, tlsFacts('other.test', ['http/1.1']))).toBe(4);
    expect(selectChain(chains, local, remote, { transport: 'raw_buffer', sni: '', alpn: [] })).toBe(5);
  });

  it('treats chains that differ only in server names as different', () => {
    expect(chains[0]!.key).not.toBe(chains[1]!.key);
    const e: FieldError[] = [];
    compileMatch({ server_names: ['a.*.example'] }, 'fcm', e);
    expect(e[0]?.path).toBe('fcm.server_names[0]');
  });
});
