import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { compileCidr } from '../../../src/rbac/cidr.js';

function cidr(address_prefix: string, prefix_len?: number) {
  const errors: FieldError[] = [];
  const m = compileCidr({ address_prefix, prefix_len }, 'r', errors);
  return { m, errors };
}

describe('CIDR ranges', () => {
  it('matches IPv4 ranges, including the v4-mapped form dual-stack sockets report', () => {
    const { m } = cidr('10.1.0.0', 16);
    expect(m!('10.1.255.3')).toBe(true);
    expect(m!('::ffff:10.1.2.3')).toBe(true);
    expect(m!('10.2.0.1')).toBe(false);
    expect(m!('::1')).toBe(false);
  });

  it('handles prefix lengths off byte boundaries and /32', () => {
    expect(cidr('192.168.0.128', 25).m!('192.168.0.200')).toBe(true);
    expect(cidr('192.168.0.128', 25).m!('192.168.0.127')).toBe(false);
    expect(cidr('127.0.0.1', 32).m!('127.0.0.1')).toBe(true);
    expect(cidr('127.0.0.1', 32).m!('127.0.0.2')).toBe(false);
  });

  it('matches IPv6 ranges with :: compression', () => {
    const { m } = cidr('fd00:1::', 32);
    expect(m!('fd00:1:0:0::5')).toBe(true);
    expect(m!('fd00:2::5')).toBe(false);
    expect(m!('10.0.0.1')).toBe(false);
  });

  it('treats an unset prefix_len as 0 (the whole family)', () => {
    expect(cidr('0.0.0.0').m!('8.8.8.8')).toBe(true);
    expect(cidr('0.0.0.0').m!('2001:db8::1')).toBe(false);
  });

  it('reports bad prefixes and lengths with their paths', () => {
    expect(cidr('nope', 8).errors[0]!.path).toBe('r.address_prefix');
    expect(cidr('10.0.0.0', 33).errors[0]!.path).toBe('r.prefix_len');
  });
});
