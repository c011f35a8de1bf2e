// CDS updates of one cluster warm concurrently and finish in any order: the last one asked for wins.
import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { StatsStore } from '../../../src/observability/stats.js';
import type { Resolver } from '../../../src/upstream/cluster.js';
import { buildClusterSpec } from '../../../src/upstream/cluster_config.js';
import { ClusterManager } from '../../../src/upstream/cluster_manager.js';

type Obj = Record<string, any>;

function spec(type: 'STATIC' | 'STRICT_DNS', address: string) {
  const errors: FieldError[] = [];
  const c: Obj = {
    name: 'svc',
    type,
    connect_timeout: '1s',
    load_assignment: { cluster_name: 'svc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: 80 } } } }] }] },
  };
  const s = buildClusterSpec(c, 'c', errors);
  expect(errors).toEqual([]);
  return s!;
}

/** DNS that answers `slow.example` only when released: a cluster that takes long to warm. */
function gatedResolver() {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const resolver: Resolver = async (name) => {
    if (name === 'slow.example') await gate;
    return [{ address: '10.0.0.1', family: 4 }];
  };
  return { resolver, release };
}

function manager(resolver: Resolver) {
  const store = new StatsStore();
  return { cm: new ClusterManager(store.root, resolver), store };
}

describe('ClusterManager.addOrUpdate ordering', () => {
  it('an older update that finishes warming last does not replace the newer one', async () => {
    const { resolver, release } = gatedResolver();
    const { cm } = manager(resolver);
    try {
      const older = cm.addOrUpdate(spec('STRICT_DNS', 'slow.example'));
      const newer = await cm.addOrUpdate(spec('STATIC', '10.0.0.2'));
      expect(newer).not.toBeNull();
      expect(cm.get('svc')).toBe(newer);
      release();
      expect(await older).toBeNull();
      expect(cm.get('svc')).toBe(newer);
      expect(cm.get('svc')!.allHosts.map((h) => h.label)).toEqual(['10.0.0.2:80']);
      expect(cm.stats.cluster_added.value).toBe(1);
      expect(cm.stats.cluster_modified.value).toBe(0);
      expect(cm.stats.warming_clusters.value).toBe(0);
    } finally {
      cm.close();
    }
  });

  it('a cluster removed while it warms does not come back', async () => {
    const { resolver, release } = gatedResolver();
    const { cm } = manager(resolver);
    try {
      const warming = cm.addOrUpdate(spec('STRICT_DNS', 'slow.example'));
      expect(cm.remove('svc')).toBe(false);
      release();
      expect(await warming).toBeNull();
      expect(cm.has('svc')).toBe(false);
      // The name is free again: a later add goes in as usual.
      expect(await cm.addOrUpdate(spec('STATIC', '10.0.0.3'))).toBe(cm.get('svc'));
      expect(cm.stats.active_clusters.value).toBe(1);
    } finally {
      cm.close();
    }
  });

  it('updates that finish in the order asked for each replace the one before', async () => {
    const { cm } = manager(gatedResolver().resolver);
    try {
      const a = await cm.addOrUpdate(spec('STATIC', '10.0.0.4'));
      const b = await cm.addOrUpdate(spec('STATIC', '10.0.0.5'));
      expect(a).not.toBe(b);
      expect(cm.get('svc')).toBe(b);
      expect(cm.stats.cluster_modified.value).toBe(1);
    } finally {
      cm.close();
    }
  });
});

describe('ClusterManager.get', () => {
  it('answers from its last lookup until the clusters change: an update, a remove or an add is seen at once', async () => {
    const { cm } = manager(async () => [{ address: '10.0.0.1', family: 4 }]);
    const missed: string[] = [];
    cm.missHook = (n) => missed.push(n);
    try {
      const first = await cm.addOrUpdate(spec('STATIC', '10.0.0.2'));
      expect(cm.get('svc')).toBe(first);
      expect(cm.get('svc')).toBe(first);
      const second = await cm.addOrUpdate(spec('STATIC', '10.0.0.3'));
      expect(second).not.toBe(first);
      expect(cm.get('svc')).toBe(second);
      expect(cm.remove('svc')).toBe(true);
      expect(cm.get('svc')).toBeUndefined();
      expect(missed).toEqual(['svc']);
      // A miss is not remembered: the hook hears every one, and an add is found.
      expect(cm.get('svc')).toBeUndefined();
      expect(missed).toEqual(['svc', 'svc']);
      await cm.addAll([spec('STATIC', '10.0.0.4')]);
      expect(cm.get('svc')!.allHosts.map((h) => h.label)).toEqual(['10.0.0.4:80']);
    } finally {
      cm.close();
    }
  });
});
