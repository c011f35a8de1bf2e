import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../src/errors.js';
import type { PeerAddress } from '../../src/io/engine.js';
import { compileChainMatcher, type MatchConnection } from '../../src/listener/chain_matcher.js';

type Obj = Record<string, any>;
const NET = 'type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.';
const input = (name: string) => ({ name, typed_config: { '@type': `${NET}${name}` } });
const act = (chain: string) => ({ action: { name: chain, typed_config: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: chain } } });
const ipm = (ranges: Obj[]) => ({ name: 'ip', typed_config: { '@type': 'type.googleapis.com/xds.type.matcher.v3.IPMatcher', range_matchers: ranges } });
const v4 = (address: string, port: number): PeerAddress => ({ family: 'IPv4', address, port });

function conn(o: { dst?: string; dport?: number; src?: string; sport?: number; direct?: string; sni?: string; alpn?: string[]; tls?: boolean } = {}): MatchConnection {
  const remote = v4(o.src ?? '10.0.0.9', o.sport ?? 40000);
  return {
    local: v4(o.dst ?? '10.0.0.1', o.dport ?? 8080),
    remote,
    directRemote: o.direct ? v4(o.direct, 1) : remote,
    facts: { transport: o.tls ? 'tls' : 'raw_buffer', sni: o.sni ?? '', alpn: o.alpn ?? [] },
  };
}

function compile(m: Obj) {
  const errors: FieldError[] = [];
  const c = compileChainMatcher(m, 'fcm', errors);
  expect(errors).toEqual([]);
  return c;
}

