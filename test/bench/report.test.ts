// Unit test of the bench's report writer on a FABRICATED results fixture (labelled as such in
// the file). It checks file structure and arithmetic only: no test here measures or asserts a
// timing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM JavaScript without type declarations
import { writeReport } from '../../bench/lib/report.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { median, summarize } from '../../bench/lib/summarize.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { roundOrder } from '../../bench/lib/runner.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { perfRows, topAllocations, topSelfTime } from '../../bench/profile.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = path.join(HERE, 'fixtures/results.fixture.json');

/** Minimal well-formedness check: every tag closes, in order; one root <svg>. */
function checkXml(text: string): { root: string; elements: number } {
  const body = text.replace(/<\?xml[^>]*\?>/, '').replace(/<!--[\s\S]*?-->/g, '');
  const stack: string[] = [];
  let root = '';
  let elements = 0;
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(body))) {
    const between = body.slice(last, m.index);
    if (between.includes('<')) throw new Error(`stray '<' before offset ${m.index}: ${between.slice(0, 80)}`);
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(between)) throw new Error(`unescaped & in text: ${between.slice(0, 80)}`);
    last = re.lastIndex;
    const [, close, name, , selfClose] = m;
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else {
      elements++;
      if (!stack.length) {
        if (root) throw new Error('more than one root element');
        root = name!;
      }
      if (!selfClose) stack.push(name!);
    }
  }
  if (stack.length) throw new Error(`unclosed: ${stack.join(' > ')}`);
  if (body.slice(last).includes('<')) throw new Error('stray < at the end');
  return { root, elements };
}

