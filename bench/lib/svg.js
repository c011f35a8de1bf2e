// The report's chart, hand-written SVG (no chart dependency). One row per workload that ran:
// left, the primary metric (throughput, or RSS for memory) per peer with a min-max whisker over
// rounds; right, p50 and p99 latency per peer (or idle RSS for memory). Values are medians.

export function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Fixed colours per peer, so a peer keeps its colour when others are skipped. */
const COLORS = { direct: '#6b7280', 'strait-native': '#1d4ed8', 'strait-node': '#60a5fa', haproxy: '#059669', nginx: '#d97706', envoy: '#9333ea' };
const PALETTE = ['#dc2626', '#0891b2', '#65a30d', '#db2777'];

export function fmtNum(v, digits = null) {
  if (!Number.isFinite(v)) return '-';
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : Math.abs(v) >= 1 ? 2 : 3);
  return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** @param results the report JSON; @param summary summarize(results) */
export function renderChart(results, summary) {
  const W = 1000;
  const labelW = 120;
  const L = { x: 10, w: 470 };
  const R = { x: 520, w: 470 };
  const barH = 12;
  const gap = 5;
  const peerNames = results.peers.map((p) => p.name);
  let extra = 0;
  const color = Object.fromEntries(peerNames.map((n) => [n, COLORS[n] ?? PALETTE[extra++ % PALETTE.length]]));
  const parts = [];
  let y = 40;
  const title = `${results.fixture ? 'FIXTURE (fabricated numbers) - ' : ''}Strait bench ${results.meta.date} ${results.meta.commit} (${results.settings.mode}): medians of ${results.settings.rounds} rounds`;
  parts.push(`<text x="10" y="22" class="t">${esc(title)}</text>`);

  const panel = (box, heading, rows, unit, top) => {
    // rows: [{ name, bars: [{ v, lo, hi, shade }], text }]
    const maxV = Math.max(1e-9, ...rows.flatMap((r) => r.bars.flatMap((b) => [b.v, b.hi ?? 0]).filter(Number.isFinite)));
    const x0 = box.x + labelW;
    const scale = (box.w - labelW - 90) / maxV;
    const out = [`<text x="${box.x}" y="${top}" class="h">${esc(heading)}${unit ? ` (${esc(unit)})` : ''}</text>`];
    let yy = top + 8;
    for (const r of rows) {
      const nb = Math.max(1, r.bars.length);
      const rowH = nb * barH + (nb - 1) * 2;
      out.push(`<text x="${x0 - 6}" y="${yy + rowH / 2 + 4}" class="l" text-anchor="end">${esc(r.name)}</text>`);
      if (!r.bars.length || r.bars.every((b) => !Number.isFinite(b.v))) {
        out.push(`<text x="${x0 + 4}" y="${yy + rowH / 2 + 4}" class="n">${esc(r.text ?? 'no data')}</text>`);
      }
      r.bars.forEach((b, i) => {
        if (!Number.isFinite(b.v)) return;
        const by = yy + i * (barH + 2);
        const w = Math.max(1, b.v * scale);
        out.push(`<rect x="${x0}" y="${by}" width="${w.toFixed(1)}" height="${barH}" fill="${color[r.name] ?? '#999'}" fill-opacity="${b.shade ?? 1}"><title>${esc(`${r.name} ${b.label ?? ''} ${fmtNum(b.v)}`)}</title></rect>`);
        if (Number.isFinite(b.lo) && Number.isFinite(b.hi) && b.hi > b.lo) {
          const cy = by + barH / 2;
          out.push(`<line x1="${(x0 + b.lo * scale).toFixed(1)}" y1="${cy}" x2="${(x0 + b.hi * scale).toFixed(1)}" y2="${cy}" class="w"/>`);
        }
        const textX = x0 + Math.max(w, Number.isFinite(b.hi) ? b.hi * scale : 0) + 4;
        out.push(`<text x="${textX.toFixed(1)}" y="${by + barH - 2}" class="v">${esc(`${b.label ? `${b.label} ` : ''}${fmtNum(b.v)}${r.flag ? ' !' : ''}`)}</text>`);
      });
      yy += rowH + gap;
    }
    return { svg: out.join('\n'), bottom: yy };
  };

  for (const w of results.workloads) {
    const s = summary[w.name];
    if (!s || s.status !== 'ran') continue;
    const names = peerNames.filter((n) => s.peers[n]);
    parts.push(`<text x="10" y="${y}" class="wt">${esc(`${w.title} - ${w.layerLabel}`)}</text>`);
    const top = y + 18;
    const st = (n, k) => s.peers[n].stats[k];
    const why = (n) => (s.peers[n].status !== 'ran' ? `${s.peers[n].status}${s.peers[n].reason ? `: ${s.peers[n].reason}` : ''}` : s.peers[n].clean ? '' : 'no clean run');
    const left = panel(
      L,
      w.primary.label,
      names.map((n) => ({
        name: n,
        flag: s.peers[n].flagged > 0,
        text: why(n),
        bars: st(n, w.primary.key) ? [{ v: st(n, w.primary.key).median, lo: st(n, w.primary.key).min, hi: st(n, w.primary.key).max }] : [],
      })),
      '',
      top,
    );
    let right;
    if (w.latency) {
      right = panel(
        R,
        'latency p50 (light) / p99 (dark)',
        names.map((n) => ({
          name: n,
          text: why(n),
          bars: st(n, 'p50_ms') ? w.latency.map((l, i) => ({ v: st(n, l.key)?.median, label: l.label, shade: i === 0 ? 0.45 : 1 })) : [],
        })),
        'ms',
        top,
      );
    } else if (w.chartSecondary) {
      right = panel(
        R,
        w.chartSecondary.label,
        names.map((n) => ({ name: n, text: why(n), bars: st(n, w.chartSecondary.key) ? [{ v: st(n, w.chartSecondary.key).median, shade: 0.6 }] : [] })),
        w.primary.unit,
        top,
      );
    } else {
      right = { svg: `<text x="${R.x}" y="${top}" class="h">latency: not applicable (one bulk transfer per round)</text>`, bottom: top };
    }
    parts.push(left.svg, right.svg);
    y = Math.max(left.bottom, right.bottom) + 28;
  }
  if (y === 40) parts.push(`<text x="10" y="60" class="n">no workload ran</text>`);
  const H = Math.ceil(y + 4);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<style>
.t{font-size:15px;font-weight:bold}.wt{font-size:13px;font-weight:bold}.h{font-size:11px;fill:#374151}
.l{font-size:11px}.v{font-size:10px;fill:#111827}.n{font-size:10px;fill:#9ca3af;font-style:italic}
.w{stroke:#111827;stroke-width:1}
</style>
<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>
${parts.join('\n')}
</svg>
`;
}
