// Small inline SVG charts: a line (with a shaded area) or bars over a series of numbers. Labels
// live in HTML around the SVG, because the drawing stretches to the card's width and stretched
// SVG text would distort.
const NS = 'http://www.w3.org/2000/svg';
const W = 300;
const H = 80;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * values: numbers (null for a gap); kind: 'line' or 'bar'; ideal: optional reference value drawn
 * as a dashed line (the network's ideal block time, say).
 */
export function chart(values, { kind = 'line', ideal, label = '' } = {}) {
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', class: `chart chart-${kind}`, role: 'img', 'aria-label': label });
  const nums = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (nums.length === 0) return root;
  // One stalled or lucky block must not flatten every other bar: bars are scaled to a few
  // times the median (or the ideal), and taller ones are drawn clipped at the top.
  const sorted = [...nums].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  let max = Math.max(...nums, ideal ?? -Infinity);
  if (kind === 'bar') max = Math.min(max, Math.max(4 * median, 3 * (ideal ?? 0), 1));
  const min = kind === 'bar' ? 0 : Math.min(...nums);
  const flat = max === min;
  const span = max - min || 1;
  const pad = 4;
  const y = (v) => (flat ? H / 2 : H - pad - ((Math.min(v, max) - min) / span) * (H - 2 * pad));
  const n = values.length;
  if (kind === 'bar') {
    const bw = W / Math.max(n, 1);
    values.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) return;
      const top = y(Math.max(v, 0));
      root.append(svg('rect', { x: i * bw + bw * 0.15, y: top, width: Math.max(bw * 0.7, 0.5), height: Math.max(H - pad - top, 0.5) }));
    });
  } else {
    const x = (i) => (n === 1 ? W / 2 : (i / (n - 1)) * W);
    let d = '';
    let started = false;
    values.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        started = false;
        return;
      }
      d += `${started ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      started = true;
    });
    const firstX = x(values.findIndex((v) => typeof v === 'number'));
    const lastIdx = n - 1 - [...values].reverse().findIndex((v) => typeof v === 'number');
    root.append(svg('path', { d: `${d}L${x(lastIdx).toFixed(1)},${H}L${firstX.toFixed(1)},${H}Z`, class: 'area' }));
    root.append(svg('path', { d, class: 'line', 'vector-effect': 'non-scaling-stroke' }));
  }
  if (typeof ideal === 'number') {
    const iy = y(ideal).toFixed(1);
    root.append(svg('line', { x1: 0, x2: W, y1: iy, y2: iy, class: 'ideal', 'vector-effect': 'non-scaling-stroke' }));
  }
  return root;
}
