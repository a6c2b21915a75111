// SPDX-License-Identifier: MIT
// winnow dashboard: a hash router over read-only views of the API, charts drawn as SVG with
// the DOM (no inline code or styles, so the page runs under a strict CSP). Every API call
// carries the key kept in sessionStorage; nothing here talks to another origin.
'use strict';

const KEY_SLOT = 'winnow.key';
const SVGNS = 'http://www.w3.org/2000/svg';
const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777'];
let timers = [];      // intervals and timeouts of the current view, cleared on navigation
let renderSeq = 0;    // a view whose navigation is stale stops writing to the page

// ---- small DOM helpers ----------------------------------------------------------------
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-')) e.setAttribute(k, String(v));
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function sv(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, String(v));
  }
  for (const k of kids.flat(Infinity)) if (k) e.append(k);
  return e;
}

const enc = encodeURIComponent;
function fmt(x, digits) {
  if (x === null || x === undefined) return '–';
  if (typeof x !== 'number') return String(x);
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  return Number(x.toPrecision(digits || 4)).toString();
}
function pct(x) { return x === null || x === undefined ? '–' : (100 * x).toFixed(1) + '%'; }
function budgetLabel(n) {
  if (n >= 1e9) return fmt(n / 1e9, 3) + 'B';
  if (n >= 1e6) return fmt(n / 1e6, 3) + 'M';
  if (n >= 1e3) return fmt(n / 1e3, 3) + 'k';
  return fmt(n);
}
function num(id, value, digits) {
  // a number the tests read back: the exact value in data-value, a friendly one as text
  return el('span', {class: 'num', id: id || null, 'data-value': value === null ? 'null' : value},
            fmt(value, digits));
}

// ---- key and API ---------------------------------------------------------------------
function key() { return sessionStorage.getItem(KEY_SLOT) || ''; }

class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : 'HTTP ' + status);
    this.status = status;
    this.problem = problem || {};
  }
}

function showAuth(status, problem) {
  const b = document.getElementById('auth');
  const why = status === 401
    ? (key() ? 'The daemon did not accept this API key (401 ' + (problem.code || 'unauthorized') + ').'
             : 'This daemon needs an API key (401 ' + (problem.code || 'unauthorized') + '): type it above.')
    : 'This key may not do that (403 ' + (problem.code || 'forbidden') + '): ' + (problem.detail || '');
  b.textContent = why;
  b.dataset.status = String(status);
  b.hidden = false;
}

async function api(method, path, body) {
  const headers = {Accept: 'application/json'};
  if (key()) headers.Authorization = 'Bearer ' + key();
  const init = {method, headers, cache: 'no-store', credentials: 'omit'};
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = {detail: text}; }
  if (r.status === 401 || r.status === 403) showAuth(r.status, data || {});
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

function problemBox(err) {
  const p = err.problem || {};
  return el('div', {class: 'problem', 'data-status': err.status || ''},
            el('strong', {}, (err.status ? err.status + ' ' : '') + (p.code || 'error')), ': ',
            p.detail || err.message);
}

// ---- routing --------------------------------------------------------------------------
// #/path?x=1&y=2: the path picks the view, the query tunes it. A "key" parameter (for
// scripted use) is moved into sessionStorage and removed from the address at once.
function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/';
  const q = h.indexOf('?');
  const path = q < 0 ? h : h.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  return {path, params};
}

function takeKeyFromHash() {
  const {path, params} = parseHash();
  if (!params.has('key')) return;
  sessionStorage.setItem(KEY_SLOT, params.get('key'));
  params.delete('key');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + '#' + path + (rest ? '?' + rest : ''));
}

const routes = [
  [/^\/$/, viewDatasets],
  [/^\/jobs$/, viewJobs],
  [/^\/api$/, viewApi],
  [/^\/datasets\/([^/]+)$/, viewDataset],
  [/^\/datasets\/([^/]+)\/filters\/([^/]+)$/, viewFilter],
  [/^\/datasets\/([^/]+)\/subsets\/([^/]+)$/, viewSubset],
  [/^\/datasets\/([^/]+)\/adapters\/([^/]+)$/, viewAdapter],
  [/^\/datasets\/([^/]+)\/hubness\/([^/]+)$/, viewHubness],
];

async function render() {
  for (const t of timers) { clearInterval(t); clearTimeout(t); }
  timers = [];
  const seq = ++renderSeq;
  const {path, params} = parseHash();
  const main = document.getElementById('main');
  document.body.dataset.route = location.hash; // for tests: the address as the page left it
  document.getElementById('auth').hidden = true;
  for (const a of document.querySelectorAll('header nav a'))
    a.classList.toggle('active', a.getAttribute('href') === '#' + path);
  main.replaceChildren(el('p', {class: 'muted'}, 'Loading…'));
  main.dataset.view = 'loading';
  for (const [re, fn] of routes) {
    const m = path.match(re);
    if (!m) continue;
    const ctx = {params, live: () => seq === renderSeq};
    try {
      const nodes = await fn(ctx, ...m.slice(1).map(decodeURIComponent));
      if (!ctx.live()) return;
      main.replaceChildren(...nodes.flat(3).filter(n => n !== null && n !== undefined));
      main.dataset.view = fn.name;
      if (ctx.after) ctx.after();
    } catch (err) {
      if (!ctx.live()) return;
      main.replaceChildren(el('h1', {}, 'Could not load this view'), problemBox(err));
      main.dataset.view = 'error';
    }
    return;
  }
  main.replaceChildren(el('h1', {}, 'Not found'), el('p', {}, 'No view for ' + path + '.'));
  main.dataset.view = 'notfound';
}

