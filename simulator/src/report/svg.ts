/** Minimal inline SVG charts for the fleet report: no scripts, no external assets. */

export interface Line {
  readonly label: string;
  readonly color: string;
  readonly points: readonly (readonly [number, number])[];
}

const W = 640;
const H = 220;
const PAD = { left: 56, right: 12, top: 14, bottom: 30 };

const esc = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const fmt = (v: number) =>
  Math.abs(v) >= 10_000
    ? `${(v / 1000).toFixed(0)}k`
    : Math.abs(v) >= 1000
      ? `${(v / 1000).toFixed(1)}k`
      : `${+v.toFixed(1)}`;

function frame(title: string, xLabel: string, yMax: number, xMax: number, body: string, legend: string): string {
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const y = PAD.top + (1 - f) * (H - PAD.top - PAD.bottom);
      return `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" stroke="#e5e5e5"/><text x="${PAD.left - 6}" y="${y + 4}" text-anchor="end">${fmt(yMax * f)}</text>`;
    })
    .join('');
  const xt = [0, 0.5, 1]
    .map((f) => {
      const x = PAD.left + f * (W - PAD.left - PAD.right);
      return `<text x="${x}" y="${H - 10}" text-anchor="middle">${fmt(xMax * f)}</text>`;
    })
    .join('');
  return `<figure><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}" font-family="sans-serif" font-size="11">${ticks}${xt}<text x="${W - PAD.right}" y="${H - 10}" text-anchor="end">${esc(xLabel)}</text>${body}</svg><div class="legend">${legend}</div></figure>`;
}

/** Line chart of series over a shared x axis. */
export function lineChart(title: string, xLabel: string, lines: readonly Line[]): string {
  const all = lines.flatMap((l) => l.points);
  if (all.length === 0) return `<p>${esc(title)}: no data</p>`;
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const yMax = niceMax(Math.max(...all.map((p) => p[1])));
  const sx = (x: number) => PAD.left + (x / xMax) * (W - PAD.left - PAD.right);
  const sy = (y: number) => PAD.top + (1 - y / yMax) * (H - PAD.top - PAD.bottom);
  const body = lines
    .map(
      (l) =>
        `<polyline fill="none" stroke="${l.color}" stroke-width="1.5" points="${l.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(' ')}"/>`,
    )
    .join('');
  const legend = lines.map((l) => `<span style="color:${l.color}">■</span> ${esc(l.label)}`).join(' &nbsp; ');
  return frame(title, xLabel, yMax, xMax, body, legend);
}

/** Bar chart of a histogram with upper bucket bounds (log buckets, labelled by bound). */
export function histogramChart(
  title: string,
  unit: string,
  hist: { readonly bounds: readonly number[]; readonly counts: readonly number[] },
  color = '#4a78c2',
): string {
  if (hist.counts.length === 0) return `<p>${esc(title)}: no data</p>`;
  const yMax = niceMax(Math.max(...hist.counts));
  const n = hist.counts.length;
  const bw = (W - PAD.left - PAD.right) / n;
  const body = hist.counts
    .map((c, i) => {
      const h = (c / yMax) * (H - PAD.top - PAD.bottom);
      const x = PAD.left + i * bw;
      const y = H - PAD.bottom - h;
      const label =
        i % Math.max(1, Math.ceil(n / 8)) === 0
          ? `<text x="${x + bw / 2}" y="${H - 18}" text-anchor="middle" font-size="9">≤${fmt(hist.bounds[i] ?? 0)}</text>`
          : '';
      return `<rect x="${(x + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${color}"><title>≤ ${hist.bounds[i]} ${esc(unit)}: ${c}</title></rect>${label}`;
    })
    .join('');
  return frame(title, unit, yMax, 0, body, `count per bucket (upper bound in ${esc(unit)}, log scale)`).replace(
    /<text x="[\d.]+" y="\d+" text-anchor="middle">0<\/text>/g,
    '',
  );
}
