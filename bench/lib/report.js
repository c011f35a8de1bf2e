// The report writer: results (raw figures, as the runner collects them) -> three files in outDir:
//   <date>-<commit>.json  every raw figure + settings + machine + the computed summary
//   <date>-<commit>.svg   the chart
//   <date>-<commit>.md    summary ratio tables on top, then machine, settings, how measured, details
import fs from 'node:fs';
import path from 'node:path';
import { failoverMarkdown } from '../failover.js';
import { xdsScaleMarkdown } from '../xds-scale.js';
import { hotRestartMarkdown } from '../hot-restart.js';
import { interceptMarkdown } from '../intercept.js';
import { fmtNum, renderChart } from './svg.js';
import { runFlags, summarize } from './summarize.js';

export function reportBaseName(results) {
  return `${results.meta.date}-${results.meta.commit}`;
}

/** Share of the proxy's core (in cores) used by other processes above which a run is called noisy. */
const NOISY = 0.15;

const r2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : '-');

function mdCell(s) {
  return String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function table(head, rows) {
  return [`| ${head.map(mdCell).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`)].join('\n');
}

/** Short cell for a peer that has no number in a workload. */
function statusCell(p) {
  if (!p) return '-';
  if (p.status === 'n/a') return 'n/a';
  if (p.status !== 'ran') return p.status === 'skipped' ? 'skipped' : 'failed';
  if (p.clean) return null;
  return p.runs ? 'errors only' : 'not run';
}

