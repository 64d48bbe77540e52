// chart draws per-minute series as an inline SVG line chart, with a data
// table beside it for screen readers and keyboard users.
import { h } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 1000, H = 200, PAD = { l: 52, r: 10, t: 12, b: 24 };

function s(tag, attrs = {}, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...kids);
  return el;
}

// series: [{key, label, cls}]
export function chart(title, points, series, unit) {
  const max = Math.max(1, ...points.flatMap(p => series.map(x => p[x.key])));
  const x = i => PAD.l + (i * (W - PAD.l - PAD.r)) / Math.max(1, points.length - 1);
  const y = v => H - PAD.b - (v * (H - PAD.t - PAD.b)) / max;
  const fmt = v => (v >= 100 ? Math.round(v) : Math.round(v * 10) / 10) + unit;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ` + series.map(x => `${x.label} up to ${fmt(Math.max(0, ...points.map(p => p[x.key])))}`).join(', ') });
  // Axes and grid: zero, half and the maximum.
  for (const v of [0, max / 2, max]) {
    svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: PAD.l - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmt(v)));
  }
  const labels = [[0, '−60 min'], [Math.floor(points.length / 2), '−30 min'], [points.length - 1, 'now']];
  for (const [i, t] of labels) svg.append(s('text', { x: x(i), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === points.length - 1 ? 'end' : 'middle', class: 'axis' }, t));
  for (const ser of series) {
    const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(p[ser.key]).toFixed(1)}`).join('');
    svg.append(s('path', { d, class: `line ${ser.cls}` }));
  }
  const legend = h('ul', { class: 'legend' }, series.map(ser => h('li', { class: ser.cls }, ser.label)));
  const rows = points.filter(p => series.some(x => p[x.key]));
  const data = h('details', {}, h('summary', {}, `${title} as a table`),
    rows.length ? h('table', {}, h('caption', {}, title),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Minute'), series.map(x => h('th', { scope: 'col' }, x.label)))),
      h('tbody', {}, rows.map(p => h('tr', {}, h('th', { scope: 'row' }, new Date(p.time).toLocaleTimeString()), series.map(x => h('td', {}, fmt(p[x.key]))))))) : h('p', {}, 'No calls in the last hour.'));
  return h('figure', { class: 'chart-box' }, h('figcaption', {}, title), svg, legend, data);
}