function crumbs(...parts) {
  const out = [el('a', {href: '#/'}, 'datasets')];
  let href = '#/datasets';
  for (const [label, seg] of parts) {
    href += '/' + enc(seg);
    out.push(' / ', el('a', {href}, label));
  }
  return el('div', {class: 'crumbs'}, out);
}

function table(head, rows, attrs) {
  return el('table', attrs || {},
            el('thead', {}, el('tr', {}, head.map(h => el('th', {}, h)))),
            el('tbody', {}, rows.map(r => r instanceof Node ? r :
              el('tr', {}, r.map(c => el('td', {class: typeof c === 'number' ? 'r' : null},
                                         c instanceof Node ? c : fmt(c)))))));
}

function progressBar(processed, total, state) {
  const frac = total > 0 ? Math.min(1, processed / total) : (state === 'succeeded' ? 1 : 0);
  const inner = el('div', {class: 'bar-fill ' + (state || '')});
  inner.style.width = (100 * frac).toFixed(1) + '%';
  return el('div', {class: 'bar', 'data-fraction': frac, title: pct(frac)}, inner);
}

// ---- charts ---------------------------------------------------------------------------
// A chart frame: linear (or log) scales, axes with ticks, returns helpers to place marks.
function frame(opts) {
  const w = opts.width || 560, h = opts.height || 260;
  const m = {l: 58, r: 16, t: 14, b: 42};
  const pw = w - m.l - m.r, ph = h - m.t - m.b;
  const lx = !!opts.logx;
  const tx = v => lx ? Math.log10(v) : v;
  const [x0, x1] = [tx(opts.x[0]), tx(opts.x[1])];
  const [y0, y1] = opts.y;
  const X = v => m.l + (x1 === x0 ? pw / 2 : (tx(v) - x0) / (x1 - x0) * pw);
  const Y = v => m.t + ph - (y1 === y0 ? ph / 2 : (v - y0) / (y1 - y0) * ph);
  const root = sv('svg', {viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: 'chart',
                          role: 'img', 'aria-label': opts.label || ''});
  const g = sv('g', {class: 'axes'});
  g.append(sv('line', {x1: m.l, y1: m.t + ph, x2: m.l + pw, y2: m.t + ph}),
           sv('line', {x1: m.l, y1: m.t, x2: m.l, y2: m.t + ph}));
  const yt = opts.yticks || niceTicks(y0, y1, 5);
  for (const v of yt) {
    g.append(sv('line', {class: 'grid', x1: m.l, x2: m.l + pw, y1: Y(v), y2: Y(v)}),
             sv('text', {x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end', text: (opts.yfmt || fmt)(v)}));
  }
  const xt = opts.xticks || (lx ? logTicks(opts.x[0], opts.x[1]) : niceTicks(opts.x[0], opts.x[1], 6));
  for (const v of xt) {
    g.append(sv('line', {x1: X(v), x2: X(v), y1: m.t + ph, y2: m.t + ph + 4}),
             sv('text', {x: X(v), y: m.t + ph + 17, 'text-anchor': 'middle', text: (opts.xfmt || fmt)(v)}));
  }
  if (opts.xlabel) g.append(sv('text', {class: 'label', x: m.l + pw / 2, y: h - 4, 'text-anchor': 'middle', text: opts.xlabel}));
  if (opts.ylabel) g.append(sv('text', {class: 'label', x: 12, y: m.t + ph / 2, 'text-anchor': 'middle',
                                        transform: `rotate(-90 12 ${m.t + ph / 2})`, text: opts.ylabel}));
  root.append(g);
  return {root, X, Y, m, pw, ph, w, h};
}

function niceTicks(a, b, n) {
  if (!(b > a)) return [a];
  const raw = (b - a) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(s => s * mag).find(s => s >= raw);
  const out = [];
  for (let v = Math.ceil(a / step) * step; v <= b + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}
function logTicks(a, b) {
  const out = [];
  for (let e = Math.floor(Math.log10(a)); e <= Math.ceil(Math.log10(b)); e++) {
    const v = Math.pow(10, e);
    if (v >= a * 0.999 && v <= b * 1.001) out.push(v);
  }
  return out;
}

function legend(items) {
  return el('div', {class: 'legend'}, items.map(([name, color]) => {
    const sw = el('span', {class: 'swatch'});
    sw.style.background = color;
    return el('span', {}, sw, name);
  }));
}

// Lines with point markers; series: [{name, color, points: [[x, y, extra]]}].
function lineChart(series, opts) {
  const xs = series.flatMap(s => s.points.map(p => p[0]));
  const ys = series.flatMap(s => s.points.map(p => p[1]));
  let ylo = opts.y ? opts.y[0] : Math.min(...ys), yhi = opts.y ? opts.y[1] : Math.max(...ys);
  if (!opts.y) { const pad = (yhi - ylo) * 0.08 || 0.01; ylo -= pad; yhi += pad; }
  const [xa, xb] = [Math.min(...xs), Math.max(...xs)], xpad = (xb - xa) * 0.03;
  const f = frame(Object.assign({}, opts, {x: opts.x || [xa - xpad, xb + xpad], y: [ylo, yhi],
                                           xticks: opts.xticks || (opts.x ? undefined : [...new Set(xs)].sort((a, b) => a - b))}));
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    const d = s.points.map((p, k) => (k ? 'L' : 'M') + f.X(p[0]).toFixed(1) + ' ' + f.Y(p[1]).toFixed(1)).join(' ');
    f.root.append(sv('path', {d, class: 'line', stroke: color}));
    for (const p of s.points) {
      f.root.append(sv('circle', {cx: f.X(p[0]), cy: f.Y(p[1]), r: p[2] && p[2].best ? 6 : 3.5,
                                  fill: p[2] && p[2].best ? '#fff' : color, stroke: color,
                                  class: p[2] && p[2].best ? 'best' : 'pt'},
                               sv('title', {text: `${s.name}: ${fmt(p[0])}, ${fmt(p[1])}`})));
    }
  });
  return el('figure', {}, f.root, series.length > 1 || opts.legend ? legend(series.map((s, i) => [s.name, s.color || COLORS[i % COLORS.length]])) : null);
}

// Grouped vertical bars: groups [{label, values: [v per series]}], names of the series.
function barChart(groups, names, opts) {
  const max = Math.max(1e-12, ...groups.flatMap(g => g.values));
  const f = frame(Object.assign({}, opts, {x: [0, groups.length], y: [0, opts.ymax || max], xticks: []}));
  const gw = f.pw / Math.max(1, groups.length), bw = gw * 0.8 / names.length;
  groups.forEach((g, i) => {
    g.values.forEach((v, k) => {
      const x = f.m.l + i * gw + gw * 0.1 + k * bw, y = f.Y(v);
      f.root.append(sv('rect', {x, y, width: Math.max(1, bw - 1), height: f.m.t + f.ph - y,
                                fill: COLORS[k % COLORS.length], class: 'bar-rect'},
                             sv('title', {text: `${g.label} ${names[k]}: ${fmt(v)}`})));
    });
    if (groups.length <= 24)
      f.root.append(sv('text', {x: f.m.l + i * gw + gw / 2, y: f.m.t + f.ph + 17, 'text-anchor': 'middle',
                                class: 'tick', text: g.label}));
  });
  return el('figure', {}, f.root, names.length > 1 ? legend(names.map((n, k) => [n, COLORS[k % COLORS.length]])) : null);
}

// ---- views ----------------------------------------------------------------------------
async function viewDatasets() {
  const res = await api('GET', '/v1/datasets');
  const list = res.datasets || [];
  const rows = list.map(d => el('tr', {'data-dataset': d.name},
    el('td', {}, el('a', {href: '#/datasets/' + enc(d.name)}, d.name)),
    el('td', {class: 'r'}, num(null, d.records !== undefined ? d.records : (d.stats || {}).records)),
    el('td', {}, Object.keys((d.schema || {}).spaces || d.spaces || {}).join(', ')),
    el('td', {}, d.created_at || d.created || '')));
  return [el('h1', {}, 'Datasets'),
          list.length ? table(['name', 'records', 'spaces', 'created'], rows, {id: 'datasets'})
                      : el('p', {class: 'muted', id: 'datasets'}, 'No datasets yet.')];
}

async function viewDataset(ctx, ds) {
  const base = '/v1/datasets/' + enc(ds);
  const [info, filters, subsets, adapters, hubness, jobs] = await Promise.all([
    api('GET', base), api('GET', base + '/filters'), api('GET', base + '/subsets'),
    api('GET', base + '/adapters'), api('GET', base + '/hubness'),
    api('GET', base + '/jobs?limit=20')]);
  const link = (kind, name) => el('a', {href: '#/datasets/' + enc(ds) + '/' + kind + '/' + enc(name)}, name);
  const sec = (title, list, head, row) => [el('h2', {}, title),
    list.length ? table(head, list.map(row)) : el('p', {class: 'muted'}, 'none')];
  return [crumbs([ds, ds]), el('h1', {}, 'Dataset ', el('code', {}, ds)),
    el('p', {}, num('ds-records', info.records !== undefined ? info.records : (info.stats || {}).records), ' records'),
    sec('Filters', filters.filters || [], ['name', 'type', 'version', 'scoring'],
        f => [link('filters', f.name), f.type, f.version, jobCell(f.scoring)]),
    sec('Subsets', subsets.subsets || [], ['name', 'state', 'members'],
        s => [link('subsets', s.name), s.state, s.members]),
    sec('Cosine Adapters', adapters.adapters || [], ['name', 'state', 'version', 'threshold'],
        a => [link('adapters', a.name), a.state, a.version, a.threshold]),
    sec('Hubness normalizers', hubness.normalizers || [], ['name', 'space', 'ready', 'version'],
        n => [link('hubness', n.name), n.space, String(n.ready), n.version]),
    el('h2', {}, 'Jobs'), jobsTable(jobs.jobs || [])];
}

function jobCell(j) {
  if (!j) return '–';
  return el('span', {class: 'jobcell'}, progressBar(j.processed, j.total, j.state), ' ', j.state);
}

// ---- filter: histogram, threshold slider, sweep, recommendation -------------------------
async function viewFilter(ctx, ds, name) {
  const base = '/v1/datasets/' + enc(ds) + '/filters/' + enc(name);
  const bins = Math.max(1, Math.min(1000, parseInt(ctx.params.get('bins') || '40', 10)));
  const [f, st] = await Promise.all([api('GET', base), api('GET', base + '/stats?bins=' + bins)]);
  const out = [crumbs([ds, ds]), el('h1', {}, 'Filter ', el('code', {}, name), ' ',
                                    el('span', {class: 'tag'}, f.type), ' ', el('span', {class: 'muted'}, 'v' + f.version))];
  out.push(el('p', {id: 'filter-summary'},
    num('st-records', st.records), ' records, ', num('st-count', st.count), ' scored, ',
    num('st-unscorable', st.unscorable), ' unscorable, ', num('st-pending', st.pending), ' pending; scores from ',
    num('st-min', st.min), ' to ', num('st-max', st.max), ', mean ', num('st-mean', st.mean), '.'));
  // ?focus=sweep or ?focus=recommend shows that panel alone (a screen-sized view of it)
  const focus = ctx.params.get('focus');
  if (!focus && st.count > 0 && st.histogram) out.push(...histogramPanel(ctx, base, st));
  else if (!focus) out.push(el('p', {class: 'muted'}, 'No scores yet.'));
  if (f.type === 'semdedup' && (!focus || focus === 'sweep')) out.push(...sweepPanel(ctx, base));
  if (!focus || focus === 'recommend') out.push(...recommendPanel(ctx, base, st));
  return out;
}

function histogramPanel(ctx, base, st) {
  const edges = st.histogram.edges, counts = st.histogram.counts;
  const maxc = Math.max(...counts);
  const f = frame({x: [edges[0], edges[edges.length - 1]], y: [0, maxc], width: 760, height: 280,
                   xlabel: 'score', ylabel: 'records', label: 'score histogram'});
  const bars = sv('g', {id: 'hist-bars'});
  counts.forEach((c, i) => {
    const x = f.X(edges[i]), x2 = f.X(edges[i + 1]), y = f.Y(c);
    bars.append(sv('rect', {x, y, width: Math.max(0.5, x2 - x - 1), height: f.m.t + f.ph - y,
                            class: 'hist', 'data-count': c, 'data-lo': edges[i], 'data-hi': edges[i + 1]},
                         sv('title', {text: `[${fmt(edges[i])}, ${fmt(edges[i + 1])}${i === counts.length - 1 ? ']' : ')'}: ${c}`})));
  });
  const cut = sv('line', {class: 'cut', y1: f.m.t, y2: f.m.t + f.ph});
  const shade = sv('rect', {class: 'dropped', x: f.m.l, y: f.m.t, height: f.ph});
  f.root.append(shade, bars, cut);

  const lo = edges[0], hi = edges[edges.length - 1];
  const q = st.quantiles || {};
  let t = ctx.params.has('t') ? Number(ctx.params.get('t')) : (q['0.5'] !== undefined ? q['0.5'] : (lo + hi) / 2);
  const slider = el('input', {type: 'range', id: 'threshold', min: lo, max: hi,
                              step: hi > lo ? (hi - lo) / (counts.length * 20) : 'any', 'aria-label': 'threshold'});
  slider.value = String(t);
  const tOut = el('span', {id: 'threshold-value', class: 'num'});
  const kept = el('span', {id: 'kept', class: 'num big'});
  const frac = el('span', {id: 'kept-fraction', class: 'num big'});
  const note = el('span', {id: 'kept-note', class: 'muted'});
  let seq = 0, pending = null;

  // Live from the histogram: the bins whose lower edge is at or above t hold exactly the
  // scores >= t when t is an edge, so the figure is exact there and marked as an estimate
  // elsewhere; the daemon's exact count (stats?threshold=t) replaces it a moment later.
  function fromHistogram(tv) {
    let k = 0, exact = false;
    for (let i = 0; i < counts.length; i++) {
      if (edges[i] >= tv) k += counts[i];
      if (edges[i] === tv) exact = true;
    }
    return {k, exact: exact || tv <= lo};
  }
  function show(tv, k, source) {
    tOut.textContent = fmt(tv, 5);
    tOut.dataset.value = String(tv);
    kept.textContent = (source === 'estimate' ? '≈ ' : '') + fmt(k);
    kept.dataset.value = String(k);
    kept.dataset.source = source;
    kept.dataset.threshold = String(tv);
    frac.textContent = pct(st.count ? k / st.count : 0);
    frac.dataset.value = String(st.count ? k / st.count : 0);
    note.textContent = source === 'daemon' ? 'exact (stats?threshold)' : source === 'estimate' ? 'from the histogram…' : 'from the histogram (exact at a bin edge)';
    // a bar wholly below the threshold is dropped (the last bin is closed: it holds max)
    Array.from(bars.children).forEach((r, i) => r.classList.toggle('off',
      i === counts.length - 1 ? tv > edges[i + 1] : edges[i + 1] <= tv));
    const x = f.X(Math.min(hi, Math.max(lo, tv)));
    cut.setAttribute('x1', x); cut.setAttribute('x2', x);
    shade.setAttribute('width', Math.max(0, x - f.m.l));
  }
  async function exact(tv) {
    const my = ++seq;
    try {
      const r = await api('GET', base + '/stats?bins=1&threshold=' + enc(String(tv)));
      if (my === seq && ctx.live()) show(tv, r.at_or_above, 'daemon');
    } catch (err) {
      if (my === seq && ctx.live()) note.textContent = 'exact count failed: ' + err.message;
    }
  }
  function update(tv) {
    t = tv;
    const h = fromHistogram(tv);
    show(tv, h.k, h.exact ? 'histogram' : 'estimate');
    clearTimeout(pending);
    pending = setTimeout(() => exact(tv), 150);
    timers.push(pending);
  }
  slider.addEventListener('input', () => update(Number(slider.value)));
  ctx.after = () => update(t);

  return [el('h2', {}, 'Score histogram'),
    el('p', {class: 'muted'}, `${counts.length} equal-width bins over [min, max]; the shaded part is dropped by a threshold step.`),
    el('figure', {id: 'histogram'}, f.root),
    el('div', {class: 'slider'}, el('label', {for: 'threshold'}, 'threshold '), slider, ' ', tOut),
    el('p', {class: 'keep'}, 'kept ', kept, ' of ', fmt(st.count), ' scored = ', frac, ' ', note),
    quantileTable(q)];
}

function quantileTable(q) {
  const ks = Object.keys(q).sort((a, b) => Number(a) - Number(b));
  if (!ks.length) return null;
  return table(ks.map(k => 'q' + k), [ks.map(k => q[k])], {id: 'quantiles', class: 'compact'});
}

const SWEEP_EPS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3];

function sweepPanel(ctx, base) {
  const box = el('div', {id: 'sweep'}, el('p', {class: 'muted'}, 'Sweeping…'));
  const eps = ctx.params.has('eps') ? ctx.params.get('eps').split(',').map(Number) : SWEEP_EPS;
  api('POST', base + ':sweep', {eps}).then(r => {
    if (!ctx.live()) return;
    const pts = r.sweep.map(s => [s.eps, s.kept_fraction]);
    box.replaceChildren(
      lineChart([{name: 'kept fraction', points: pts}],
                {logx: true, x: [eps[0], eps[eps.length - 1]], xlabel: 'eps (log scale)', ylabel: 'kept fraction',
                 yfmt: v => pct(v), width: 760, label: 'semdedup eps sweep'}),
      table(['eps', 'kept', 'removed', 'kept fraction'],
            r.sweep.map(s => el('tr', {'data-eps': s.eps},
              el('td', {}, fmt(s.eps)), el('td', {class: 'r'}, num(null, s.kept)),
              el('td', {class: 'r'}, num(null, s.removed)), el('td', {class: 'r'}, num(null, s.kept_fraction)))),
            {id: 'sweep-table'}),
      el('p', {class: 'muted'}, `${fmt(r.records)} records; read from the fitted clusters (no refit).`));
  }).catch(err => ctx.live() && box.replaceChildren(problemBox(err)));
  return [el('h2', {id: 'sec-sweep'}, 'SemDeDup: records kept per eps'), box];
}

// The published fit (Goyal et al. 2024; docs/filters.md "How much to keep") as a starting
// point: users should paste their own parameters or observations.
const RECOMMEND_DEFAULT = {
  pool_size: 128000000, a: 0.025, d: 0.1,
  buckets: [{b: -0.16, c: 6.727}, {b: -0.125, c: 8.545}, {b: -0.10, c: 5.273}, {b: -0.085, c: 2.273}],
};
const BUDGETS_DEFAULT = '32e6, 128e6, 640e6, 1.28e9';

function recommendPanel(ctx, base, st) {
  const area = el('textarea', {id: 'recommend-body', rows: 6, spellcheck: false});
  area.value = ctx.params.get('recommend') || JSON.stringify(RECOMMEND_DEFAULT, null, 1);
  const budgets = el('input', {id: 'recommend-budgets', type: 'text', size: 40});
  budgets.value = ctx.params.get('budgets') || BUDGETS_DEFAULT;
  const box = el('div', {id: 'recommend'});
  async function run() {
    let body, ns;
    try {
      body = JSON.parse(area.value);
      ns = budgets.value.split(',').map(s => Number(s.trim())).filter(n => Number.isFinite(n));
      if (!ns.length) throw new Error('give at least one budget');
    } catch (err) {
      box.replaceChildren(el('div', {class: 'problem'}, 'bad input: ' + err.message));
      return;
    }
    box.replaceChildren(el('p', {class: 'muted'}, 'Predicting…'));
    try {
      const answers = await Promise.all(ns.map(n => api('POST', base + ':recommend', Object.assign({}, body, {budget_samples: n}))));
      if (!ctx.live()) return;
      const series = answers.map((r, i) => ({
        name: budgetLabel(ns[i]) + ' samples seen',
        points: r.curve.map(c => [c.keep_fraction, c.predicted_accuracy, {best: c.m === r.best_m}])}));
      box.replaceChildren(
        lineChart(series, {xlabel: 'keep fraction (top m buckets of the ranking)', ylabel: 'predicted accuracy',
                           xfmt: v => pct(v), width: 760, height: 300, legend: true, label: 'predicted accuracy against keep fraction'}),
        el('p', {class: 'muted'}, 'A hollow marker is each budget\'s best keep fraction.'),
        table(['budget (samples seen)', 'best m', 'keep fraction', 'predicted accuracy', 'threshold', 'kept here'],
              answers.map((r, i) => el('tr', {'data-budget': ns[i]},
                el('td', {}, budgetLabel(ns[i])), el('td', {class: 'r'}, num(null, r.best_m)),
                el('td', {class: 'r'}, num(null, r.keep_fraction)), el('td', {class: 'r'}, num(null, r.predicted_accuracy, 6)),
                el('td', {class: 'r'}, num(null, r.threshold, 6)), el('td', {class: 'r'}, num(null, r.kept)))),
              {id: 'recommend-table'}),
        (answers[0].warnings || []).length ? el('p', {class: 'muted'}, 'warnings: ' + answers[0].warnings.map(w => w.detail || JSON.stringify(w)).join('; ')) : null);
    } catch (err) {
      if (ctx.live()) box.replaceChildren(problemBox(err));
    }
  }
  const go = el('button', {type: 'button', id: 'recommend-run', onclick: run}, 'Predict');
  const prevAfter = ctx.after;
  ctx.after = () => { if (prevAfter) prevAfter(); run(); };
  return [el('h2', {id: 'sec-recommend'}, 'How much to keep for a training budget'),
    el('p', {class: 'muted'}, 'POST :recommend (compute-aware keep fraction). The parameters below are the published fit for one filter and one pool — a worked example; fit your own from small runs (docs/filters.md).'),
    el('div', {class: 'form'}, el('label', {for: 'recommend-body'}, 'parameters (JSON, without budget_samples)'), area,
       el('label', {for: 'recommend-budgets'}, 'budgets, samples seen (comma-separated)'), budgets, go),
    box];
}

// ---- subset funnel ------------------------------------------------------------------------
async function viewSubset(ctx, ds, name) {
  const s = await api('GET', '/v1/datasets/' + enc(ds) + '/subsets/' + enc(name));
  const p = s.provenance || {};
  const steps = p.steps || [];
  const out = [crumbs([ds, ds]), el('h1', {}, 'Subset ', el('code', {}, name), ' ', el('span', {class: 'tag'}, s.state)),
    el('p', {}, num('sub-members', s.members), ' members of a pool of ', num('sub-pool', p.pool),
       p.materialised ? ' · materialised ' + p.materialised : '', p.job ? ' · job ' + p.job : '')];
  if (!steps.length) return out.concat(el('p', {class: 'muted'}, 'Not materialised yet.'));
  const top = Math.max(p.pool || 0, ...steps.map(x => x.in));
  const funnel = el('div', {id: 'funnel'});
  const bar = (label, n, cls, attrs) => {
    const fill = el('div', {class: 'funnel-fill ' + cls});
    fill.style.width = (top ? 100 * n / top : 0).toFixed(2) + '%';
    return el('div', Object.assign({class: 'funnel-row'}, attrs || {}), el('div', {class: 'funnel-label'}, label),
              el('div', {class: 'funnel-track'}, fill), el('div', {class: 'funnel-n r'}, fmt(n)));
  };
  funnel.append(bar('pool', p.pool, 'pool'));
  steps.forEach(x => funnel.append(bar(`step ${x.step}: ${x.filter || ''} ${x.rule} ${x.value === undefined ? '' : JSON.stringify(x.value)}`,
                                       x.out, 'step', {'data-step': x.step})));
  out.push(el('h2', {}, 'Funnel'), funnel,
    table(['step', 'rule', 'filter', 'value', 'threshold', 'in', 'out', 'dropped', 'unscorable'],
          steps.map(x => el('tr', {'data-step': x.step},
            el('td', {}, String(x.step)), el('td', {}, x.rule + (x.per_cluster ? ' per cluster' : '')),
            el('td', {}, (x.filter || '') + (x.version ? ' v' + x.version : '')),
            el('td', {}, x.value === undefined ? '' : JSON.stringify(x.value)),
            el('td', {class: 'r'}, num(null, x.threshold === undefined ? null : x.threshold, 6)),
            el('td', {class: 'r'}, num(null, x.in, 0)), el('td', {class: 'r'}, num(null, x.out)),
            el('td', {class: 'r'}, num(null, x.in - x.out)), el('td', {class: 'r'}, num(null, x.unscorable === undefined ? null : x.unscorable)))),
          {id: 'steps'}));
  for (const x of steps) {
    if (!x.clusters) continue;
    const c = x.clusters;
    out.push(el('h2', {}, `Step ${x.step} per ${c.label || 'cluster'}`),
      el('p', {}, num(null, c.count), ' clusters, ', num(null, c.emptied), ' emptied by this step, smallest kept share ',
         num(null, c.min_kept_share), '.'),
      barChart(c.in.map((n, i) => ({label: String(i), values: [n, c.out[i]]})), ['in', 'out'],
               {width: 760, height: 240, xlabel: c.label || 'cluster', ylabel: 'records', label: 'per cluster in and out'}),
      table(['cluster', 'in', 'out', 'kept share'],
            c.in.map((n, i) => el('tr', {'data-cluster': i}, el('td', {}, String(i)),
              el('td', {class: 'r'}, num(null, n)), el('td', {class: 'r'}, num(null, c.out[i])),
              el('td', {class: 'r'}, pct(n ? c.out[i] / n : null)))),
            {class: 'clusters compact', 'data-step': x.step}));
  }
  return out;
}

// ---- adapter ------------------------------------------------------------------------------
async function viewAdapter(ctx, ds, name) {
  const a = await api('GET', '/v1/datasets/' + enc(ds) + '/adapters/' + enc(name));
  const out = [crumbs([ds, ds]), el('h1', {}, 'Cosine Adapter ', el('code', {}, name), ' ', el('span', {class: 'tag'}, a.state), ' ',
                                    el('span', {class: 'muted'}, 'v' + a.version))];
  const tr = a.training;
  if (!tr || !tr.held_out) return out.concat(el('p', {class: 'muted'}, 'Not trained yet.'));
  const rows = [['adapter', tr.held_out.adapter], ['raw cosine, same recall', tr.held_out.raw_cosine],
                ['top-' + ((tr.held_out.top_k || {}).k || 'k') + ' by cosine', tr.held_out.top_k]].filter(r => r[1]);
  out.push(el('p', {}, 'global threshold ', num('ad-threshold', a.threshold), '; ', num(null, tr.epochs), ' epochs (best ',
                       num(null, tr.best_epoch), '), held-out loss ', num(null, tr.held_out_loss), '; held-out queries ',
                       num(null, (tr.queries || {}).held_out), '.'),
    el('h2', {}, 'Held-out precision and recall'),
    barChart(rows.map(([label, m]) => ({label, values: [m.precision, m.recall]})), ['precision', 'recall'],
             {ymax: 1, width: 620, height: 260, ylabel: 'share', yfmt: v => pct(v), label: 'precision and recall'}),
    table(['', 'threshold', 'precision', 'recall', 'F1'],
          rows.map(([label, m]) => el('tr', {'data-row': label.split(' ')[0]}, el('td', {}, label),
            el('td', {class: 'r'}, num(null, m.threshold === undefined ? null : m.threshold)),
            el('td', {class: 'r'}, num(null, m.precision)), el('td', {class: 'r'}, num(null, m.recall)),
            el('td', {class: 'r'}, num(null, m.f1 === undefined ? null : m.f1)))),
          {id: 'adapter-metrics'}));
  return out;
}

// ---- hubness ------------------------------------------------------------------------------
async function viewHubness(ctx, ds, name) {
  const base = '/v1/datasets/' + enc(ds) + '/hubness/' + enc(name);
  const n = await api('GET', base);
  // the normalizer's own query bank when it was read from a dataset (its view adds "items",
  // which a request does not take), else an even sample of the gallery space
  const b = n.query_bank || {};
  const qb = b.dataset ? {dataset: b.dataset, space: b.space, sample: Math.min(b.items || 500, 1000)}
                       : {dataset: ds, space: n.space, sample: 500};
  if (b.dataset && b.subset) qb.subset = b.subset;
  const area = el('textarea', {id: 'report-body', rows: 3, spellcheck: false});
  area.value = ctx.params.get('report') || JSON.stringify({queries: qb, k: 10, method: 'dualis'});
  const box = el('div', {id: 'hubness-report'});
  async function run() {
    let body;
    try { body = JSON.parse(area.value); } catch (err) { box.replaceChildren(el('div', {class: 'problem'}, 'bad JSON: ' + err.message)); return; }
    box.replaceChildren(el('p', {class: 'muted'}, 'Computing N_k…'));
    try {
      const r = await api('POST', base + ':report', body);
      if (!ctx.live()) return;
      const keys = [['skewness', 'N_k skewness'], ['skewness_retrieved_only', 'skewness (retrieved only)'],
                    ['never_retrieved', 'never retrieved'], ['max_n_k', 'largest N_k']];
      const hubs = (which) => {
        const list = r[which].top_hubs || [];
        return el('div', {class: 'half'}, el('h3', {}, which === 'before' ? 'Top hubs before (raw cosine)' : `Top hubs after (${r.method})`),
          barChart(list.map(h => ({label: '', values: [h.n_k]})), ['N_k'],
                   {ymax: Math.max(1, r.before.max_n_k, r.after.max_n_k), width: 370, height: 200, ylabel: 'N_k', label: 'top hubs ' + which}),
          table(['id', 'N_k'], list.map(h => el('tr', {}, el('td', {}, h.id), el('td', {class: 'r'}, num(null, h.n_k)))),
                {class: 'compact hubs', 'data-which': which}));
      };
      box.replaceChildren(
        el('p', {}, `N_${r.k} over ${fmt(r.queries)} queries and ${fmt(r.gallery)} gallery records, ${r.method} re-ranking the top ${fmt(r.candidates)}.`),
        table(['', 'before', 'after'], keys.map(([k, label]) => el('tr', {'data-key': k}, el('td', {}, label),
          el('td', {class: 'r'}, num(null, r.before[k])), el('td', {class: 'r'}, num(null, r.after[k])))), {id: 'hubness-table'}),
        el('div', {class: 'pair'}, hubs('before'), hubs('after')));
    } catch (err) {
      if (ctx.live()) box.replaceChildren(problemBox(err));
    }
  }
  ctx.after = run;
  return [crumbs([ds, ds]), el('h1', {}, 'Hubness normalizer ', el('code', {}, name), ' ',
                               el('span', {class: 'tag'}, n.ready ? 'ready' : 'not ready')),
    el('p', {}, 'space ', el('code', {}, String(n.space)), ', version ', fmt(n.version), '.'),
    el('h2', {}, 'k-occurrence N_k before and after'),
    el('div', {class: 'form'}, el('label', {for: 'report-body'}, 'report request (POST :report)'), area,
       el('button', {type: 'button', onclick: run}, 'Report')),
    box];
}

// ---- jobs ---------------------------------------------------------------------------------
function jobsTable(jobs) {
  if (!jobs.length) return el('p', {class: 'muted'}, 'No jobs.');
  return table(['id', 'kind', 'dataset', 'target', 'state', 'progress', 'processed / total', 'rate /s', 'eta s'],
    jobs.map(j => el('tr', {'data-job': j.id, 'data-state': j.state},
      el('td', {}, String(j.id)), el('td', {}, j.kind), el('td', {}, j.dataset || ''), el('td', {}, j.target || ''),
      el('td', {class: 'state ' + j.state}, j.state + (j.error ? ': ' + (j.error.code || '') : '')),
      el('td', {}, progressBar(j.processed, j.total, j.state)),
      el('td', {class: 'r'}, fmt(j.processed) + ' / ' + fmt(j.total)),
      el('td', {class: 'r'}, fmt(j.rate_per_s, 3)), el('td', {class: 'r'}, fmt(j.eta_s, 3)))),
    {class: 'jobs'});
}

async function viewJobs(ctx) {
  const box = el('div', {id: 'jobs'});
  const stamp = el('p', {class: 'muted', id: 'jobs-stamp'});
  async function poll() {
    try {
      const r = await api('GET', '/v1/jobs?limit=50');
      if (!ctx.live()) return;
      box.replaceChildren(jobsTable(r.jobs || []));
      stamp.textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC, every 2 s';
    } catch (err) {
      if (ctx.live()) box.replaceChildren(problemBox(err));
    }
  }
  await poll();
  timers.push(setInterval(poll, 2000));
  return [el('h1', {}, 'Jobs'), stamp, box];
}

// ---- API reference from the OpenAPI document ------------------------------------------------
async function viewApi() {
  const doc = await api('GET', '/v1/openapi.json');
  const schemas = (doc.components || {}).schemas || {};
  const ref = r => r.replace(/^#\/components\/schemas\//, '');
  const jump = name => el('a', {href: '#/api', class: 'ref', onclick: ev => {
    ev.preventDefault();
    const t = document.getElementById('schema-' + name);
    if (t) t.scrollIntoView();
  }}, name);
  function type(s) {
    if (!s) return '';
    if (s.$ref) return jump(ref(s.$ref));
    if (s.oneOf || s.anyOf) return el('span', {}, (s.oneOf || s.anyOf).map((x, i) => [i ? ' | ' : '', type(x)]));
    if (s.type === 'array') return el('span', {}, 'array of ', type(s.items));
    let t = Array.isArray(s.type) ? s.type.join(' | ') : (s.type || 'any');
    if (s.enum) t += ' (' + s.enum.map(e => JSON.stringify(e)).join(', ') + ')';
    return t;
  }
  const response = (code, r) => el('li', {}, el('strong', {}, code), ' ', r.description || '',
    r.content ? [' — ', Object.entries(r.content).map(([mt, c], i) =>
      [i ? ', ' : '', el('code', {}, mt), c.schema ? [' ', type(c.schema)] : ''])] : '');
  const ops = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'put', 'post', 'patch', 'delete'].includes(method)) continue;
      const params = (op.parameters || []).concat(item.parameters || []);
      const body = op.requestBody && op.requestBody.content;
      ops.push(el('section', {class: 'op', 'data-method': method.toUpperCase(), 'data-path': path},
        el('h3', {}, el('span', {class: 'method ' + method}, method.toUpperCase()), ' ', el('code', {}, path)),
        op.summary ? el('p', {}, op.summary) : null,
        op.description ? el('p', {class: 'muted'}, op.description) : null,
        op.security && op.security.length === 0 ? el('p', {class: 'muted'}, 'no key needed') : null,
        params.length ? table(['parameter', 'in', 'required', 'type', ''], params.map(p => [
          p.name, p.in, p.required ? 'yes' : '', type(p.schema), p.description || ''])) : null,
        body ? el('p', {}, 'body: ', Object.entries(body).map(([mt, c], i) => [i ? ', ' : '', el('code', {}, mt), ' ', type(c.schema)])) : null,
        el('ul', {class: 'responses'}, Object.entries(op.responses || {}).map(([code, r]) => response(code, r)))));
    }
  }
  const schemaNodes = Object.entries(schemas).map(([name, s]) => el('section', {class: 'schema', id: 'schema-' + name},
    el('h3', {}, name), s.description ? el('p', {class: 'muted'}, s.description) : null,
    s.properties ? table(['property', 'type', 'required', ''], Object.entries(s.properties).map(([k, v]) =>
      [k, type(v), (s.required || []).includes(k) ? 'yes' : '', v.description || ''])) : el('p', {}, type(s))));
  return [el('h1', {}, (doc.info || {}).title + ' API ', el('span', {class: 'muted'}, (doc.info || {}).version || '')),
    el('p', {}, (doc.info || {}).description || ''),
    el('p', {class: 'muted', id: 'api-count'}, `${ops.length} operations, ${schemaNodes.length} schemas, from /v1/openapi.json.`),
    el('h2', {}, 'Operations'), el('div', {id: 'ops'}, ops), el('h2', {}, 'Schemas'), el('div', {id: 'schemas'}, schemaNodes)];
}

// ---- start --------------------------------------------------------------------------------
function start() {
  takeKeyFromHash();
  const input = document.getElementById('key');
  input.value = key();
  document.getElementById('keyform').addEventListener('submit', ev => {
    ev.preventDefault();
    sessionStorage.setItem(KEY_SLOT, input.value.trim());
    render();
  });
  document.getElementById('keyclear').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_SLOT);
    input.value = '';
    render();
  });
  window.addEventListener('hashchange', () => { takeKeyFromHash(); render(); });
  render();
}

start();