describe('bench report writer (fixture: fabricated numbers)', () => {
  const fixture = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));
  let dir: string;
  let files: { md: string; json: string; svg: string };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-report-test-'));
    files = writeReport(fixture, dir);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the fixture says it is a fixture', () => {
    expect(fixture.fixture).toBe(true);
    expect(fixture._comment).toMatch(/FIXTURE/);
  });

  it('writes <date>-<commit>.md, .json and .svg', () => {
    expect(path.basename(files.md)).toBe('2000-01-01-fixture.md');
    for (const f of [files.md, files.json, files.svg]) expect(fs.statSync(f).size).toBeGreaterThan(0);
    expect(path.basename(files.json)).toBe('2000-01-01-fixture.json');
    expect(path.basename(files.svg)).toBe('2000-01-01-fixture.svg');
  });

  it('the SVG is well-formed XML with one <svg> root and a bar per measured peer', () => {
    const svg = fs.readFileSync(files.svg, 'utf8');
    const { root, elements } = checkXml(svg);
    expect(root).toBe('svg');
    expect(elements).toBeGreaterThan(20);
    expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
    expect(svg).toContain('FIXTURE');
    for (const peer of ['direct', 'strait-native', 'strait-node', 'haproxy', 'nginx']) expect(svg).toContain(`>${peer}</text>`);
  });

  it('the markdown embeds the SVG and carries the fixture banner', () => {
    const md = fs.readFileSync(files.md, 'utf8');
    expect(md).toContain('](2000-01-01-fixture.svg)');
    expect(md).toMatch(/FIXTURE: the numbers below are fabricated/);
    for (const h of ['## Summary', '## Machine', '## Rounds and settings', '## How measured', '## Results per workload', '## Micro benchmarks']) expect(md).toContain(h);
    // The summary comes first.
    expect(md.indexOf('## Summary')).toBeLessThan(md.indexOf('## Machine'));
  });

  it('computes medians over clean rounds only and ratios vs direct and vs the best proxy', () => {
    const s = summarize(fixture)['http1-keepalive-64'];
    expect(s.best_proxy).toBe('strait-native');
    expect(s.peers.direct.stats.rps.median).toBe(100000);
    expect(s.peers['strait-native'].ratios.vs_direct).toBeCloseTo(0.65, 10);
    expect(s.peers['strait-native'].ratios.vs_best).toBeCloseTo(1, 10);
    expect(s.peers.haproxy.ratios.vs_direct).toBeCloseTo(0.6, 10);
    expect(s.peers.haproxy.ratios.vs_best).toBeCloseTo(60000 / 65000, 10);
    // nginx's flagged round (errors) is excluded: median of the two clean rounds.
    expect(s.peers.nginx.flagged).toBe(1);
    expect(s.peers.nginx.stats.rps.median).toBe(51000);
    expect(s.peers.nginx.ratios.vs_best).toBeCloseTo(51000 / 65000, 10);
    // CPU relative to the most efficient proxy, p99 relative to direct.
    expect(s.best_cpu_proxy).toBe('haproxy');
    expect(s.peers['strait-native'].ratios.cpu_vs_best).toBeCloseTo(2, 10);
    expect(s.peers['strait-node'].ratios.cpu_vs_best).toBeCloseTo(4, 10);
    expect(s.peers['strait-native'].ratios.p99_vs_direct).toBeCloseTo(2, 10);
    expect(s.peers.direct.ratios.cpu_vs_best).toBeNull();
  });

  it('a fixed-rate row is summarised as latency, not rendered as a memory table', () => {
    const s = summarize(fixture)['http1-rate-10k'];
    expect(s.best_proxy).toBe('haproxy');
    expect(s.peers['strait-native'].ratios.vs_best).toBeCloseTo(2, 10);
    const md = fs.readFileSync(files.md, 'utf8');
    const summary = md.slice(md.indexOf('## Summary'), md.indexOf('## Machine'));
    const at = summary.indexOf('### Latency at a fixed rate');
    expect(at).toBeGreaterThan(0);
    const row = summary.slice(at).split('\n').find((l) => l.startsWith('| HTTP/1.1 keep-alive at 10k req/s'));
    expect(row).toContain('2.000 (2.00) · CPU 1.50');
    expect(row).toContain('**1.000 (1.00)** · CPU 1.25');
    // The memory table's rows appear once, for the memory workload only.
    expect(summary.split('idle RSS, MiB').length - 1).toBe(1);
    expect(summary).not.toContain('### HTTP/1.1 keep-alive at 10k req/s');
  });

  it('memory ratios are relative to the least memory; direct is n/a', () => {
    const s = summarize(fixture)['idle-conns'];
    expect(s.best_proxy).toBe('haproxy');
    expect(s.peers['strait-native'].ratios.vs_best).toBeCloseTo(1.6, 10);
    expect(s.peers.direct.status).toBe('n/a');
  });

  it('the markdown tables show those ratios, the flagged run and every skip with its reason', () => {
    const md = fs.readFileSync(files.md, 'utf8');
    const row = md.split('\n').find((l) => l.startsWith('| HTTP/1.1 keep-alive, 64 B body | L4 (tcp_proxy) |'))!;
    expect(row).toBeDefined();
    expect(row).toContain('**0.65 · 1.00**');
    expect(row).toContain('0.40 · 0.62');
    expect(row).toContain('0.60 · 0.92');
    expect(row).toContain('0.51 · 0.78 ⚠');
    expect(row).toMatch(/\| skipped \| strait-native \|$/);
    const cpuRow = md.split('\n').find((l) => l.startsWith('| HTTP/1.1 keep-alive, 64 B body | CPU s / 10k req |'))!;
    expect(cpuRow).toBe('| HTTP/1.1 keep-alive, 64 B body | CPU s / 10k req | 2.00 | 4.00 | **1.00** (0.1000) | 1.50 | skipped |');
    expect(md).toMatch(/http1-keepalive-64 \/ nginx round 2\*\*: flagged, not counted: read 12, status_ge_400 3/);
    expect(md).toContain('h2c-64**: skipped: h2load not found on PATH');
    expect(md).toContain('**envoy**: skipped in every workload: ENVOY_BIN not set');
    expect(md).toContain('micro LB pick**: skipped: module not built');
    expect(md).toContain('L4 (tcp_proxy)');
  });

  it('the JSON keeps every raw run and adds the summary', () => {
    const j = JSON.parse(fs.readFileSync(files.json, 'utf8'));
    expect(j.fixture).toBe(true);
    expect(j.workloads[0].runs).toHaveLength(15);
    expect(j.workloads[0].runs.find((r: { peer: string; round: number }) => r.peer === 'nginx' && r.round === 1).metrics.rps).toBe(999999);
    expect(j.summary['http1-keepalive-64'].peers.haproxy.stats.rps.median).toBe(60000);
    expect(j.settings.rounds).toBe(3);
  });
});

