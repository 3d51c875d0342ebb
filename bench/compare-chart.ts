/**
 * A small SVG writer for the comparison chart: two panels (throughput and p99 latency), one group
 * of two bars per matrix cell (baseline and candidate), log-scaled y axes because the cells span
 * orders of magnitude, and the candidate/baseline ratio printed above each group.
 */

export interface ChartCell {
  label: string;
  baseline: { throughputPerSec: number; p99Ms: number };
  candidate: { throughputPerSec: number; p99Ms: number };
}

const width = 960;
const panelHeight = 300;
const margin = { left: 70, right: 20, top: 40, bottom: 70 };
const colors = { baseline: '#4e79a7', candidate: '#f28e2b' };

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function text(x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attributes}>${escapeXml(content)}</text>`;
}

function rect(x: number, y: number, w: number, h: number, fill: string, title: string): string {
  return `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h.toFixed(1)}" fill="${fill}"><title>${escapeXml(title)}</title></rect>`;
}

function formatValue(value: number): string {
  if (value >= 1000) return `${(value / 1000).toFixed(value >= 10_000 ? 0 : 1)}k`;
  return value >= 10 ? value.toFixed(0) : value.toPrecision(2);
}

function panel(
  cells: ChartCell[],
  top: number,
  title: string,
  unit: string,
  pick: (side: ChartCell['baseline']) => number,
  betterHigher: boolean,
  names: { baseline: string; candidate: string },
): string[] {
  const values = cells
    .flatMap((cell) => [pick(cell.baseline), pick(cell.candidate)])
    .filter((v) => v > 0);
  const lowLog = Math.floor(Math.log10(Math.min(...values, 1)));
  const highLog = Math.ceil(Math.log10(Math.max(...values, 10)));
  const plotHeight = panelHeight - margin.top - margin.bottom;
  const plotWidth = width - margin.left - margin.right;
  const y = (value: number) =>
    top +
    margin.top +
    plotHeight * (1 - (Math.log10(Math.max(value, 10 ** lowLog)) - lowLog) / (highLog - lowLog));
  const out = [
    text(
      margin.left,
      top + 24,
      `${title} (${unit}, log scale; ratio = ${names.candidate} / ${names.baseline}, ${betterHigher ? 'higher' : 'lower'} is better)`,
      'font-size="15" font-weight="bold"',
    ),
  ];
  for (let decade = lowLog; decade <= highLog; decade++) {
    const lineY = y(10 ** decade);
    out.push(
      `<line x1="${margin.left}" x2="${width - margin.right}" y1="${lineY.toFixed(1)}" y2="${lineY.toFixed(1)}" stroke="#ddd"/>`,
    );
    out.push(
      text(
        margin.left - 6,
        lineY + 4,
        formatValue(10 ** decade),
        'font-size="11" text-anchor="end"',
      ),
    );
  }
  const groupWidth = plotWidth / cells.length;
  const barWidth = groupWidth * 0.35;
  cells.forEach((cell, i) => {
    const x0 = margin.left + i * groupWidth + groupWidth * 0.15;
    const bottom = top + margin.top + plotHeight;
    const base = pick(cell.baseline);
    const cand = pick(cell.candidate);
    out.push(
      rect(
        x0,
        y(base),
        barWidth,
        bottom - y(base),
        colors.baseline,
        `${names.baseline} ${cell.label}: ${base.toFixed(2)} ${unit}`,
      ),
    );
    out.push(
      rect(
        x0 + barWidth,
        y(cand),
        barWidth,
        bottom - y(cand),
        colors.candidate,
        `${names.candidate} ${cell.label}: ${cand.toFixed(2)} ${unit}`,
      ),
    );
    const ratio = base > 0 ? (cand / base).toFixed(2) : 'n/a';
    out.push(
      text(
        x0 + barWidth,
        Math.min(y(base), y(cand)) - 5,
        `×${ratio}`,
        'font-size="11" text-anchor="middle"',
      ),
    );
    out.push(
      text(
        x0 + barWidth,
        bottom + 16,
        cell.label.split(' ')[0]!,
        'font-size="11" text-anchor="middle"',
      ),
    );
    out.push(
      text(
        x0 + barWidth,
        bottom + 30,
        cell.label.split(' ').slice(1).join(' '),
        'font-size="11" text-anchor="middle"',
      ),
    );
  });
  return out;
}

/** The whole chart as an SVG document. `names` labels the two systems in the legend. */
export function renderChart(
  cells: ChartCell[],
  names: { baseline: string; candidate: string },
  subtitle: string,
): string {
  const height = 2 * panelHeight + 50;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    text(margin.left, 20, subtitle, 'font-size="13"'),
    rect(width - 250, 8, 14, 14, colors.baseline, names.baseline),
    text(width - 230, 20, names.baseline, 'font-size="13"'),
    rect(width - 130, 8, 14, 14, colors.candidate, names.candidate),
    text(width - 110, 20, names.candidate, 'font-size="13"'),
    ...panel(cells, 30, 'Throughput', 'requests/s', (side) => side.throughputPerSec, true, names),
    ...panel(cells, 30 + panelHeight, 'p99 latency', 'ms', (side) => side.p99Ms, false, names),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}
