import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../src/errors.js';
import { defineStats, StatsStore } from '../../src/observability/stats.js';
import { buildStatsSettings, translateStdRegex, type StatsSettings } from '../../src/observability/stats_config.js';
import { REPO } from '../helpers/strait.js';

/** The compatibility corpus lives in shared/, beside the clone. */
const CORPUS = path.resolve(REPO, '..', 'shared', 'corpus');
const ISTIO = JSON.parse(fs.readFileSync(path.join(CORPUS, 'istio/default_golden.json'), 'utf8')).stats_config as Record<string, any>;

function settings(cfg: Record<string, unknown>): StatsSettings {
  const errors: FieldError[] = [];
  const s = buildStatsSettings(cfg, 'stats_config', errors);
  expect(errors).toEqual([]);
  return s!;
}

function errorsOf(cfg: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  buildStatsSettings(cfg, 'stats_config', errors);
  return errors;
}

const T = defineStats({ counters: ['upstream_rq_total', 'upstream_rq_200', 'upstream_rq_2xx'], gauges: ['upstream_cx_active'] });

describe('stats_config tag extraction', () => {
  // Istio's tags without its inclusion list, so every stat shows.
  const istioTags = () => settings({ use_all_default_tags: false, stats_tags: ISTIO.stats_tags });

  it("reads std::regex's POSIX classes inside brackets as JavaScript classes", () => {
    expect(translateStdRegex('[_.[:digit:]\\w]*')).toBe('[_.0-9\\w]*');
    expect(translateStdRegex('[_\\[\\]aAbB[:digit:]\\w\\:]*')).toBe('[_\\[\\]aAbB0-9\\w\\:]*');
    expect(translateStdRegex('\\[:digit:]')).toBe('\\[:digit:]');
    expect(() => translateStdRegex('[[:nope:]]')).toThrow(/nope/);
  });

  it("extracts Istio's cluster_name and response_code from a `;`-delimited cluster stat name", () => {
    const store = new StatsStore(istioTags());
    const c = store.root.scope('cluster').scope('outbound|80||reviews.default.svc.cluster.local;', 'envoy_cluster_name').table(T);
    c.upstream_rq_total.value = 3;
    c.upstream_rq_200.value = 2;
    c.upstream_rq_2xx.value = 1;
    const text = store.renderPrometheus();
    expect(text).toContain('# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total{cluster_name="outbound|80||reviews.default.svc.cluster.local"} 3\n');
    // Both codes and classes fold into one family, told apart by label, as in Envoy behind Istio.
    expect(text).toContain('envoy_cluster_upstream_rq{cluster_name="outbound|80||reviews.default.svc.cluster.local",response_code="200"} 2');
    expect(text).toContain('envoy_cluster_upstream_rq{cluster_name="outbound|80||reviews.default.svc.cluster.local",response_code_class="2xx"} 1');
    expect(text.match(/# TYPE envoy_cluster_upstream_rq counter/g)).toHaveLength(1);
    // No built-in label survives use_all_default_tags: false.
    expect(text).not.toContain('envoy_cluster_name');
  });

  it('extracts http_conn_manager_prefix, response_code_class, listener_address and tcp_prefix', () => {
    const store = new StatsStore(istioTags());
    const http = store.root.scope('http').scope('inbound_0.0.0.0_8080;', 'envoy_http_conn_manager_prefix');
    http.counter('downstream_rq_2xx').value = 4;
    http.counter('downstream_rq_total').value = 5;
    store.root.scope('listener').scope('0.0.0.0_15006', 'envoy_listener_address').counter('downstream_cx_total').value = 6;
    store.root.scope('tcp').scope('main', 'envoy_tcp_prefix').counter('downstream_cx_total').value = 7;
    const text = store.renderPrometheus();
    // Envoy tries extractors without a name prefix first, hence the label order.
    expect(text).toContain('envoy_http_downstream_rq{response_code_class="2xx",http_conn_manager_prefix="inbound_0.0.0.0_8080"} 4');
    expect(text).toContain('envoy_http_downstream_rq_total{http_conn_manager_prefix="inbound_0.0.0.0_8080"} 5');
    expect(text).toContain('envoy_listener_downstream_cx_total{listener_address="0.0.0.0_15006"} 6');
    expect(text).toContain('envoy_tcp_downstream_cx_total{tcp_prefix="main"} 7');
  });

  it('leaves a name no regex matches whole, as Envoy does (no `;`, no cluster_name)', () => {
    const store = new StatsStore(istioTags());
    store.root.scope('cluster').scope('backend', 'envoy_cluster_name').counter('upstream_rq_total').value = 1;
    expect(store.renderPrometheus()).toContain('envoy_cluster_backend_upstream_rq_total 1');
  });

  it('adds fixed_value tags to every stat, histograms included', () => {
    const store = new StatsStore(settings({ stats_tags: [{ tag_name: 'mesh_id', fixed_value: 'm1' }] }));
    store.root.scope('server').gauge('live').value = 1;
    store.root.scope('cluster').scope('a', 'envoy_cluster_name').histogram('upstream_rq_time').record(3);
    const text = store.renderPrometheus();
    expect(text).toContain('envoy_server_live{mesh_id="m1"} 1');
    // use_all_default_tags defaults to true: the built-in cluster tag stays, before the custom ones.
    expect(text).toContain('envoy_cluster_upstream_rq_time_count{envoy_cluster_name="a",mesh_id="m1"} 1');
  });

  it('use_all_default_tags: true keeps the built-in tags next to custom regexes; false drops them', () => {
    const tags = [{ tag_name: 'code', regex: '_rq(_(\\d{3}))$' }];
    const on = new StatsStore(settings({ stats_tags: tags }));
    on.root.scope('cluster').scope('a', 'envoy_cluster_name').counter('upstream_rq_200').value = 1;
    expect(on.renderPrometheus()).toContain('envoy_cluster_upstream_rq{envoy_cluster_name="a",code="200"} 1');
    const off = new StatsStore(settings({ use_all_default_tags: false, stats_tags: tags }));
    off.root.scope('cluster').scope('a', 'envoy_cluster_name').counter('upstream_rq_200').value = 1;
    expect(off.renderPrometheus()).toContain('envoy_cluster_a_upstream_rq{code="200"} 1');
    const none = new StatsStore(settings({ use_all_default_tags: false }));
    none.root.scope('cluster').scope('a', 'envoy_cluster_name').counter('upstream_rq_200').value = 1;
    expect(none.renderPrometheus()).toContain('envoy_cluster_a_upstream_rq_200 1');
  });

  it('a tag_name alone turns on that default tag (Envoy looks up its default regex)', () => {
    const store = new StatsStore(settings({ use_all_default_tags: false, stats_tags: [{ tag_name: 'envoy.cluster_name' }] }));
    store.root.scope('cluster').scope('a', 'envoy_cluster_name').counter('upstream_rq_total').value = 1;
    store.root.scope('listener').scope('1.2.3.4_80', 'envoy_listener_address').counter('downstream_cx_total').value = 1;
    const text = store.renderPrometheus();
    expect(text).toContain('envoy_cluster_upstream_rq_total{envoy_cluster_name="a"} 1');
    expect(text).toContain('envoy_listener_1_2_3_4_80_downstream_cx_total 1');
  });

  it('a custom regex by a default tag name takes that tag over', () => {
    const store = new StatsStore(settings({ stats_tags: [{ tag_name: 'envoy.cluster_name', regex: '^cluster\\.((.+?)-svc\\.)' }] }));
    store.root.scope('cluster').scope('a-svc', 'envoy_cluster_name').counter('upstream_rq_total').value = 1;
    expect(store.renderPrometheus()).toContain('envoy_cluster_upstream_rq_total{envoy_cluster_name="a"} 1');
  });

  it('without stats_tags and with default tags on, output is byte-identical to no stats_config', () => {
    const build = (s: StatsSettings | null) => {
      const store = new StatsStore(s);
      const c = store.root.scope('cluster').scope('x"y', 'envoy_cluster_name').table(T);
      c.upstream_rq_total.value = 7;
      store.root.scope('http').scope('ingress', 'envoy_http_conn_manager_prefix').histogram('downstream_rq_time').record(2);
      store.root.scope('server').gauge('live').value = 1;
      return store.renderPrometheus() + store.renderText();
    };
    expect(buildStatsSettings({}, 'stats_config', [])).toBeNull();
    expect(buildStatsSettings({ use_all_default_tags: true }, 'stats_config', [])).toBeNull();
    expect(build(settings({ stats_matcher: { exclusion_list: { patterns: [{ prefix: 'nothing.' }] } } }))).toBe(build(null));
  });
});

describe('stats_config stats_matcher', () => {
  it("inclusion_list keeps only matching full names (Istio's list)", () => {
    const store = new StatsStore(settings(ISTIO));
    const kept = store.root.scope('cluster').scope('xds-grpc;', 'envoy_cluster_name').table(T);
    const dropped = store.root.scope('cluster').scope('backend;', 'envoy_cluster_name').table(T);
    store.root.scope('server').gauge('live').value = 1;
    kept.upstream_rq_total.value = 2;
    dropped.upstream_rq_total.value = 9;
    const h = store.root.scope('cluster').scope('backend;', 'envoy_cluster_name').histogram('upstream_rq_time');
    h.record(1);
    const text = store.renderPrometheus();
    expect(text).toContain('envoy_cluster_upstream_rq_total{cluster_name="xds-grpc"} 2');
    expect(text).toContain('envoy_server_live 1');
    expect(text).not.toContain('backend');
    expect(store.renderText()).not.toContain('backend');
    expect(store.renderJson()).not.toContain('backend');
    // Rejected stats still work for the code holding them, and asking again gives the same one.
    expect(store.root.scope('cluster').scope('backend;', 'envoy_cluster_name').counter('upstream_rq_total')).toBe(dropped.upstream_rq_total);
    expect(store.root.scope('cluster').scope('backend;', 'envoy_cluster_name').histogram('upstream_rq_time')).toBe(h);
    expect(() => store.root.scope('cluster').scope('backend;', 'envoy_cluster_name').gauge('upstream_rq_total')).toThrow(/registered as counter/);
    expect(store.accepts('cluster.backend;.upstream_rq_total')).toBe(false);
  });

  it('exclusion_list drops matching names (suffix, safe_regex full match)', () => {
    const store = new StatsStore(settings({ stats_matcher: { exclusion_list: { patterns: [{ suffix: '_2xx' }, { safe_regex: { regex: 'cluster\\.a\\..*200' } }] } } }));
    store.root.scope('cluster').scope('a', 'envoy_cluster_name').table(T);
    const text = store.renderText();
    expect(text).toBe('cluster.a.upstream_cx_active: 0\ncluster.a.upstream_rq_total: 0\n');
  });

  it('reject_all keeps nothing; reject_all: false keeps everything', () => {
    const none = new StatsStore(settings({ stats_matcher: { reject_all: true } }));
    none.root.scope('server').gauge('live').value = 1;
    expect(none.renderText()).toBe('');
    expect(none.renderPrometheus()).toBe('');
    expect(buildStatsSettings({ stats_matcher: { reject_all: false } }, 'stats_config', [])).toBeNull();
  });

  it('histogram_bucket_settings picks the first matching rule', () => {
    const store = new StatsStore(settings({ histogram_bucket_settings: [{ match: { prefix: 'cluster.' }, buckets: [100, 10] }] }));
    const h = store.root.scope('cluster').scope('a', 'envoy_cluster_name').histogram('upstream_rq_time');
    expect([...h.bounds]).toEqual([10, 100]);
    expect(store.root.scope('http').histogram('downstream_rq_time').bounds.length).toBe(19);
  });
});

describe('stats_config errors name the field path', () => {
  it('reports every bad tag and matcher', () => {
    const errors = errorsOf({
      stats_tags: [
        { tag_name: 'ok', regex: '^a\\.((.+?)\\.)' },
        { tag_name: 'bad', regex: '^cluster\\.((.+?)\\.' },
        { tag_name: 'ok', regex: '(x)' },
        { tag_name: 'nocapture', regex: '^cluster\\.' },
        { tag_name: 'unknown_default' },
        { regex: '(x)' },
        { tag_name: 'posix', regex: '([[:nope:]])' },
      ],
      stats_matcher: { inclusion_list: { patterns: [{ prefix: 'server' }, { safe_regex: { regex: '(' } }] } },
      histogram_bucket_settings: [{ match: { prefix: 'x' }, buckets: [] }, { buckets: [1] }],
    });
    const paths = errors.map((e) => e.path);
    expect(paths).toEqual([
      'stats_config.stats_matcher.inclusion_list.patterns[1].safe_regex.regex',
      'stats_config.stats_tags[1].regex',
      'stats_config.stats_tags[2].tag_name',
      'stats_config.stats_tags[3].regex',
      'stats_config.stats_tags[4]',
      'stats_config.stats_tags[5].tag_name',
      'stats_config.stats_tags[6].regex',
      'stats_config.histogram_bucket_settings[0].buckets',
      'stats_config.histogram_bucket_settings[1].match',
    ]);
    expect(errors[2]!.message).toMatch(/specified twice.*stats_tags\[0\]/);
    expect(errors[4]!.message).toMatch(/unknown_default.*default tags/);
  });

  it("accepts every regex of Istio's bootstrap", () => {
    for (const f of ['default_golden.json', 'stats_inclusion_golden.json']) {
      const cfg = JSON.parse(fs.readFileSync(path.join(CORPUS, 'istio', f), 'utf8')).stats_config;
      expect(errorsOf(cfg)).toEqual([]);
    }
  });
});