describe('filter_chain_matcher', () => {
  it('exact map on the destination port, on_no_match when the key is absent or its nested matcher finds nothing', () => {
    const c = compile({
      matcher_tree: {
        input: input('DestinationPortInput'),
        exact_match_map: {
          map: {
            '8080': act('web'),
            // A nested tree without on_no_match: no ALPN value matches nothing, so the outer on_no_match answers.
            '9090': { matcher: { matcher_tree: { input: input('ApplicationProtocolInput'), exact_match_map: { map: { "'h2'": act('grpc') } } } } },
          },
        },
      },
      on_no_match: act('fallback'),
    });
    expect(c.evaluate(conn({ dport: 8080 }))).toBe('web');
    expect(c.evaluate(conn({ dport: 9090, alpn: ['h2'] }))).toBe('grpc');
    expect(c.evaluate(conn({ dport: 9090, alpn: ['h2', 'http/1.1'] }))).toBe('fallback');
    expect(c.evaluate(conn({ dport: 9090 }))).toBe('fallback');
    expect(c.evaluate(conn({ dport: 1 }))).toBe('fallback');
    expect([...c.actions].sort()).toEqual(['fallback', 'grpc', 'web']);
    expect(c.inspects).toBe(true);
  });

  it("formats application protocols as Envoy does: quoted, comma-separated ('h2','http/1.1')", () => {
    const c = compile({ matcher_tree: { input: input('ApplicationProtocolInput'), exact_match_map: { map: { "'h2','http/1.1'": act('both') } } } });
    expect(c.evaluate(conn({ alpn: ['h2', 'http/1.1'] }))).toBe('both');
    expect(c.evaluate(conn({ alpn: ['h2'] }))).toBeNull();
  });

  it('prefix map tries the longest prefix first and falls back to shorter ones', () => {
    const c = compile({
      matcher_tree: {
        input: input('ServerNameInput'),
        prefix_match_map: {
          map: {
            api: act('api'),
            'api.internal': { matcher: { matcher_tree: { input: input('TransportProtocolInput'), exact_match_map: { map: { tls: act('internal-tls') } } } } },
          },
        },
      },
    });
    expect(c.evaluate(conn({ sni: 'api.internal.example', tls: true }))).toBe('internal-tls');
    expect(c.evaluate(conn({ sni: 'api.internal.example' }))).toBe('api');
    expect(c.evaluate(conn({ sni: 'apix' }))).toBe('api');
    // No SNI is no value: nothing matches.
    expect(c.evaluate(conn({}))).toBeNull();
  });

  it('IPMatcher: the most specific range first; a less specific one only when not exclusive', () => {
    const failing = { matcher: { matcher_tree: { input: input('DestinationPortInput'), exact_match_map: { map: { '1': act('never') } } } } };
    const c = compile({
      matcher_tree: {
        input: input('DestinationIPInput'),
        custom_match: ipm([
          { ranges: [{ address_prefix: '10.1.0.0', prefix_len: 16 }], on_match: act('wide') },
          { ranges: [{ address_prefix: '10.1.2.3', prefix_len: 32 }], on_match: failing },
          { ranges: [{ address_prefix: '10.2.0.0', prefix_len: 16 }], on_match: act('wide-exclusive'), exclusive: true },
          { ranges: [{ address_prefix: '10.2.2.3' }], on_match: failing },
          { ranges: [{ address_prefix: '10.2.9.0', prefix_len: 24 }], on_match: act('narrow') },
        ]),
      },
      on_no_match: act('none'),
    });
    expect(c.evaluate(conn({ dst: '10.1.2.3' }))).toBe('wide'); // the /32's nested matcher failed
    expect(c.evaluate(conn({ dst: '10.1.7.7' }))).toBe('wide');
    expect(c.evaluate(conn({ dst: '10.2.2.3' }))).toBe('none'); // the exclusive /16 gives way to the /32
    expect(c.evaluate(conn({ dst: '10.2.9.1' }))).toBe('narrow');
    expect(c.evaluate(conn({ dst: '10.2.7.7' }))).toBe('wide-exclusive');
    expect(c.evaluate(conn({ dst: '192.168.0.1' }))).toBe('none');
    expect(c.inspects).toBe(false);
  });

  it('matcher_list: first predicate that holds and yields an action; and / or / not; source inputs', () => {
    const single = (name: string, value_match: Obj) => ({ single_predicate: { input: input(name), value_match } });
    const c = compile({
      matcher_list: {
        matchers: [
          // Holds, but its nested matcher finds nothing: the list goes on.
          { predicate: single('SourcePortInput', { exact: '40000' }), on_match: { matcher: { matcher_tree: { input: input('ServerNameInput'), exact_match_map: { map: { x: act('x') } } } } } },
          { predicate: { and_matcher: { predicate: [single('SourceIPInput', { prefix: '10.0.' }), { not_matcher: single('DestinationPortInput', { exact: '22' }) }] } }, on_match: act('internal') },
          { predicate: { or_matcher: { predicate: [single('DirectSourceIPInput', { exact: '192.168.1.1' }), single('SourceTypeInput', { exact: 'local' })] } }, on_match: act('trusted') },
        ],
      },
    });
    expect(c.evaluate(conn({ src: '10.0.3.4' }))).toBe('internal');
    expect(c.evaluate(conn({ src: '10.0.3.4', dport: 22 }))).toBeNull();
    expect(c.evaluate(conn({ src: '172.16.0.1', direct: '192.168.1.1' }))).toBe('trusted');
    expect(c.evaluate(conn({ src: '127.0.0.1' }))).toBe('trusted');
    expect(c.evaluate(conn({ src: '10.0.0.1', dst: '10.0.0.1', dport: 22 }))).toBe('trusted'); // same IP: local
    expect(c.evaluate(conn({ src: '172.16.0.1' }))).toBeNull();
  });

  it('names the field of every problem', () => {
    const errors: FieldError[] = [];
    compileChainMatcher(
      {
        matcher_tree: {
          input: { name: 'x', typed_config: { '@type': `${NET}FilterStateInput` } },
          exact_match_map: { map: { a: { action: { name: 'a', typed_config: { '@type': 'type.googleapis.com/google.protobuf.Struct' } } }, b: { ...act('b'), keep_matching: true } } },
        },
        on_no_match: { matcher: { matcher_list: { matchers: [{ predicate: { single_predicate: { input: input('SourceIPInput'), value_match: { safe_regex: { regex: '(' } } } }, on_match: act('c') }] } } },
      },
      'l.filter_chain_matcher',
      errors,
    );
    expect(errors.map((e) => e.path)).toEqual([
      'l.filter_chain_matcher.on_no_match.matcher.matcher_list.matchers[0].predicate.single_predicate.value_match.safe_regex.regex',
      'l.filter_chain_matcher.matcher_tree.input.typed_config',
      'l.filter_chain_matcher.matcher_tree.exact_match_map.map["a"].action.typed_config',
      'l.filter_chain_matcher.matcher_tree.exact_match_map.map["b"].keep_matching',
    ]);
    expect(errors[1]!.message).toContain('unsupported input type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.FilterStateInput');
  });
});