export function renderMarkdown(results, summary, svgName) {
  const m = results.meta;
  const s = results.settings;
  const peers = results.peers;
  const proxyNames = peers.filter((p) => p.kind === 'proxy').map((p) => p.name);
  const allNames = peers.map((p) => p.name);
  const ran = results.workloads.filter((w) => summary[w.name]?.status === 'ran');
  // Lower-is-better rows are either memory (RSS) or latency at a fixed rate; each has its own table.
  const isMemory = (w) => w.primary.unit === 'MiB';
  const memW = ran.filter((w) => w.primary.better === 'lower' && isMemory(w));
  const rateW = ran.filter((w) => w.primary.better === 'lower' && !isMemory(w));
  // Tables without a layer column name the layer where one shape is measured at two layers.
  const titles = results.workloads.map((w) => w.title);
  const rowName = (w) => (titles.indexOf(w.title) !== titles.lastIndexOf(w.title) ? `${w.title} (${w.layerLabel.split(' ')[0]})` : w.title);
  const thrW = ran.filter((w) => w.primary.better === 'higher');
  const L = [];
  L.push(`# Strait benchmark - ${m.date} - ${m.commit} (${s.mode})`, '');
  if (results.fixture) {
    L.push('> **FIXTURE: the numbers below are fabricated for the report writer\'s unit test. They are not a measurement.**', '');
  }
  L.push(
    `Peers measured side by side in one run on one machine, against the same upstream with the same load generator; ${s.rounds} round${s.rounds === 1 ? '' : 's'} in alternating peer order; every figure is the **median over clean rounds**. ` +
      'Read the ratios, not the absolute numbers: the machine is shared and noisy, and numbers from different runs or machines do not compare.',
    '',
  );

  // ---- Summary -------------------------------------------------------------------------------
  L.push('## Summary', '');
  if (thrW.length) {
    L.push('### Throughput: fraction of direct · relative to the best proxy', '');
    L.push('`0.45 · 0.80` = 45 % of the no-proxy ceiling, 80 % of the best proxy in that workload (1.00 = the best). ⚠ = some rounds were flagged with errors and left out.', '');
    const rows = [];
    for (const w of results.workloads.filter((x) => x.primary.better === 'higher')) {
      const ws = summary[w.name];
      if (ws.status !== 'ran') {
        rows.push([w.title, w.layerLabel, `${ws.status}: ${ws.reason}`, ...proxyNames.map(() => '-'), '-']);
        continue;
      }
      const dir = ws.peers.direct;
      const dcell = statusCell(dir) ?? `${fmtNum(dir.stats[w.primary.key].median)} ${w.primary.unit}${dir.flagged ? ' ⚠' : ''}`;
      const cells = proxyNames.map((n) => {
        const p = ws.peers[n];
        const sc = statusCell(p);
        if (sc) return sc;
        const cell = `${r2(p.ratios.vs_direct)} · ${r2(p.ratios.vs_best)}${p.flagged ? ' ⚠' : ''}`;
        return n === ws.best_proxy ? `**${cell}**` : cell;
      });
      rows.push([w.title, w.layerLabel, dcell, ...cells, ws.best_proxy ?? '-']);
    }
    L.push(table(['workload', 'layer', 'direct', ...proxyNames, 'best proxy'], rows), '');

    L.push('### Proxy CPU per unit of work, relative to the most efficient proxy', '');
    L.push('CPU seconds (user+system, all threads, whole process tree) per 10k requests or per GiB, divided by the lowest of the proxies: 1.00 = most efficient, 2.00 = twice the CPU per request.', '');
    const crows = [];
    for (const w of thrW) {
      const ws = summary[w.name];
      if (!w.cpu) continue;
      const bestV = ws.best_cpu_proxy ? ws.peers[ws.best_cpu_proxy].stats[w.cpu.key].median : NaN;
      crows.push([
        rowName(w),
        w.cpu.label,
        ...proxyNames.map((n) => {
          const p = ws.peers[n];
          const sc = statusCell(p);
          if (sc) return sc;
          const v = p.ratios.cpu_vs_best;
          return n === ws.best_cpu_proxy ? `**${r2(v)}** (${fmtNum(bestV, 4)})` : r2(v);
        }),
      ]);
    }
    L.push(table(['workload', 'unit', ...proxyNames], crows), '');

    const lat = thrW.filter((w) => w.latency);
    if (lat.length) {
      L.push('### p99 latency relative to direct', '');
      L.push('Median p99 through the proxy divided by the median p99 with no proxy (1.00 = no added tail); in brackets, the added p99 in ms.', '');
      const lrows = lat.map((w) => {
        const ws = summary[w.name];
        const d = ws.peers.direct?.stats.p99_ms?.median;
        return [
          rowName(w),
          Number.isFinite(d) ? `${fmtNum(d, 3)} ms` : statusCell(ws.peers.direct) ?? '-',
          ...proxyNames.map((n) => {
            const p = ws.peers[n];
            return statusCell(p) ?? `${r2(p.ratios.p99_vs_direct)} (${p.ratios.p99_added_ms >= 0 ? '+' : ''}${fmtNum(p.ratios.p99_added_ms, 3)})`;
          }),
        ];
      });
      L.push(table(['workload', 'direct p99', ...proxyNames], lrows), '');
    }
  }
  if (rateW.length) {
    L.push('### Latency at a fixed rate', '');
    L.push('The load is the same for every peer, so p99 here is the tail each adds, not a restatement of its throughput. Median p99 in ms; in brackets, relative to the best proxy (1.00 = lowest p99); then CPU per request relative to the most efficient proxy.', '');
    const rrows = rateW.map((w) => {
      const ws = summary[w.name];
      const d = ws.peers.direct;
      return [
        rowName(w),
        statusCell(d) ?? `${fmtNum(d.stats[w.primary.key].median, 3)}${d.flagged ? ' ⚠' : ''}`,
        ...proxyNames.map((n) => {
          const p = ws.peers[n];
          const sc = statusCell(p);
          if (sc) return sc;
          const cell = `${fmtNum(p.stats[w.primary.key].median, 3)} (${r2(p.ratios.vs_best)})${p.flagged ? ' ⚠' : ''}`;
          const cpu = w.cpu && p.ratios.cpu_vs_best !== null ? ` · CPU ${r2(p.ratios.cpu_vs_best)}` : '';
          return (n === ws.best_proxy ? `**${cell}**` : cell) + cpu;
        }),
      ];
    });
    L.push(table(['workload', 'direct p99 ms', ...proxyNames], rrows), '');
  }
  for (const w of memW) {
    const ws = summary[w.name];
    L.push(`### ${w.title}`, '');
    const row = (label, key, digits) => [
      label,
      ...proxyNames.map((n) => {
        const p = ws.peers[n];
        return statusCell(p) ?? `${fmtNum(p.stats[key]?.median, digits)}${p.flagged ? ' ⚠' : ''}`;
      }),
    ];
    L.push(
      table(['', ...proxyNames], [
        row('idle RSS, MiB', 'rss_idle_mb', 1),
        row(`RSS with ${fmtNum(s.idleConnections, 0)} idle connections (measured), MiB`, 'rss_conns_mb', 1),
        row('KiB per connection', 'kb_per_conn', 2),
        ['relative to the best (1.00 = least memory)', ...proxyNames.map((n) => statusCell(ws.peers[n]) ?? r2(ws.peers[n].ratios.vs_best))],
        ...(s.idleConnectionsNote
          ? [
              [
                `RSS at ${fmtNum(s.idleConnectionsRequested, 0)} connections, MiB (extrapolated: idle + ${fmtNum(s.idleConnectionsRequested, 0)} x KiB/conn)`,
                ...proxyNames.map((n) => {
                  const p = ws.peers[n];
                  return statusCell(p) ?? fmtNum(p.stats.rss_idle_mb?.median + (s.idleConnectionsRequested * p.stats.kb_per_conn?.median) / 1024, 1);
                }),
              ],
            ]
          : []),
      ]),
      '',
    );
    if (s.idleConnectionsNote) L.push(`Note: ${s.idleConnectionsNote}. The extrapolated row is labelled as such; the measured rows are at ${fmtNum(s.idleConnections, 0)}.`, '');
  }
  const skippedWorkloads = results.workloads.filter((w) => w.status !== 'ran');
  for (const w of skippedWorkloads.filter((x) => x.primary.better === 'lower')) L.push(`### ${w.title}`, '', `${w.status}: ${w.reason}`, '');

  const hr = results.hotRestart;
  if (hr) {
    L.push(`### Hot restart under load: ${hr.upgrades} upgrade${hr.upgrades === 1 ? '' : 's'} in a row`, '');
    if (hr.status !== 'ran') L.push(`${hr.status}: ${hr.reason}`, '');
    else L.push('A Bolt client keeps calling through Strait while new processes take over one after another (how: see "How measured"). Wanted: 0 calls failed and 1 client connection (it never reconnected).', '', hotRestartMarkdown(hr.rows));
  }

  const fo = results.failover;
  if (fo) {
    L.push('### Failover: one of three upstreams killed and revived under load', '');
    if (fo.status !== 'ran') L.push(`${fo.status}: ${fo.reason}`, '');
    else L.push(`${fo.how} Wanted: 0 failed after the detection window.`, '', failoverMarkdown(fo.rows));
  }

  const ic = results.intercept;
  if (ic) {
    L.push('### Interception: app → Strait → upstream over sockmap, iptables, loopback TCP, unix socket', '');
    if (ic.status !== 'ran') L.push(`${ic.status}: ${ic.reason}`, '');
    else L.push(`${ic.how} ${ic.rounds} round(s) of ${ic.seconds} s, medians; kernel ${ic.kernel}. Ratios are against the tcp column (lower is better for round trips, higher for bulk).`, '', interceptMarkdown(ic));
  }

  const xs = results.xdsScale;
  if (xs) {
    L.push(`### xDS at scale: ${xs.size.clusters} clusters / ${xs.size.endpoints} endpoints, and an EDS update under load`, '');
    if (xs.reduced) L.push('Quick profile: a reduced size (the full profile runs 1,000 clusters / 10,000 endpoints; at that size the table took 11 to 25 s on the shared 2-core development machine depending on its load, and the quick profile allows it 20 s).', '');
    if (xs.status !== 'ran') L.push(`${xs.status}: ${xs.reason}`, '');
    else L.push(`${xs.how} Wanted: 0 failed.`, '', xdsScaleMarkdown(xs.result));
  }

  L.push(`![throughput and latency per peer per workload](${svgName})`, '');

  // ---- Flags -------------------------------------------------------------------------------
  L.push('## Flags: errors, failures, skips', '');
  const flags = [];
  // A peer skipped at detection is skipped everywhere: say it once.
  for (const p of peers.filter((x) => x.status !== 'ok')) flags.push(`- **${p.name}**: skipped in every workload: ${p.reason}`);
  const peerSkip = Object.fromEntries(peers.filter((x) => x.status !== 'ok').map((x) => [x.name, x.reason]));
  for (const w of results.workloads) {
    if (w.status !== 'ran') {
      flags.push(`- **${w.name}**: ${w.status}: ${w.reason}`);
      continue;
    }
    for (const [n, p] of Object.entries(w.peers)) {
      if ((p.status === 'skipped' || p.status === 'failed') && p.reason !== peerSkip[n]) flags.push(`- **${w.name} / ${n}**: ${p.status}: ${p.reason}`);
    }
    for (const r of w.runs.filter((x) => x.skipped)) flags.push(`- **${w.name} / ${r.peer} round ${r.round + 1}**: not run: ${r.skipped}`);
    for (const r of w.runs.filter((x) => !x.ok && !x.skipped)) {
      flags.push(`- **${w.name} / ${r.peer} round ${r.round + 1}**: flagged, not counted: ${runFlags(r).join(', ')}${r.notes?.length ? ` (${r.notes.join('; ')})` : ''}`);
    }
  }
  // Noise: other tenants on the proxy's core make a run slower without being the proxy's fault.
  for (const w of ran.filter((x) => x.cpu)) {
    const noisy = w.runs.filter((r) => r.ok && r.metrics?.other_load_proxy_core > NOISY);
    if (noisy.length) {
      flags.push(
        `- **${w.name}**: noisy: other processes used more than ${NOISY} of the proxy's core in ${noisy.length} of ${w.runs.length} runs ` +
          `(${noisy.map((r) => `${r.peer} r${r.round + 1}: ${r.metrics.other_load_proxy_core.toFixed(2)}`).join(', ')}); throughput ratios there understate the proxy, CPU per request does not.`,
      );
    }
  }
  for (const x of results.micro ?? []) if (x.status !== 'ran') flags.push(`- **micro ${x.name}**: ${x.status}: ${x.reason}`);
  if (hr && hr.status !== 'ran') flags.push(`- **hot restart**: ${hr.status}: ${hr.reason}`);
  for (const r of hr?.rows ?? []) {
    if (r.calls_failed || r.client_connections !== 1) flags.push(`- **hot restart / strait-${r.engine}**: ${r.calls_failed} calls failed, ${r.client_connections} client connections seen (wanted 0 and 1)`);
  }
  const xsr = results.xdsScale;
  if (xsr && xsr.status !== 'ran' && xsr.status !== 'skipped') flags.push(`- **xds scale**: ${xsr.status}: ${xsr.reason}`);
  if (xsr?.result?.churn.requests_failed) flags.push(`- **xds scale / strait-${xsr.result.engine}**: ${xsr.result.churn.requests_failed} requests failed during the EDS update (wanted 0)`);
  for (const wmsg of results.warnings ?? []) flags.push(`- ${wmsg}`);
  L.push(flags.length ? flags.join('\n') : 'None: every counted response and byte was verified.', '');

  // ---- Machine -----------------------------------------------------------------------------
  L.push('## Machine', '');
  L.push(
    table(['', ''], [
      ['CPU', `${m.nproc} cores (nproc), ${m.cpuModel}`],
      ['kernel', m.kernel],
      ['OS', m.os],
      ['memory', `${fmtNum(m.memTotalGiB, 1)} GiB`],
      ['node', m.node],
      ['load average before / after', `${m.loadavgStart} / ${m.loadavgEnd ?? '-'}`],
      ...peers.map((p) => [`peer ${p.name}`, p.status === 'ok' ? p.version : `skipped: ${p.reason}`]),
      ...Object.entries(m.tools ?? {}).map(([k, v]) => [`tool ${k}`, v ?? 'not found']),
      ['commit', `${m.commit}${m.dirty ? ' (work tree has uncommitted changes)' : ''}`],
      ['started (UTC)', m.startedAt],
      ['wall time', `${fmtNum(m.wallSeconds, 0)} s`],
    ]),
    '',
  );

  // ---- Settings ------------------------------------------------------------------------------
  L.push('## Rounds and settings', '');
  const c = s.cpus;
  L.push(
    `- Mode **${s.mode}**: ${s.rounds} rounds of ${s.durationS} s per HTTP run${Number.isFinite(s.rpcDurationS) ? ` and ${s.rpcDurationS} s per RPC run` : ''}, ${s.warmupS} s warm-up per peer and workload (h2load rows: two runs of half that, so that one set of connections has ended before the first measured run; not counted${Number.isFinite(s.rpcDurationS) ? `; RPC: ${Math.min(s.warmupS, s.rpcDurationS / 2)} s` : ''}); bulk ${fmtNum(s.bulkBytes / 2 ** 20, 0)} MiB per run; memory ${s.idleRounds} round(s) of ${fmtNum(s.idleConnections, 0)} connections.`,
    `- Load: ${s.connections} connections; pipelined depth ${s.pipelineDepth}; h2c ${s.h2Streams} streams per connection.`,
    `- CPU placement (taskset): proxy on ${c.proxy ?? 'any'}, load generator on ${c.loadgen ?? 'any'}, upstream on ${c.upstream ?? 'any'}${m.taskset ? '' : ' (taskset missing: nothing pinned)'}. Every proxy runs one worker/thread.`,
    '- Peer order per round (alternating, so no peer always runs first or last):',
    '',
  );
  for (const w of ran) L.push(`  - ${w.name}: ${w.order.map((o, i) => `r${i + 1} ${o.join(' > ')}`).join('; ')}`);
  L.push('');

  // ---- How measured ----------------------------------------------------------------------------
  L.push('## How measured', '');
  L.push(
    '- One upstream process per workload, shared by every peer, so all peers (and "direct") hit the same server. Every proxy is started once per workload from a config generated into a temp dir (memory: once per round), checked with one exact request (preflight), warmed up, then measured round by round.',
    '- **direct** is the load generator talking to the upstream with no proxy: the ceiling. With 2 cores the proxy has core 0 alone and client + upstream share core 1, so every proxied row pays the same client/server cost on core 1 as direct. (A proxy on its own core also takes over part of the loopback TCP work the kernel does for the upstream, so a ratio slightly above 1.00 is possible and means "at the ceiling".)',
    '- **Layer** (every row names it): **L7 (http_connection_manager)** rows have every proxy parse and route HTTP with one worker: Strait and Envoy `http_connection_manager` (codec AUTO, one route `/` to the upstream cluster, from the same generated bootstrap), HAProxy `mode http` with `http-reuse always`, nginx `http {}` `proxy_pass` with `proxy_http_version 1.1` and upstream `keepalive`; every proxy keeps HTTP/1.1 keep-alive connections to the upstream. In the h2c rows the proxies take h2c (HAProxy `bind ... proto h2`, nginx `listen ... http2`) and forward HTTP/1.1, while direct is h2c end to end. **L4 (tcp_proxy)** rows forward bytes (HAProxy `mode tcp`, nginx `stream {}`, Strait/Envoy `tcp_proxy`): they measure carrying HTTP traffic, not routing it. The RPC rows are Strait at L7 against HAProxy/nginx at L4 (neither parses Bolt or Dubbo).',
    '- **CPU per unit**: utime+stime from /proc/<pid>/stat of the proxy\'s whole process tree (all threads; nginx master + worker), read right before and after each run, divided by the requests (per 10k) or bytes (per GiB) that run completed.',
    '- **Correctness**: a run is counted only with zero errors. wrk: connect/read/write/timeout socket errors and statuses >= 400 from its summary, plus bytes read = requests x exact response size. h2load: failed/errored/timeout, non-2xx, and every line of its per-request log must be 200. Bulk: byte count and checksum. Memory: every connection echoed. Flagged runs are listed above and left out of medians.',
    '',
  );
  for (const w of results.workloads) L.push(`- **${w.name}** (${w.layerLabel}): ${w.description}`);
  if (hr) L.push(`- **hot restart** (${hr.upgrades} upgrade(s), ${hr.engines.map((e) => `strait-${e}`).join(', ')}): ${hr.how}`);
  L.push('');

  // ---- Details --------------------------------------------------------------------------------
  L.push('## Results per workload', '');
  for (const w of results.workloads) {
    const ws = summary[w.name];
    L.push(`### ${w.title} - ${w.layerLabel}`, '');
    if (ws.status !== 'ran') {
      L.push(`${ws.status}: ${ws.reason}`, '');
      continue;
    }
    L.push(`Upstream: ${w.upstream.describe} (${w.upstream.version ?? '?'}). Medians over clean rounds; min-max in brackets for the primary metric.`, '');
    const cols = w.runs.some((r) => Number.isFinite(r.metrics?.other_load_proxy_core))
      ? [...w.columns, { key: 'other_load_proxy_core', label: 'other load on proxy core', digits: 2 }]
      : w.columns;
    const head = ['peer', 'clean/runs', ...cols.map((col) => col.label), `${w.primary.label} per round`];
    const rows = allNames
      .filter((n) => ws.peers[n])
      .map((n) => {
        const p = ws.peers[n];
        if (p.status !== 'ran') return [n, `${p.status}: ${p.reason ?? ''}`, ...cols.map(() => '-'), '-'];
        const perRound = w.runs
          .filter((r) => r.peer === n)
          .map((r) => (r.skipped ? 'not run' : r.ok ? fmtNum(r.metrics?.[w.primary.key]) : '⚠'))
          .join(', ');
        return [
          n,
          `${p.clean}/${p.runs}`,
          ...cols.map((col) => {
            const st = p.stats[col.key];
            if (!st) return '-';
            const v = fmtNum(st.median, col.digits);
            return col.key === w.primary.key && st.n > 1 ? `${v} (${fmtNum(st.min, col.digits)}-${fmtNum(st.max, col.digits)})` : v;
          }),
          perRound,
        ];
      });
    L.push(table(head, rows), '');
  }

  // ---- Micro -------------------------------------------------------------------------------
  L.push('## Micro benchmarks (tinybench, bench/micro/)', '');
  if (!results.micro) L.push('not run (--no-micro or dry run)', '');
  else if (!results.micro.length) L.push('no micro benchmarks registered', '');
  else {
    const rows = [];
    for (const x of results.micro) {
      if (x.status !== 'ran') rows.push([x.name, '-', '-', '-', `${x.status}: ${x.reason}`]);
      else for (const t of x.tasks) rows.push([`${x.name}: ${t.name}`, fmtNum(t.ns_per_op, 2), fmtNum(t.mops, 1), fmtNum(t.rme, 2), t.error ?? '']);
    }
    L.push(table(['benchmark', 'ns/op (median)', 'M ops/s', '± % (rme)', 'note'], rows), '');
  }

  // ---- Reproduce ---------------------------------------------------------------------------
  L.push('## Reproduce', '');
  L.push(
    '```sh',
    'npm run build                  # Strait rows need dist/',
    `${s.mode === 'quick' ? 'npm run bench:quick' : 'npm run bench'}${process.env.ENVOY_BIN || peers.find((p) => p.name === 'envoy')?.status === 'ok' ? '   # with ENVOY_BIN=/path/to/envoy' : ''}`,
    'node bench/run.js --quick --dry-run   # the plan, without load',
    'npm run profile -- http1-keepalive-64  # CPU profile of Strait under one workload',
    '```',
    '',
    'Raw figures of every run: the JSON file beside this one. How to read these files: perf-reports/README.md.',
    '',
  );
  return L.join('\n');
}

/** Writes the three files; returns their paths. Pure function of `results` (plus the clock-free meta in it). */
export function writeReport(results, outDir, baseName = reportBaseName(results)) {
  fs.mkdirSync(outDir, { recursive: true });
  const summary = summarize(results);
  const files = {
    md: path.join(outDir, `${baseName}.md`),
    json: path.join(outDir, `${baseName}.json`),
    svg: path.join(outDir, `${baseName}.svg`),
  };
  fs.writeFileSync(files.svg, renderChart(results, summary));
  fs.writeFileSync(files.json, `${JSON.stringify({ ...results, summary }, null, 1)}\n`);
  fs.writeFileSync(files.md, renderMarkdown(results, summary, path.basename(files.svg)));
  return files;
}