describe('bench report: hot-restart table (fixture: fabricated numbers)', () => {
  const fixture = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));
  const row = (engine: string, failed: number, conns: number) => ({
    engine,
    upgrades: 3,
    seconds: 5.1,
    calls_ok: 1000,
    calls_failed: failed,
    client_connections: conns,
    counted_requests: 250,
    slowest_batch_ms: 40,
  });
  const results = {
    ...fixture,
    hotRestart: { status: 'ran', reason: null, upgrades: 3, engines: ['native', 'node'], how: 'HOW-TEXT', rows: [row('native', 0, 1), row('node', 2, 3)] },
  };
  let dir: string;
  let md: string;
  let json: any;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-report-hr-'));
    const files = writeReport(results, dir);
    md = fs.readFileSync(files.md, 'utf8');
    json = JSON.parse(fs.readFileSync(files.json, 'utf8'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('puts the table in the summary, its method under How measured, its rows in the JSON', () => {
    expect(md).toContain('### Hot restart under load: 3 upgrades in a row');
    expect(md).toContain('| strait-native | 3 | 5.1 | 1000 | 0 | 1 | 250 | 40 |');
    expect(md.indexOf('### Hot restart')).toBeLessThan(md.indexOf('## Machine'));
    expect(md).toContain('- **hot restart** (3 upgrade(s), strait-native, strait-node): HOW-TEXT');
    expect(json.hotRestart.rows).toHaveLength(2);
    expect(json.hotRestart.rows[1]).toMatchObject({ engine: 'node', calls_failed: 2 });
  });

  it('flags failed calls and reconnections', () => {
    expect(md).toContain('**hot restart / strait-node**: 2 calls failed, 3 client connections seen');
    expect(md).not.toContain('**hot restart / strait-native**');
  });

  it('says why when it did not run', () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-report-hr-'));
    try {
      const f = writeReport({ ...results, hotRestart: { ...results.hotRestart, status: 'not run', reason: 'time budget of 165 s', rows: [] } }, d);
      const text = fs.readFileSync(f.md, 'utf8');
      expect(text).toContain('not run: time budget of 165 s');
      expect(text).toContain('- **hot restart**: not run: time budget of 165 s');
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('bench report: one HTTP shape at two layers (fixture: fabricated numbers)', () => {
  it('tables without a layer column name the layer', () => {
    const fixture = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));
    const l4 = fixture.workloads.find((w: { name: string }) => w.name === 'http1-keepalive-64');
    const l7 = { ...structuredClone(l4), name: 'http1-keepalive-64-l7', layer: 'http1', layerLabel: 'L7 (http_connection_manager)' };
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-report-layers-'));
    try {
      const md = fs.readFileSync(writeReport({ ...fixture, workloads: [...fixture.workloads, l7] }, d).md, 'utf8');
      expect(md).toContain('| HTTP/1.1 keep-alive, 64 B body (L4) | CPU s / 10k req |');
      expect(md).toContain('| HTTP/1.1 keep-alive, 64 B body (L7) | CPU s / 10k req |');
      expect(md).toContain('| HTTP/1.1 keep-alive, 64 B body | L7 (http_connection_manager) |');
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('bench helpers', () => {
  it('median', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([NaN, 5])).toBe(5);
  });

  it('round order alternates: each peer is not always first or last', () => {
    const names = ['a', 'b', 'c', 'd'];
    const orders = [0, 1, 2, 3].map((r) => roundOrder(names, r));
    for (const o of orders) expect([...o].sort()).toEqual(names);
    expect(new Set(orders.map((o) => o[0])).size).toBeGreaterThan(1);
    expect(new Set(orders.map((o) => o[o.length - 1])).size).toBeGreaterThan(1);
  });

  it('topSelfTime charges each sample the gap to the next and sums by function', () => {
    const profile = {
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 } },
        { id: 2, callFrame: { functionName: 'hot', url: 'file:///x.js', lineNumber: 9 } },
        { id: 3, callFrame: { functionName: 'cold', url: 'file:///x.js', lineNumber: 19 } },
      ],
      samples: [2, 2, 3, 2],
      timeDeltas: [0, 100, 100, 50],
    };
    const top = topSelfTime(profile, 5);
    expect(top.rows[0]).toMatchObject({ function: 'hot', location: '/x.js:10' });
    // samples 0 and 1 (hot) get the next gaps, 100 + 100 us; sample 2 (cold) 50 us; the last, none.
    expect(top.rows[0].self_ms).toBeCloseTo(0.2, 10);
    expect(top.rows[1]).toMatchObject({ function: 'cold' });
    expect(top.rows[1].self_ms).toBeCloseTo(0.05, 10);
    expect(top.total_ms).toBeCloseTo(0.25, 10);
  });

  it('topAllocations sums self bytes by function over every call path', () => {
    const frame = (functionName: string, lineNumber: number) => ({ functionName, url: 'file:///y.js', lineNumber });
    const profile = {
      head: {
        callFrame: frame('(root)', -1),
        selfSize: 0,
        children: [
          { callFrame: frame('make', 4), selfSize: 300, children: [{ callFrame: frame('leaf', 7), selfSize: 50, children: [] }] },
          { callFrame: frame('other', 1), selfSize: 100, children: [{ callFrame: frame('make', 4), selfSize: 200, children: [] }] },
        ],
      },
    };
    const top = topAllocations(profile, 2);
    expect(top.total).toBe(650);
    expect(top.rows).toEqual([
      { function: 'make', location: '/y.js:5', bytes: 500 },
      { function: 'other', location: '/y.js:2', bytes: 100 },
    ]);
  });
});

describe('bench profile: perf report rows', () => {
  it('keeps the share lines of perf report --stdio and drops headers, blanks and call chains', () => {
    const text = [
      '# To display the perf.data header info, please use --header/--header-only options.',
      '# Samples: 7K of event \'cpu-clock\'',
      '#',
      '     7.24%  [kernel.kallsyms]     [k] pvm_irq_enable',
      '            |',
      '            ---__libc_start_call_main',
      '     2.15%  node                  [.] nghttp2_hd_deflate_hd_bufs',
      '',
      '    12.00%  strait_native.node  ',
      '# (Tip: 1.5% of nothing)',
    ].join('\n');
    expect(perfRows(text).map((l) => l.trim().split(/\s+/)[0])).toEqual(['7.24%', '2.15%', '12.00%']);
  });
});

describe('bench report: xDS scale table (fixture: fabricated numbers)', () => {
  const fixture = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));
  const xdsScale = (failed: number, reduced: boolean) => ({
    status: 'ran',
    reason: null,
    how: 'XDS-HOW',
    reduced,
    size: reduced ? { clusters: 200, endpoints: 2000, seconds: 2 } : { clusters: 1000, endpoints: 10000, seconds: 3 },
    result: {
      engine: 'native',
      apply: { clusters: 1000, endpoints: 10000, apply_ms: 1234, rss_before_mib: 100, rss_mib: 150, rss_delta_mib: 50 },
      churn: { clusters: 1000, endpoints_replaced: 5000, seconds: 3.2, requests_ok: 900, requests_failed: failed, apply_ms: 345, new_endpoints_served: 300 },
      ondemand: reduced ? null : { clusters_held: 1, rss_mib: 107 },
    },
  });
  const render = (x: unknown) => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-report-xds-'));
    try {
      return fs.readFileSync(writeReport({ ...fixture, xdsScale: x }, d).md, 'utf8');
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  };

  it('puts both tables (and the on-demand row) in the report, and no flag when nothing failed', () => {
    const md = render(xdsScale(0, false));
    expect(md).toContain('### xDS at scale: 1000 clusters / 10000 endpoints, and an EDS update under load');
    expect(md).toContain('| strait-native | 1000 | 10000 | 1234 ms | 100 MiB | 150 MiB | 50 MiB |');
    expect(md).toContain('| strait-native | 5000 across 1000 clusters | 3.2 | 900 | 0 | 345 ms | 300 |');
    expect(md).toContain('| strait-native | 1000 served, 1 routed to | 1 | 107 MiB | 150 MiB |');
    expect(md).not.toContain('**xds scale');
    expect(md).not.toContain('Quick profile: a reduced size');
  });

  it('says when the quick profile ran a reduced size, and flags failed requests', () => {
    const md = render(xdsScale(3, true));
    expect(md).toContain('Quick profile: a reduced size');
    expect(md).toContain('- **xds scale / strait-native**: 3 requests failed during the EDS update (wanted 0)');
  });
});
