import { describe, expect, it } from 'vitest';
import { parseBootstrapText } from '../../../src/config/index.js';
import { ConfigError, type FieldError } from '../../../src/errors.js';
import { buildStaticConfig } from '../../../src/static_config.js';
import type { ClusterSpec } from '../../../src/upstream/cluster.js';

const P = 'static_resources.clusters[0]';

/** Runs a cluster through the real decoder (proto JSON mapping + PGV rules) and the cluster builder. */
function load(extra: string, endpointExtra = ''): { spec?: ClusterSpec; errors: FieldError[]; warnings: readonly FieldError[] } {
  const yaml = `static_resources:
  clusters:
  - name: c
    type: STATIC
    connect_timeout: 1s
${extra}    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } }${endpointExtra} }
          load_balancing_weight: 2
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9001 } }${endpointExtra} }
`;
  const { bootstrap, warnings, errors } = parseBootstrapText(yaml, 'test.yaml', { keepErrors: true });
  try {
    const cfg = buildStaticConfig(bootstrap as Record<string, unknown>, 'test.yaml', warnings, errors);
    return { spec: cfg.clusters[0], errors: [], warnings: cfg.warnings };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { errors: [...err.errors], warnings: [] };
  }
}

const paths = (es: readonly FieldError[]) => es.map((e) => e.path);

describe('cluster load-balancing config', () => {
  it('defaults to ROUND_ROBIN with Envoy defaults for every policy', () => {
    const { spec } = load('');
    expect(spec!.lb.policy).toBe('ROUND_ROBIN');
    expect(spec!.lb.ringHash).toEqual({ minimumRingSize: 1024, maximumRingSize: 8388608, hashFunction: 'XX_HASH' });
    expect(spec!.lb.maglev).toEqual({ tableSize: 65537 });
    expect(spec!.lb.leastRequest).toEqual({ choiceCount: 2, activeRequestBias: 1, activeRequestBiasSet: false });
    expect(spec!.endpoints.map((e) => e.weight)).toEqual([2, 1]);
  });

  it('accepts RING_HASH with its config, in snake_case or lowerCamel, sizes as numbers or strings', () => {
    const { spec, errors } = load('    lb_policy: RING_HASH\n    ringHashLbConfig: { minimumRingSize: "64", maximum_ring_size: 4096, hash_function: MURMUR_HASH_2 }\n');
    expect(errors).toEqual([]);
    expect(spec!.lb).toMatchObject({ policy: 'RING_HASH', ringHash: { minimumRingSize: 64, maximumRingSize: 4096, hashFunction: 'MURMUR_HASH_2' } });
  });

  it('accepts MAGLEV with a prime table size and consistent-hashing options', () => {
    const { spec, errors } = load(
      '    lb_policy: MAGLEV\n    maglev_lb_config: { table_size: 5000011 }\n    common_lb_config: { consistent_hashing_lb_config: { use_hostname_for_hashing: true } }\n',
      ', hostname: backend-a',
    );
    expect(errors).toEqual([]);
    expect(spec!.lb).toMatchObject({ policy: 'MAGLEV', maglev: { tableSize: 5000011 }, consistentHashing: { useHostnameForHashing: true } });
  });

  it('accepts LEAST_REQUEST with active_request_bias', () => {
    const { spec, errors } = load('    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 3, active_request_bias: { default_value: 1.5, runtime_key: lr.bias } }\n');
    expect(errors).toEqual([]);
    expect(spec!.lb.leastRequest).toEqual({ choiceCount: 3, activeRequestBias: 1.5, activeRequestBiasSet: true });
  });

  it('refuses a maglev table size that is not prime, naming the field', () => {
    const { errors } = load('    lb_policy: MAGLEV\n    maglev_lb_config: { table_size: 65536 }\n');
    expect(errors).toEqual([{ path: `${P}.maglev_lb_config.table_size`, message: expect.stringMatching(/prime/) }]);
  });

  it('reports the proto limits once, from the decoder', () => {
    const { errors } = load('    lb_policy: MAGLEV\n    maglev_lb_config: { table_size: 5000012 }\n');
    expect(paths(errors)).toEqual([`${P}.maglev_lb_config.table_size`]);
    const ring = load('    lb_policy: RING_HASH\n    ring_hash_lb_config: { maximum_ring_size: 8388609 }\n');
    expect(paths(ring.errors)).toEqual([`${P}.ring_hash_lb_config.maximum_ring_size`]);
  });

  it('refuses minimum_ring_size above maximum_ring_size, and empty rings', () => {
    const { errors } = load('    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 2048, maximum_ring_size: 1024 }\n');
    expect(errors).toEqual([{ path: `${P}.ring_hash_lb_config.minimum_ring_size`, message: 'minimum_ring_size (2048) > maximum_ring_size (1024)' }]);
    const zero = load('    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 0 }\n');
    expect(paths(zero.errors)).toEqual([`${P}.ring_hash_lb_config.minimum_ring_size`]);
  });

  it('refuses a policy config given for another policy, and a negative bias, all at once', () => {
    const { errors } = load(
      '    lb_policy: RING_HASH\n    maglev_lb_config: { table_size: 7 }\n    common_lb_config: { consistent_hashing_lb_config: { use_hostname_for_hashing: true } }\n',
    );
    expect(errors).toEqual([
      { path: `${P}.maglev_lb_config`, message: 'applies to lb_policy MAGLEV, but lb_policy is RING_HASH' },
      { path: `${P}.common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing`, message: expect.stringMatching(/hostname/) },
    ]);
    const bias = load('    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { active_request_bias: { default_value: -1, runtime_key: k } }\n');
    expect(paths(bias.errors)).toEqual([`${P}.least_request_lb_config.active_request_bias.default_value`]);
  });

  it('warns about settings it accepts but does not act on yet', () => {
    const { warnings, errors } = load(
      '    lb_policy: RING_HASH\n    common_lb_config: { update_merge_window: 2s, consistent_hashing_lb_config: { hash_balance_factor: 150 } }\n',
    );
    expect(errors).toEqual([]);
    expect(paths(warnings)).toEqual([`${P}.common_lb_config.update_merge_window`, `${P}.common_lb_config.consistent_hashing_lb_config.hash_balance_factor`]);
  });

  it('still refuses policies Strait does not run', () => {
    const { errors } = load('    lb_policy: CLUSTER_PROVIDED\n');
    expect(errors).toEqual([{ path: `${P}.lb_policy`, message: expect.stringMatching(/CLUSTER_PROVIDED is not supported.*RING_HASH, MAGLEV/) }]);
  });
});
