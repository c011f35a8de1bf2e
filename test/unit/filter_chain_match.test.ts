import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../src/errors.js';
import { compileMatch, selectChain } from '../../src/listener/filter_chain_match.js';

const peer = (address: string, port: number) => ({ family: (address.includes(':') ? 'IPv6' : 'IPv4') as 'IPv4' | 'IPv6', address, port });

describe('filter chain match', () => {
  const errors: FieldError[] = [];
  const chains = [
    compileMatch({}, 'c0', errors),
    compileMatch({ destination_port: 8080 }, 'c1', errors),
    compileMatch({ destination_port: 8080, prefix_ranges: [{ address_prefix: '127.0.0.0', prefix_len: 8 }] }, 'c2', errors),
    compileMatch({ source_prefix_ranges: [{ address_prefix: '10.1.0.0', prefix_len: 16 }] }, 'c3', errors),
  ];

  it('compiles without errors', () => expect(errors).toEqual([]));

  it('picks the most specific chain in Envoy order', () => {
    expect(selectChain(chains, peer('127.0.0.1', 8080), peer('127.0.0.1', 5000))).toBe(2);
    expect(selectChain(chains, peer('192.168.0.1', 8080), peer('127.0.0.1', 5000))).toBe(1);
    expect(selectChain(chains, peer('127.0.0.1', 9090), peer('10.1.2.3', 5000))).toBe(3);
    expect(selectChain(chains, peer('127.0.0.1', 9090), peer('127.0.0.1', 5000))).toBe(0);
  });

  it('matches IPv4 clients seen as IPv4-mapped IPv6', () => {
    expect(selectChain([chains[3]!], peer('::1', 80), peer('::ffff:10.1.0.9', 1))).toBe(0);
    expect(selectChain([chains[3]!], peer('::1', 80), peer('::ffff:10.2.0.9', 1))).toBe(-1);
  });

  it('refuses criteria it cannot evaluate yet', () => {
    const e: FieldError[] = [];
    compileMatch({ direct_source_prefix_ranges: [{ address_prefix: '10.0.0.0', prefix_len: 8 }] }, 'fcm', e);
    expect(e[0]?.path).toBe('fcm.direct_source_prefix_ranges');
  });
});
