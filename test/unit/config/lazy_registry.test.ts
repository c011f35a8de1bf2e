import { describe, expect, it } from 'vitest';
import { LazyRegistry } from '../../../src/filters/lazy_registry.js';
import { httpFilters } from '../../../src/filters/http/registry.js';
import { networkFilters } from '../../../src/filters/network/registry.js';
import { scanConfig } from '../../../src/config/preload.js';

type F = { name: string; typeUrls: string[]; perRoute?: { typeUrls: string[] } };

function registry(loads: string[], override: Partial<F> = {}): LazyRegistry<F> {
  const entry = (name: string, type: string, perRoute?: string) => ({
    name,
    typeUrls: [type],
    ...(perRoute ? { perRouteTypeUrls: [perRoute] } : {}),
    load: async (): Promise<F> => {
      loads.push(name);
      return { name, typeUrls: [type], ...(perRoute ? { perRoute: { typeUrls: [perRoute] } } : {}), ...(name === 'a' ? override : {}) };
    },
  });
  return new LazyRegistry<F>('test filter', [entry('a', 't/a', 't/a.per'), entry('b', 't/b')]);
}

describe('lazy extension registry', () => {
  it('loads only what the words name, by name, type URL or per-route type URL, once', async () => {
    const loads: string[] = [];
    const r = registry(loads);
    await r.loadNamed(new Set(['nothing', 't/a.per']));
    await r.loadNamed(new Set(['a', 't/a']));
    expect(loads).toEqual(['a']);
    expect(r.find('', 't/a')?.name).toBe('a');
    expect(r.findPerRoute('t/a.per')?.name).toBe('a');
    await r.loadNamed(new Set(['b']));
    expect(loads).toEqual(['a', 'b']);
    expect(r.find('b', undefined)?.name).toBe('b');
  });

  it('knows every name before loading, answers undefined for unknown ones, and refuses an unloaded known one', () => {
    const r = registry([]);
    expect(r.names()).toEqual(['a', 'b']);
    expect(r.find('zzz', undefined)).toBeUndefined();
    expect(r.find('a', 't/other')).toBeUndefined();
    expect(() => r.find('b', undefined)).toThrow(/test filter b is used before its module was loaded/);
  });

  it('rejects a factory whose type URLs differ from its registry entry', async () => {
    const r = registry([], { typeUrls: ['t/renamed'] });
    await expect(r.loadNamed(new Set(['a']))).rejects.toThrow(/differ from its factory/);
  });

  it("the real registries' names and type URLs match their factories", async () => {
    // Throws on any mismatch (the test setup already loaded them; this asserts the outcome).
    await Promise.all([networkFilters.loadAll(), httpFilters.loadAll()]);
    expect(networkFilters.find('', 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy')?.name).toBe('envoy.filters.network.tcp_proxy');
    expect(httpFilters.findPerRoute('type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute')?.name).toBe('envoy.filters.http.rbac');
    expect(networkFilters.names()).toContain('strait.filters.network.rpc_proxy');
  });

  it('the config scan finds names and type URLs at any depth, and file config sources in both forms', () => {
    const hcm = {
      filter_chains: [{ filters: [{ name: 'n1', typed_config: { '@type': 't1', http_filters: [{ name: 'n2', typed_config: { '@type': 't2' } }] } }] }],
      route_config: { virtual_hosts: [{ typed_per_filter_config: { 'n3': { '@type': 't3' } } }] },
      raw: new Uint8Array(2),
      none: null,
      big: 1n,
    };
    const s = scanConfig(hcm);
    for (const w of ['n1', 't1', 'n2', 't2', 'n3', 't3']) expect(s.words.has(w), w).toBe(true);
    expect(s.files).toBe(false);
    expect(scanConfig({ rds: { config_source: { path_config_source: { path: '/r.yaml' } } } }).files).toBe(true);
    expect(scanConfig({ sds_config: { path: '/s.yaml' } }).files).toBe(true);
    expect(scanConfig({ rds: { config_source: { ads: {} } } }).files).toBe(false);
  });
});
