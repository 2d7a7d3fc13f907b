// liftguard clinician dashboard: a single page over the JSON API under /api/v1.
//
// - The bearer token lives in this tab's sessionStorage and is sent as
//   `Authorization: Bearer …`; it never goes into a URL or a cookie.
// - Every value from the API is written with textContent / setAttribute, never as HTML.
// - Charts are SVG drawn here. Elements carry data-* attributes with the values they
//   show (tests read them).
// - #view[data-state] says what the page shows: loading, ready, login, forbidden,
//   not-found, error.
'use strict';

const TOKEN_KEY = 'liftguard.token';
const SVG_NS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#2563eb', '#e8590c', '#0f9d76', '#c2255c', '#7048e8', '#b08800', '#0b7285', '#5c677d'];
const EVENT = '#d6336c';
const WEEK_US = 7 * 86400 * 1e6;

const state = { me: null, seq: 0 };

// ----- small DOM helpers ---------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// ----- formatting ----------------------------------------------------------------------

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

function fmtNum(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(x).toLocaleString('en-GB', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function fmtSmart(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (Number.isInteger(x)) return fmtInt(x);
  const a = Math.abs(x);
  return fmtNum(x, a >= 100 ? 0 : a >= 10 ? 1 : 2);
}
function fmtSci(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (x === 0) return '0';
  const [m, e] = x.toExponential(1).split('e');
  const sup = { '-': '⁻', 0: '⁰', 1: '¹', 2: '²', 3: '³', 4: '⁴', 5: '⁵', 6: '⁶', 7: '⁷', 8: '⁸', 9: '⁹' };
  const exp = String(Number(e)).split('').map((c) => sup[c] || c).join('');
  return `${m}×10${exp}`;
}
function fmtInt(x) {
  if (x === null || x === undefined) return '–';
  return Number(x).toLocaleString('en-GB');
}
function fmtPct(p, digits = 0) {
  if (p === null || p === undefined) return '–';
  return fmtNum(p * 100, digits) + ' %';
}
function fmtSigned(x, digits = 1) {
  if (x === null || x === undefined) return '–';
  return (x > 0 ? '+' : x < 0 ? '−' : '±') + fmtNum(Math.abs(x), digits);
}
function dateOf(us) { return new Date(us / 1000); }
function fmtDate(us) {
  const d = dateOf(us);
  return `${DAYS[d.getUTCDay()]} ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}
function fmtShortDate(us) {
  const d = dateOf(us);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
}
function pad2(n) { return String(n).padStart(2, '0'); }
function fmtTime(us) {
  const d = dateOf(us);
  return `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
}
function fmtDateTime(us) { return `${fmtDate(us)}, ${fmtTime(us)} UTC`; }
function fmtDuration(us) {
  const min = Math.round(us / 60e6);
  if (min < 60) return `${min} min`;
  return `${Math.floor(min / 60)} h ${pad2(min % 60)} min`;
}
function label(s) {
  if (!s) return 'unknown';
  return String(s).replace(/_/g, ' ');
}
function exerciseLabel(e) {
  return { deadlift: 'Deadlift', squat: 'Squat', kettlebell_swing: 'Kettlebell swing', carry: 'Carry' }[e] || label(e);
}
// ISO weeks as axis labels: `W07`, or `2026-W07` when the weeks span more than one year.
function weekLabels(isos) {
  const years = new Set(isos.map((w) => (w || '').slice(0, 4)));
  return isos.map((w) => (!w ? '' : years.size > 1 ? w : w.replace(/^(\d{4})-W/, 'W')));
}

// ----- API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, params) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== '') url.searchParams.set(k, v);
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  let r;
  try {
    r = await fetch(url, { headers, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', 'The server did not answer: ' + e.message);
  }
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  if (!r.ok) {
    const e = (body && body.error) || {};
    throw new ApiError(r.status, e.code || 'HTTP_' + r.status, e.message || r.statusText);
  }
  return body;
}

// ----- routing -------------------------------------------------------------------------

function view() { return document.getElementById('view'); }

function setState(st) { view().dataset.state = st; }

function navigate(href, replace) {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  route();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', () => route());
window.addEventListener('DOMContentLoaded', () => route());

async function route() {
  const seq = ++state.seq;
  const path = location.pathname.replace(/\/+$/, '') || '/';
  if (path === '/dashboard/login') return showLogin();
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    const next = location.pathname + location.search;
    history.replaceState(null, '', '/dashboard/login?next=' + encodeURIComponent(next));
    return showLogin();
  }
  setState('loading');
  clear(view()).append(h('p', { class: 'muted pad' }, 'Loading…'));
  try {
    if (!state.me) state.me = await api('/api/v1/me');
    renderChrome(path);
    let m;
    if (path === '/dashboard' || path === '/dashboard/population') {
      await populationPage(seq);
    } else if ((m = path.match(/^\/dashboard\/athletes\/([^/]+)$/))) {
      await athletePage(seq, decodeURIComponent(m[1]));
    } else {
      statusPage(404, 'Not found', `There is no page at ${location.pathname}.`, 'not-found');
    }
  } catch (e) {
    if (seq !== state.seq) return;
    failed(e);
  }
}

function failed(e) {
  if (!(e instanceof ApiError)) {
    console.error(e);
    statusPage(500, 'Something went wrong', String(e && e.message ? e.message : e), 'error');
    return;
  }
  if (e.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.me = null;
    history.replaceState(null, '', '/dashboard/login');
    showLogin(`Your session ended: ${e.message}. Sign in again.`);
  } else if (e.status === 403) {
    statusPage(403, 'Not permitted', e.message, 'forbidden');
  } else if (e.status === 404) {
    statusPage(404, 'Not found', e.message, 'not-found');
  } else {
    statusPage(e.status || 500, 'Could not load this page', e.message, 'error');
  }
}

function renderChrome(path) {
  const nav = clear(document.getElementById('nav'));
  nav.append(h('a', { href: '/dashboard/', 'data-link': true, class: path.startsWith('/dashboard/athletes') ? '' : 'active' }, 'Population'));
  const who = clear(document.getElementById('who'));
  const me = state.me;
  if (!me) return;
  who.append(
    h('span', { class: 'badge role' }, label(me.role)),
    h('span', { class: 'actor', 'data-actor': me.actor }, me.clinician_id || me.actor),
    me.identity
      ? h('span', { class: 'badge identity', title: 'Your grants include athlete identities' }, 'identified')
      : h('span', { class: 'badge pseudo', title: 'Your consent grants do not include identity: athletes are shown by pseudonym' }, 'pseudonymised'),
    h('button', { type: 'button', id: 'sign-out', onclick: signOut }, 'Sign out'),
  );
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.me = null;
  clear(document.getElementById('who'));
  clear(document.getElementById('nav'));
  navigate('/dashboard/login', true);
}

// ----- login ---------------------------------------------------------------------------

function showLogin(message) {
  state.seq++;
  clear(document.getElementById('who'));
  clear(document.getElementById('nav'));
  const err = h('div', { class: 'form-error', id: 'login-error', role: 'alert', hidden: !message }, message || '');
  const input = h('input', {
    type: 'password', id: 'token', name: 'token', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'lgt_…', 'aria-label': 'Access token', required: true,
  });
  const form = h('form', { id: 'login-form', novalidate: true },
    h('label', { for: 'token', class: 'muted' }, 'Access token'),
    input,
    err,
    h('button', { class: 'button', type: 'submit', id: 'sign-in' }, 'Sign in'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) {
      err.hidden = false;
      err.textContent = 'Paste your access token first.';
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    state.me = null;
    try {
      state.me = await api('/api/v1/me');
    } catch (ex) {
      sessionStorage.removeItem(TOKEN_KEY);
      err.hidden = false;
      err.textContent = ex instanceof ApiError
        ? `Sign-in failed (${ex.status}): ${ex.message}`
        : 'Sign-in failed: ' + ex;
      setState('login-failed');
      return;
    }
    const next = new URLSearchParams(location.search).get('next');
    navigate(next && next.startsWith('/dashboard/') && !next.startsWith('/dashboard/login') ? next : '/dashboard/', true);
  });
  clear(view()).append(h('div', { class: 'center-page' },
    h('div', { class: 'panel' },
      h('h1', {}, 'Sign in'),
      h('p', {}, 'Paste the access token you were issued (clinician, gym admin or operator). It is kept in this browser tab only and sent with each request.'),
      form,
    )));
  setState('login');
  input.focus();
}

// ----- status pages --------------------------------------------------------------------

function statusPage(code, title, reason, st) {
  const icon = s('svg', { viewBox: '0 0 24 24', width: 28, height: 28, fill: 'none', stroke: EVENT, 'stroke-width': 2, 'stroke-linecap': 'round' },
    code === 403
      ? [s('rect', { x: 5, y: 11, width: 14, height: 9, rx: 2 }), s('path', { d: 'M8 11V8a4 4 0 0 1 8 0v3' })]
      : [s('circle', { cx: 12, cy: 12, r: 9 }), s('path', { d: 'M12 7v6M12 16.5v.5' })]);
  clear(view()).append(h('div', { class: 'center-page' },
    h('div', { class: 'panel status-page', id: 'status-page', 'data-status': code },
      h('div', { class: 'icon' }, icon),
      h('div', { class: 'code' }, `${code} · ${title}`),
      h('h1', {}, code === 403 ? 'You may not see this' : title),
      h('div', { class: 'reason', id: 'status-reason' }, reason || ''),
      h('a', { class: 'button secondary', href: '/dashboard/', 'data-link': true }, 'Back to the population'),
    )));
  setState(st);
}

// ----- charts --------------------------------------------------------------------------

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) hi = lo + 1;
  const span = hi - lo;
  const step0 = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const err = step0 / mag;
  const step = (err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1) * mag;
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = start; v <= end + step / 2; v += step) ticks.push(Math.round(v / step) * step);
  return ticks;
}

function tickText(v) {
  const a = Math.abs(v);
  if (a >= 1000) return fmtInt(Math.round(v));
  if (a >= 10 || Number.isInteger(v)) return String(Math.round(v * 10) / 10);
  return String(Math.round(v * 100) / 100);
}

// A frame: categorical x (weeks), linear y; returns the svg and scales.
function frame({ width = 640, height = 260, cats, yLo, yHi, yTitle, xTitle, yFormat, chart }) {
  const m = { l: 54, r: 14, t: 12, b: xTitle ? 44 : 28 };
  const ticks = niceTicks(yLo, yHi);
  const lo = ticks[0];
  const hi = ticks[ticks.length - 1];
  const pw = width - m.l - m.r;
  const ph = height - m.t - m.b;
  const band = pw / Math.max(cats.length, 1);
  const x = (i) => m.l + band * (i + 0.5);
  const y = (v) => m.t + ph - ((v - lo) / (hi - lo || 1)) * ph;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'data-chart': chart });
  const g = s('g', { class: 'axes' });
  for (const t of ticks) {
    g.append(s('line', { class: 'grid-line', x1: m.l, x2: width - m.r, y1: y(t), y2: y(t) }));
    g.append(s('text', { x: m.l - 8, y: y(t) + 3.5, 'text-anchor': 'end' }, yFormat ? yFormat(t) : tickText(t)));
  }
  g.append(s('line', { class: 'axis-line', x1: m.l, x2: width - m.r, y1: m.t + ph, y2: m.t + ph }));
  const every = Math.max(1, Math.ceil(cats.length / Math.floor(pw / 56)));
  cats.forEach((c, i) => {
    if (i % every !== 0 && i !== cats.length - 1) return;
    g.append(s('text', { x: x(i), y: m.t + ph + 16, 'text-anchor': 'middle' }, c));
  });
  if (yTitle) {
    g.append(s('text', { class: 'axis-title', transform: `translate(13 ${m.t + ph / 2}) rotate(-90)`, 'text-anchor': 'middle' }, yTitle));
  }
  if (xTitle) {
    g.append(s('text', { class: 'axis-title', x: m.l + pw / 2, y: height - 6, 'text-anchor': 'middle' }, xTitle));
  }
  svg.append(g);
  return { svg, x, y, band, m, pw, ph, lo, hi };
}

function legend(items) {
  return h('div', { class: 'legend' }, items.map((it) =>
    h('span', { class: 'key', 'data-legend': it.name },
      h('span', { class: 'swatch ' + (it.kind || ''), style: null, 'data-color': it.color }), it.name)));
}

// Colours are applied after creation (CSP forbids inline style attributes from HTML,
// but setting element.style from script is allowed).
function paintLegend(el) {
  el.querySelectorAll('.swatch[data-color]').forEach((sw) => {
    const c = sw.dataset.color;
    if (sw.classList.contains('box')) sw.style.color = c;
    else sw.style.background = c;
  });
  return el;
}

function emptyState(title, hint) {
  return h('div', { class: 'empty', 'data-empty': true }, h('strong', {}, title), hint ? h('span', {}, hint) : null);
}

// Lines over weeks: series = [{name, color, values: [{i, v, title}]}].
function lineChart({ chart, cats, series, yTitle, xTitle, yMin, yMax, yFormat, height, width }) {
  const all = series.flatMap((sr) => sr.values.map((p) => p.v)).filter((v) => v !== null && v !== undefined);
  if (!all.length) return null;
  const lo = yMin !== undefined ? yMin : Math.min(0, ...all);
  const hi = yMax !== undefined ? yMax : Math.max(...all) * 1.1 || 1;
  const f = frame({ cats, yLo: lo, yHi: hi, yTitle, xTitle, yFormat, chart, height, width });
  f.svg.setAttribute('data-series-count', series.length);
  f.svg.setAttribute('data-weeks', cats.length);
  for (const sr of series) {
    const g = s('g', { class: 'series', 'data-series': sr.name, 'data-points': sr.values.length });
    // Break the line where a week has no value.
    let d = '';
    let pen = false;
    const byI = new Map(sr.values.map((p) => [p.i, p]));
    for (let i = 0; i < cats.length; i++) {
      const p = byI.get(i);
      if (!p || p.v === null || p.v === undefined) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${f.x(i).toFixed(1)} ${f.y(p.v).toFixed(1)}`;
      pen = true;
    }
    g.append(s('path', { class: 'series-line', d, stroke: sr.color }));
    for (const p of sr.values) {
      if (p.v === null || p.v === undefined) continue;
      g.append(s('circle', {
        class: 'dot', cx: f.x(p.i), cy: f.y(p.v), r: 3.6, fill: sr.color,
        'data-week': cats[p.i], 'data-value': p.v,
      }, s('title', {}, p.title || `${cats[p.i]}: ${tickText(p.v)}`)));
    }
    f.svg.append(g);
  }
  return f.svg;
}

// Distributions over weeks: series = [{name, color, values: [{i, d:{q1,median,q3,p90}, n}]}].
// Box plots (IQR box, median line, whisker to the 90th percentile) while they fit, bands
// (IQR area, median line, dashed 90th percentile) when there are many weeks × groups.
function distributionChart({ chart, cats, series, yTitle, xTitle, yMax, width, height }) {
  const vals = series.flatMap((sr) => sr.values.filter((p) => p.d));
  if (!vals.length) return null;
  const hi = yMax !== undefined ? yMax : Math.max(...vals.map((p) => p.d.p90)) * 1.08 || 1;
  const f = frame({ cats, yLo: 0, yHi: hi, yTitle, xTitle, chart, width, height });
  const boxes = cats.length * series.length <= 72;
  f.svg.setAttribute('data-series-count', series.length);
  f.svg.setAttribute('data-weeks', cats.length);
  f.svg.setAttribute('data-mode', boxes ? 'box' : 'band');
  series.forEach((sr, k) => {
    const g = s('g', { class: 'series', 'data-series': sr.name, 'data-points': sr.values.filter((p) => p.d).length });
    if (boxes) {
      const slot = f.band * 0.8 / series.length;
      const w = Math.max(3, Math.min(26, slot * 0.72));
      for (const p of sr.values) {
        if (!p.d) continue;
        const cx = f.x(p.i) - f.band * 0.4 + slot * (k + 0.5);
        const b = s('g', {
          class: 'box', 'data-week': cats[p.i], 'data-median': p.d.median, 'data-q1': p.d.q1,
          'data-q3': p.d.q3, 'data-p90': p.d.p90,
        });
        b.append(s('line', { x1: cx, x2: cx, y1: f.y(p.d.q3), y2: f.y(p.d.p90), stroke: sr.color, 'stroke-width': 1.4 }));
        b.append(s('line', { x1: cx - w / 4, x2: cx + w / 4, y1: f.y(p.d.p90), y2: f.y(p.d.p90), stroke: sr.color, 'stroke-width': 1.4 }));
        const top = f.y(p.d.q3);
        b.append(s('rect', {
          x: cx - w / 2, y: top, width: w, height: Math.max(1.5, f.y(p.d.q1) - top), rx: 2,
          fill: sr.color, 'fill-opacity': 0.16, stroke: sr.color, 'stroke-width': 1.4,
        }));
        b.append(s('line', { x1: cx - w / 2, x2: cx + w / 2, y1: f.y(p.d.median), y2: f.y(p.d.median), stroke: sr.color, 'stroke-width': 2.4 }));
        b.append(s('title', {}, `${cats[p.i]} · ${sr.name}: median ${fmtNum(p.d.median)}, IQR ${fmtNum(p.d.q1)}–${fmtNum(p.d.q3)}, 90th percentile ${fmtNum(p.d.p90)}${p.n ? ` (${fmtInt(p.n)} reps)` : ''}`));
        g.append(b);
      }
    } else {
      const pts = sr.values.filter((p) => p.d).sort((a, b) => a.i - b.i);
      const upper = pts.map((p) => `${f.x(p.i).toFixed(1)} ${f.y(p.d.q3).toFixed(1)}`);
      const lower = pts.slice().reverse().map((p) => `${f.x(p.i).toFixed(1)} ${f.y(p.d.q1).toFixed(1)}`);
      g.append(s('path', { d: `M${upper.join('L')}L${lower.join('L')}Z`, fill: sr.color, 'fill-opacity': 0.14, stroke: 'none' }));
      g.append(s('path', { class: 'series-line', d: 'M' + pts.map((p) => `${f.x(p.i).toFixed(1)} ${f.y(p.d.median).toFixed(1)}`).join('L'), stroke: sr.color }));
      g.append(s('path', { d: 'M' + pts.map((p) => `${f.x(p.i).toFixed(1)} ${f.y(p.d.p90).toFixed(1)}`).join('L'), stroke: sr.color, fill: 'none', 'stroke-dasharray': '4 3', 'stroke-width': 1.3 }));
      for (const p of pts) {
        g.append(s('g', { class: 'box', 'data-week': cats[p.i], 'data-median': p.d.median, 'data-q1': p.d.q1, 'data-q3': p.d.q3, 'data-p90': p.d.p90 }));
      }
    }
    f.svg.append(g);
  });
  return f.svg;
}

// A sparkline of weekly values over `n` weeks: points = [{i, v}].
function sparkline(points, n, color, title) {
  const W = 120;
  const H = 30;
  const svg = s('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, width: W, height: H, 'data-points': points.length, role: 'img' });
  svg.append(s('title', {}, title));
  const vs = points.map((p) => p.v);
  if (!vs.length) return svg;
  const hi = Math.max(...vs, 1);
  const x = (i) => 4 + (n > 1 ? (i / (n - 1)) * (W - 8) : (W - 8) / 2);
  const y = (v) => H - 4 - (v / hi) * (H - 8);
  svg.append(s('line', { x1: 4, x2: W - 4, y1: H - 4, y2: H - 4, stroke: '#e2e7ef' }));
  if (points.length > 1) {
    svg.append(s('polyline', { points: points.map((p) => `${x(p.i).toFixed(1)},${y(p.v).toFixed(1)}`).join(' '), fill: 'none', stroke: color, 'stroke-width': 1.8, 'stroke-linejoin': 'round' }));
  }
  points.forEach((p, k) => {
    svg.append(s('circle', { cx: x(p.i), cy: y(p.v), r: k === points.length - 1 ? 2.8 : 1.6, fill: color, 'data-week-index': p.i, 'data-value': p.v }));
  });
  return svg;
}

// ----- population page -----------------------------------------------------------------

const BREAKDOWNS = [
  ['', 'Whole population'], ['gym', 'Gym'], ['exercise', 'Exercise'], ['age_band', 'Age band'],
  ['sex', 'Sex'], ['training_age_band', 'Training age'], ['sport', 'Sport'],
];
const PERIODS = [['', 'All weeks'], ['8', 'Last 8 weeks'], ['12', 'Last 12 weeks'], ['26', 'Last 26 weeks'], ['52', 'Last 52 weeks']];
const EXERCISES = [['', 'All exercises'], ['deadlift', 'Deadlift'], ['squat', 'Squat'], ['kettlebell_swing', 'Kettlebell swing'], ['carry', 'Carry']];

function groupKey(row, by) {
  if (!by) return 'All athletes';
  const v = row[by];
  return by === 'exercise' ? exerciseLabel(v) : label(v);
}

function select(id, name, options, value, onchange) {
  const el = h('select', { id, name }, options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
  el.addEventListener('change', onchange);
  return h('label', { for: id }, name, el);
}

async function populationPage(seq) {
  const q = new URLSearchParams(location.search);
  const by = q.get('group_by') || '';
  const gym = q.get('gym') || '';
  const exercise = q.get('exercise') || '';
  const period = q.get('weeks') || '';
  const all = q.get('all') === '1';
  const filter = { gym, exercise };
  const me = state.me;
  const [overall, grouped, trending, byGym] = await Promise.all([
    api('/api/v1/trends', filter),
    by ? api('/api/v1/trends', { ...filter, group_by: by }) : null,
    api('/api/v1/trending', { ...filter, all: all ? 'true' : '' }),
    // The gym list: the caller's gyms, or for the operator every gym with data.
    me.all_gyms ? api('/api/v1/trends', { group_by: 'gym' }) : null,
  ]);
  if (seq !== state.seq) return;
  const gyms = byGym ? [...new Set(byGym.rows.map((r) => r.gym_id))].sort() : me.gym_ids;

  const setParam = (k, v) => {
    const p = new URLSearchParams(location.search);
    if (v) p.set(k, v); else p.delete(k);
    navigate('/dashboard/' + (p.toString() ? '?' + p : ''), true);
  };

  // Weeks shown: the period counts back from the newest week with data.
  let weeks = [...new Set(overall.rows.map((r) => r.week_start_us))].sort((a, b) => a - b);
  if (period && weeks.length) {
    const cut = weeks[weeks.length - 1] - (Number(period) - 1) * WEEK_US;
    weeks = weeks.filter((w) => w >= cut);
  }
  const index = new Map(weeks.map((w, i) => [w, i]));
  const isoOf = new Map(overall.rows.map((r) => [r.week_start_us, r.iso_week]));
  const cats = weekLabels(weeks.map((w) => isoOf.get(w)));
  const rowsOverall = overall.rows.filter((r) => index.has(r.week_start_us));
  const rows = (grouped ? grouped.rows : overall.rows).filter((r) => index.has(r.week_start_us));

  const groups = [...new Set(rows.map((r) => groupKey(r, by)))].sort();
  const color = new Map(groups.map((g, i) => [g, PALETTE[i % PALETTE.length]]));
  const seriesOf = (pick) => groups.map((g) => ({
    name: g,
    color: color.get(g),
    values: rows.filter((r) => groupKey(r, by) === g).map((r) => pick(r)),
  }));

  const v = clear(view());
  v.append(h('section', { class: 'page-head' },
    h('div', {},
      h('h1', {}, 'Population trends'),
      h('p', { class: 'sub' }, 'Extensor-moment events, fatigue and stability of the athletes your access covers, by ISO week (UTC).'))));

  v.append(h('form', { class: 'filters', id: 'filters', onsubmit: (e) => e.preventDefault() },
    select('f-gym', 'Gym', [['', gyms.length === 1 ? gyms[0] : 'All gyms'], ...gyms.filter(() => gyms.length > 1).map((g) => [g, g])], gym, (e) => setParam('gym', e.target.value)),
    select('f-by', 'Break down by', BREAKDOWNS, by, (e) => setParam('group_by', e.target.value)),
    select('f-ex', 'Exercise', EXERCISES, exercise, (e) => setParam('exercise', e.target.value)),
    select('f-period', 'Period', PERIODS, period, (e) => setParam('weeks', e.target.value)),
  ));

  // KPIs over the weeks shown.
  const reps = rowsOverall.reduce((a, r) => a + r.reps, 0);
  const events = rowsOverall.reduce((a, r) => a + r.extensor_events, 0);
  const latest = rowsOverall[rowsOverall.length - 1];
  const trendingCount = trending.athletes.filter((a) => a.trending_event_rate || a.trending_risk).length;
  v.append(h('div', { class: 'kpis', id: 'kpis', 'data-reps': reps, 'data-events': events, 'data-weeks': weeks.length },
    kpi('Weeks', fmtInt(weeks.length), weeks.length ? `${fmtShortDate(weeks[0])} – ${fmtShortDate(weeks[weeks.length - 1] + WEEK_US - 1)}` : 'no data yet'),
    kpi('Athletes', latest ? fmtInt(latest.athletes) : '–', 'active in the latest week'),
    kpi('Reps', fmtInt(reps), 'analysed'),
    kpi('Extensor events', fmtInt(events), reps ? `${fmtNum(events * 100 / reps)} per 100 reps` : ''),
    kpi('Trending up', fmtInt(trendingCount), 'athletes, last 6 weeks', trendingCount > 0),
  ));

  // Rate chart.
  // Groups without a rate (e.g. carries, where no ascent is judged) draw no line.
  const rateSeries = seriesOf((r) => ({
    i: index.get(r.week_start_us), v: r.events_per_100_reps,
    title: `${r.iso_week} · ${groupKey(r, by)}: ${fmtNum(r.events_per_100_reps)} events per 100 reps (${fmtInt(r.extensor_events)} of ${fmtInt(r.reps)} reps, ${fmtInt(r.athletes)} athletes)`,
  })).filter((sr) => sr.values.some((p) => p.v !== null && p.v !== undefined));
  const rate = lineChart({ chart: 'event-rate', cats, series: rateSeries, yTitle: 'events per 100 reps', xTitle: 'ISO week', yMin: 0 });
  const riskRows = rowsOverall.filter((r) => r.risk_median !== null);
  const riskChart = overall.risk_available && riskRows.length
    ? lineChart({
      chart: 'risk', cats, yMin: 0, yTitle: 'P(flare-up within 72 h)', xTitle: 'ISO week', yFormat: (t) => `${Math.round(t * 100)} %`,
      series: [
        { name: 'median', color: '#2563eb', values: riskRows.map((r) => ({ i: index.get(r.week_start_us), v: r.risk_median, title: `${r.iso_week}: median ${fmtPct(r.risk_median, 1)} over ${r.risk_athlete_days} athlete-days` })) },
        { name: '90th percentile', color: '#e8590c', values: riskRows.map((r) => ({ i: index.get(r.week_start_us), v: r.risk_p90, title: `${r.iso_week}: 90th percentile ${fmtPct(r.risk_p90, 1)}` })) },
        { name: 'highest', color: EVENT, values: riskRows.map((r) => ({ i: index.get(r.week_start_us), v: r.risk_max, title: `${r.iso_week}: highest ${fmtPct(r.risk_max, 1)}` })) },
      ],
    })
    : null;
  v.append(h('div', { class: 'grid two' },
    card('Extensor-event rate', `Lumbar-led ascents per 100 reps, by week${by ? ' and ' + label(by) : ''}.`,
      rate ? [rate, paintLegend(legend(rateSeries.map((sr) => ({ name: sr.name, color: sr.color, kind: 'line' }))))] : emptyState('No reps in this selection yet', 'Reps appear once sessions are uploaded and processed.'),
      'card-rate'),
    card('Daily flare-up risk', 'Distribution of the athletes\u2019 daily risk estimate per week (all exercises).',
      riskChart ? [riskChart, paintLegend(legend([{ name: 'median', color: '#2563eb', kind: 'line' }, { name: '90th percentile', color: '#e8590c', kind: 'line' }, { name: 'highest', color: EVENT, kind: 'line' }]))]
        : emptyState(overall.risk_available ? 'No risk estimates in these weeks' : 'Risk scores are not stored yet', 'The risk model writes one estimate per athlete and training day.'),
      'card-risk'),
  ));

  const distLegend = (series) => paintLegend(h('div', {},
    legend(series.map((sr) => ({ name: sr.name, color: sr.color }))),
    h('div', { class: 'legend muted' },
      h('span', { class: 'key' }, h('span', { class: 'swatch box', 'data-color': '#66748a' }), 'interquartile range (box)'),
      h('span', { class: 'key' }, h('span', { class: 'swatch line', 'data-color': '#66748a' }), 'median'),
      h('span', { class: 'key' }, h('span', { class: 'swatch whisker', 'data-color': '#66748a' }), 'whisker to the 90th percentile'))));
  const fatigueSeries = seriesOf((r) => ({ i: index.get(r.week_start_us), d: r.fatigue, n: r.reps }));
  const stabilitySeries = seriesOf((r) => ({ i: index.get(r.week_start_us), d: r.stability_deficit, n: r.reps }));
  const fatigue = distributionChart({ chart: 'fatigue', cats, series: fatigueSeries, yTitle: 'fatigue score (0–100)', xTitle: 'ISO week' });
  const stability = distributionChart({ chart: 'stability', cats, series: stabilitySeries, yTitle: 'stability deficit (z-sum)', xTitle: 'ISO week' });
  v.append(h('div', { class: 'grid two' },
    card('Fatigue', 'Fatigue score after each rep: median, interquartile range and 90th percentile per week.',
      fatigue ? [fatigue, distLegend(fatigueSeries)] : emptyState('No reps in this selection yet'), 'card-fatigue'),
    card('Stability under eccentric load', 'Stability deficit of each rep\u2019s lowering phase (0 = steady): median, IQR and 90th percentile.',
      stability ? [stability, distLegend(stabilitySeries)] : emptyState('No reps in this selection yet'), 'card-stability'),
  ));

  v.append(trendingCard(trending, all, (on) => setParam('all', on ? '1' : '')));
  setState('ready');
}

function kpi(name, value, note, alert) {
  return h('div', { class: 'kpi' + (alert ? ' alert' : ''), 'data-kpi': name }, h('div', { class: 'label' }, name), h('div', { class: 'value' }, value), h('div', { class: 'note' }, note || ''));
}

function card(title, hint, body, id, right) {
  return h('section', { class: 'card', id },
    h('div', { class: 'card-head' }, h('div', {}, h('h2', {}, title), hint ? h('div', { class: 'hint' }, hint) : null), right ? h('div', { class: 'right' }, right) : null),
    body);
}

function athleteName(a) {
  return a.display_name || a.athlete_id;
}

function trendingCard(t, all, onAll) {
  const toggle = h('input', { type: 'checkbox', id: 'show-all', checked: all });
  toggle.addEventListener('change', () => onAll(toggle.checked));
  const nWeeks = t.window_end_us > t.window_start_us ? Math.round((t.window_end_us - t.window_start_us) / WEEK_US) : 0;
  const hint = t.window_end_us
    ? `Weeks ${fmtShortDate(t.window_start_us)} – ${fmtShortDate(t.window_end_us - 1)}: a rising extensor-event rate (least-squares slope ≥ 1 per 100 reps per week over ≥ 3 weeks of ≥ 20 reps) or a rising flare-up risk.`
    : 'Athletes whose extensor-event rate or flare-up risk rose over the last weeks.';
  let body;
  if (!t.athletes.length) {
    body = emptyState(all ? 'No athlete has enough reps in the window' : 'No athlete is trending up', all ? 'Athletes need at least 20 reps in a week to count.' : 'Tick \u201cShow all athletes\u201d to compare everyone\u2019s slopes.');
  } else {
    const rows = t.athletes.map((a) => {
      const trendingUp = a.trending_event_rate || a.trending_risk;
      const pts = (a.weeks || []).filter((w) => w.events_per_100_reps !== null)
        .map((w) => ({ i: Math.round((w.week_start_us - t.window_start_us) / WEEK_US), v: w.events_per_100_reps }));
      const href = '/dashboard/athletes/' + encodeURIComponent(a.athlete_id);
      return h('tr', { 'data-athlete-id': a.athlete_id, 'data-trending': trendingUp ? 'true' : 'false' },
        h('td', { class: 'nowrap' }, h('a', { href, 'data-link': true, class: a.display_name ? '' : 'mono' }, athleteName(a)),
          a.display_name ? h('span', { class: 'sub mono' }, a.athlete_id) : null),
        h('td', { class: 'nowrap' }, a.gym_id),
        h('td', {}, [label(a.age_band), label(a.sex), label(a.sport)].join(' · '), h('span', { class: 'sub' }, `training age ${a.training_age_band || 'unknown'}`)),
        h('td', { class: 'num' }, fmtInt(a.weeks_counted)),
        h('td', { class: 'num' }, fmtInt(a.reps)),
        h('td', { class: 'num' }, fmtInt(a.extensor_events)),
        h('td', { class: 'num' }, `${fmtNum(a.first_rate)} → ${fmtNum(a.last_rate)}`),
        h('td', { class: 'num ' + (a.rate_slope > 0 ? 'slope-up' : a.rate_slope < 0 ? 'slope-down' : ''), 'data-slope': a.rate_slope }, a.rate_slope === null ? '–' : fmtSigned(a.rate_slope) + ' /wk'),
        h('td', {}, a.weeks ? sparkline(pts, Math.max(nWeeks, 1), trendingUp ? EVENT : '#2563eb', `Events per 100 reps by week: ${pts.map((p) => fmtNum(p.v)).join(', ')}`) : h('span', { class: 'muted' }, '–')),
        h('td', { class: 'num' }, a.last_risk === null ? '–' : fmtPct(a.last_risk, 1), a.risk_slope !== null ? h('span', { class: 'sub' }, `${fmtSigned(a.risk_slope * 100, 1)} pts/wk`) : null),
        h('td', {},
          a.trending_event_rate ? h('span', { class: 'badge up' }, 'event rate ↑') : null, ' ',
          a.trending_risk ? h('span', { class: 'badge up' }, 'risk ↑') : null,
          !trendingUp ? h('span', { class: 'muted' }, 'steady') : null),
      );
    });
    body = h('div', { class: 'table-wrap' }, h('table', { id: 'trending-table', 'data-rows': t.athletes.length },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Athlete'), h('th', {}, 'Gym'), h('th', {}, 'Cohort'), h('th', { class: 'num' }, 'Weeks'), h('th', { class: 'num' }, 'Reps'),
        h('th', { class: 'num' }, 'Events'), h('th', { class: 'num' }, 'Rate first → last'), h('th', { class: 'num' }, 'Slope'),
        h('th', {}, 'Weekly rate'), h('th', { class: 'num' }, 'Risk'), h('th', {}, 'Trend'))),
      h('tbody', {}, rows)));
  }
  return card('Athletes trending up', hint, body, 'card-trending', h('label', { class: 'check', for: 'show-all' }, toggle, 'Show all athletes'));
}

// ----- athlete page --------------------------------------------------------------------

async function athletePage(seq, id) {
  const a = await api('/api/v1/athletes/' + encodeURIComponent(id));
  if (seq !== state.seq) return;
  const sessions = a.sessions.slice().sort((x, y) => x.start_us - y.start_us);
  const wanted = new URLSearchParams(location.search).get('session');
  const current = sessions.find((x) => x.session_id === wanted) || sessions[sessions.length - 1] || null;
  let detail = null;
  if (current) {
    detail = await api('/api/v1/athletes/' + encodeURIComponent(id) + '/reps', { from: current.start_us, to: current.end_us + 1, trace: 'true' });
    if (seq !== state.seq) return;
  }
  const at = a.athlete || { athlete_id: id };
  const pseudo = !state.me.identity;
  const totalReps = sessions.reduce((acc, x) => acc + x.reps, 0);
  const totalEvents = sessions.reduce((acc, x) => acc + x.extensor_events, 0);
  const lastRisk = a.risk.length ? a.risk.slice().sort((x, y) => (x.day < y.day ? -1 : 1))[a.risk.length - 1] : null;

  const v = clear(view());
  v.dataset.athleteId = at.athlete_id;
  const name = at.display_name || at.athlete_id;
  const initials = pseudo ? 'P' : name.split(/\s+/).map((w) => w[0]).join('').slice(0, 2).toUpperCase();
  const facts = [
    ['Athlete id', at.athlete_id],
    ['Gym', at.gym_id],
    at.external_ref ? ['Member ref', at.external_ref] : null,
    at.birth_year ? ['Born', at.birth_year] : null,
    at.sex ? ['Sex', at.sex] : null,
    at.sport ? ['Sport', at.sport] : null,
    at.training_age_years ? ['Training age', `${at.training_age_years} y`] : null,
    at.height_m ? ['Height', `${fmtNum(at.height_m, 2)} m`] : null,
    at.mass_kg ? ['Mass', `${fmtNum(at.mass_kg, 1)} kg`] : null,
  ].filter(Boolean);
  v.append(h('section', { class: 'page-head' },
    h('div', {},
      h('div', { class: 'crumbs' }, h('a', { href: '/dashboard/', 'data-link': true }, 'Population'), ' › Athlete'),
      h('div', { class: 'athlete-head' },
        h('div', { class: 'avatar' }, initials),
        h('div', {},
          h('h1', { id: 'athlete-name' }, name, ' ', pseudo ? h('span', { class: 'badge pseudo', title: 'Your consent grants do not include identity' }, 'pseudonym') : null),
          h('div', { class: 'facts' }, facts.map(([k, val]) => h('span', {}, k + ' ', h('b', {}, String(val))))))))));

  v.append(h('div', { class: 'kpis', id: 'athlete-kpis', 'data-sessions': sessions.length, 'data-reps': totalReps, 'data-events': totalEvents },
    kpi('Sessions', fmtInt(sessions.length), sessions.length ? `${fmtShortDate(sessions[0].start_us)} – ${fmtShortDate(sessions[sessions.length - 1].start_us)}` : 'none yet'),
    kpi('Reps', fmtInt(totalReps), 'stored'),
    kpi('Extensor events', fmtInt(totalEvents), totalReps ? `${fmtNum(totalEvents * 100 / totalReps)} per 100 reps` : '', totalEvents > 0),
    kpi('Flare-up risk', lastRisk ? fmtPct(lastRisk.probability, 1) : '–', lastRisk ? `on ${lastRisk.day}${lastRisk.alert ? ' · alert' : ''}` : (a.risk_available ? 'no estimate yet' : 'not stored yet'), lastRisk && lastRisk.alert),
    kpi('Alerts', fmtInt(a.alerts.length), a.alerts.length ? `latest ${fmtShortDate(Math.max(...a.alerts.map((x) => x.time_us)))}` : 'none'),
  ));

  // Weekly rate and daily risk.
  const weeks = a.weeks.slice().sort((x, y) => x.week_start_us - y.week_start_us);
  const cats = weekLabels(weeks.map((w) => w.iso_week));
  const rate = lineChart({
    chart: 'athlete-rate', cats, yMin: 0, width: 420, height: 250, yTitle: 'events per 100 reps', xTitle: 'ISO week',
    series: [{ name: 'events per 100 reps', color: EVENT, values: weeks.map((w, i) => ({ i, v: w.events_per_100_reps, title: `${w.iso_week}: ${fmtNum(w.events_per_100_reps)} per 100 reps (${w.extensor_events} of ${w.reps} reps, ${w.sessions} sessions)` })) }],
  });
  const fat = distributionChart({
    chart: 'athlete-fatigue', cats, width: 420, height: 250, yTitle: 'fatigue score (0–100)', xTitle: 'ISO week',
    series: [{ name: 'fatigue', color: '#2563eb', values: weeks.map((w, i) => ({ i, d: w.fatigue, n: w.reps })) }],
  });
  const risks = a.risk.slice().sort((x, y) => (x.day < y.day ? -1 : 1));
  const riskChart = risks.length
    ? lineChart({
      chart: 'athlete-risk', cats: risks.map((r) => fmtShortDate(Date.parse(r.day + 'T00:00:00Z') * 1000)), yMin: 0, width: 420, height: 250, yTitle: 'P(flare-up within 72 h)', xTitle: 'day', yFormat: (t) => `${Math.round(t * 100)} %`,
      series: [{ name: 'daily risk', color: '#7048e8', values: risks.map((r, i) => ({ i, v: r.probability, title: `${r.day}: ${fmtPct(r.probability, 1)}${r.alert ? ' — alert' : ''}; drivers: ${r.drivers.slice(0, 3).map((d) => d.feature).join(', ')}` })) }],
    })
    : null;
  v.append(h('div', { class: 'grid three' },
    card('Extensor-event rate by week', 'Lumbar-led ascents per 100 reps.', rate ? rate : emptyState('No reps yet'), 'card-athlete-rate'),
    card('Fatigue by week', 'Median, interquartile range and 90th percentile of the fatigue score.', fat ? fat : emptyState('No reps yet'), 'card-athlete-fatigue'),
    card('Daily flare-up risk', 'The risk model\u2019s estimate per training day.',
      riskChart || emptyState(a.risk_available ? 'No risk estimates yet' : 'Risk scores are not stored yet'), 'card-athlete-risk'),
  ));

  // Sessions.
  const sessionRows = sessions.slice().reverse().map((x) => {
    const tr = h('tr', {
      class: 'clickable' + (current && x.session_id === current.session_id ? ' selected' : ''),
      'data-session-id': x.session_id, 'data-reps': x.reps, tabindex: 0,
    },
    h('td', { class: 'nowrap' }, fmtDate(x.start_us)),
    h('td', { class: 'nowrap muted' }, `${fmtTime(x.start_us)} UTC`),
    h('td', { class: 'num' }, fmtDuration(x.end_us - x.start_us)),
    h('td', { class: 'num' }, fmtInt(x.sets)),
    h('td', { class: 'num' }, fmtInt(x.reps)),
    h('td', { class: 'num' }, fmtInt(x.extensor_events)),
    h('td', { class: 'num' }, fmtNum(x.events_per_100_reps)),
    h('td', { class: 'num' }, fmtNum(x.peak_lumbar_flexion_max_deg) + '°'),
    h('td', { class: 'num' }, fmtNum(x.mean_fatigue)),
    h('td', { class: 'num' }, fmtNum(x.max_fatigue)),
    h('td', { class: 'num' }, fmtNum(x.max_stability_deficit, 2)),
    h('td', { class: 'num' }, fmtSci(x.damage_total)));
    const go = () => {
      const p = new URLSearchParams(location.search);
      p.set('session', x.session_id);
      navigate(location.pathname + '?' + p, true);
    };
    tr.addEventListener('click', go);
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
    return tr;
  });
  v.append(card('Sessions', 'Newest first; select a session to see its reps and lumbar traces.', sessions.length
    ? h('div', { class: 'scroll short' }, h('table', { id: 'sessions-table', 'data-rows': sessions.length },
      h('thead', {}, h('tr', {}, h('th', {}, 'Date'), h('th', {}, 'Start'), h('th', { class: 'num' }, 'Duration'), h('th', { class: 'num' }, 'Sets'),
        h('th', { class: 'num' }, 'Reps'), h('th', { class: 'num' }, 'Extensor events'), h('th', { class: 'num' }, 'Per 100 reps'),
        h('th', { class: 'num' }, 'Peak lumbar flexion'), h('th', { class: 'num' }, 'Mean fatigue'), h('th', { class: 'num' }, 'Max fatigue'),
        h('th', { class: 'num' }, 'Max stability deficit'), h('th', { class: 'num' }, 'LiFFT damage'))),
      h('tbody', {}, sessionRows)))
    : emptyState('No sessions yet', 'Sessions appear after the athlete\u2019s sensors upload a workout.'), 'card-sessions'));

  if (current && detail) {
    v.append(tracesCard(current, detail, a.sets));
    v.append(repsCard(current, detail));
  }
  v.append(h('div', { class: 'grid two top' }, alertsCard(a), flareupsCard(a)));
  setState('ready');
}

function tracesCard(session, detail, sets) {
  const reps = detail.reps.slice().sort((x, y) => x.start_us - y.start_us);
  const trace = detail.trace;
  const times = trace.map((p) => p[0]);
  const lower = (t) => { let lo = 0; let hi = times.length; while (lo < hi) { const mid = (lo + hi) >> 1; if (times[mid] < t) lo = mid + 1; else hi = mid; } return lo; };
  const pieces = reps.map((r) => trace.slice(lower(r.start_us), lower(r.end_us + 1)));
  const flex = pieces.flat().map((p) => p[1]).concat(reps.map((r) => r.peak_lumbar_flexion_deg));
  const yHi = Math.max(10, ...flex) * 1.08;
  const yLo = Math.min(0, ...flex);
  const bySet = new Map();
  reps.forEach((r, k) => {
    if (!bySet.has(r.set_id)) bySet.set(r.set_id, []);
    bySet.get(r.set_id).push([r, pieces[k]]);
  });
  const setInfo = new Map(sets.map((x) => [x.set_id, x]));
  const blocks = [...bySet.entries()].map(([setId, items], si) => {
    const info = setInfo.get(setId);
    const first = items[0][0];
    const ev = items.filter(([r]) => r.extensor_event).length;
    return h('div', { class: 'set-block', 'data-set-id': setId },
      h('div', { class: 'set-head' },
        h('h3', {}, `Set ${si + 1} · ${exerciseLabel(first.exercise)}${first.load_kg ? ` · ${fmtNum(first.load_kg, 1)} kg` : ''}`),
        h('span', { class: 'meta' }, `${items.length} reps · ${fmtTime(first.start_us)} UTC${info ? ` · max fatigue ${fmtNum(info.max_fatigue)}` : ''}`),
        ev ? h('span', { class: 'badge event' }, `${ev} extensor event${ev > 1 ? 's' : ''}`) : null),
      h('div', { class: 'multiples' }, items.map(([r, pts]) => repPanel(r, pts, yLo, yHi))));
  });
  const legendEl = paintLegend(h('div', { class: 'legend' },
    h('span', { class: 'key' }, h('span', { class: 'swatch line', 'data-color': '#2563eb' }), 'lumbar flexion (°)'),
    h('span', { class: 'key' }, h('span', { class: 'swatch', 'data-color': '#e8effd' }), 'ascent (concentric phase)'),
    h('span', { class: 'key' }, h('span', { class: 'swatch', 'data-color': '#f7b6cb' }), 'extensor event: lumbar-led start of the ascent'),
    h('span', { class: 'key' }, h('span', { class: 'swatch', 'data-color': '#172033' }), 'peak flexion')));
  const body = reps.length
    ? [h('div', { id: 'rep-multiples', 'data-reps': reps.length, 'data-events': reps.filter((r) => r.extensor_event).length, 'data-trace-points': trace.length }, blocks), legendEl,
      detail.truncated ? h('p', { class: 'muted' }, 'Only the first reps of this session are shown.') : null]
    : emptyState('No reps in this session');
  return card(`Lumbar flexion per rep — ${fmtDate(session.start_us)}`,
    `Each panel is one rep from the start of the lowering to the top, on a shared scale (y: lumbar flexion in degrees, x: seconds).`,
    body, 'card-traces');
}

function repPanel(r, pts, yLo, yHi) {
  const W = 180;
  const H = 92;
  const m = { l: 24, r: 4, t: 4, b: 14 };
  const t0 = r.start_us;
  const dur = Math.max(r.end_us - r.start_us, 1);
  const x = (t) => m.l + ((t - t0) / dur) * (W - m.l - m.r);
  const y = (v) => m.t + (1 - (v - yLo) / (yHi - yLo || 1)) * (H - m.t - m.b);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-points': pts.length });
  svg.append(s('rect', { x: x(r.concentric_start_us), y: m.t, width: Math.max(0, x(r.end_us) - x(r.concentric_start_us)), height: H - m.t - m.b, fill: '#e8effd' }));
  if (r.extensor_event) {
    // The extensor-moment criterion looks at the first 40 % of the ascent.
    const a0 = r.concentric_start_us;
    const a1 = a0 + 0.4 * (r.end_us - a0);
    svg.append(s('rect', { class: 'event-window', x: x(a0), y: m.t, width: Math.max(1, x(a1) - x(a0)), height: H - m.t - m.b, fill: '#f7b6cb', 'fill-opacity': 0.75 }));
  }
  for (const t of niceTicks(yLo, yHi, 3)) {
    if (t < yLo || t > yHi) continue;
    svg.append(s('line', { x1: m.l, x2: W - m.r, y1: y(t), y2: y(t), stroke: '#eef1f6' }));
    svg.append(s('text', { x: m.l - 3, y: y(t) + 3, 'text-anchor': 'end' }, `${Math.round(t)}°`));
  }
  svg.append(s('line', { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, stroke: '#c6cfdc' }));
  svg.append(s('text', { x: m.l, y: H - 3 }, '0 s'));
  svg.append(s('text', { x: W - m.r, y: H - 3, 'text-anchor': 'end' }, `${fmtNum(dur / 1e6, 1)} s`));
  if (pts.length > 1) {
    svg.append(s('polyline', {
      class: 'trace', points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' '),
      fill: 'none', stroke: r.extensor_event ? EVENT : '#2563eb', 'stroke-width': 1.6, 'stroke-linejoin': 'round',
    }));
  } else {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no trace stored'));
  }
  const peakAt = r.bottom_us || (pts.length ? pts.reduce((a, b) => (b[1] > a[1] ? b : a))[0] : r.start_us);
  svg.append(s('circle', { cx: x(peakAt), cy: y(r.peak_lumbar_flexion_deg), r: 2.6, fill: '#172033' }));
  svg.append(s('title', {}, `Rep ${r.rep_index}: peak lumbar flexion ${fmtNum(r.peak_lumbar_flexion_deg)}°, LDI ${fmtNum(r.ldi, 2)}${r.extensor_event ? ' — extensor event' : ''}`));
  return h('figure', { class: 'rep' + (r.extensor_event ? ' is-event' : ''), 'data-rep-id': r.rep_id, 'data-event': r.extensor_event ? 'true' : 'false' },
    h('figcaption', {}, h('span', {}, `Rep ${r.rep_index}`, r.extensor_event ? [' ', h('span', { class: 'badge event' }, 'event')] : null), h('span', { class: 'peak' }, `${fmtNum(r.peak_lumbar_flexion_deg, 0)}° peak`)),
    svg);
}

function repsCard(session, detail) {
  const reps = detail.reps.slice().sort((x, y) => x.start_us - y.start_us);
  const setIndex = new Map();
  for (const r of reps) if (!setIndex.has(r.set_id)) setIndex.set(r.set_id, setIndex.size + 1);
  const rows = reps.map((r) => {
    const e = r.evidence || {};
    return h('tr', { class: r.extensor_event ? 'event' : '', 'data-rep-id': r.rep_id, 'data-event': r.extensor_event ? 'true' : 'false' },
      h('td', { class: 'num' }, setIndex.get(r.set_id)),
      h('td', { class: 'num' }, r.rep_index),
      h('td', {}, exerciseLabel(r.exercise), r.exercise_inferred ? h('span', { class: 'sub' }, 'from motion') : null),
      h('td', { class: 'num' }, r.load_kg ? fmtNum(r.load_kg, 1) : '–'),
      h('td', { class: 'num' }, fmtNum(r.peak_lumbar_flexion_deg)),
      h('td', { class: 'num' }, fmtNum(r.ldi, 2)),
      h('td', { class: 'num' }, fmtNum(e.peak_lumbar_ext_velocity_dps, 0)),
      h('td', { class: 'num' }, fmtNum(e.lumbar_share_duration_ms, 0)),
      h('td', { class: 'num' }, fmtNum(e.onset_lag_ms, 0)),
      h('td', { class: 'num' }, fmtNum(r.peak_load_moment_nm, 0)),
      h('td', { class: 'num' }, fmtNum(r.fatigue_score)),
      h('td', { class: 'num' }, fmtNum(r.stability_deficit, 2)),
      h('td', { class: 'num' }, fmtSci(r.damage)),
      h('td', {}, r.extensor_event ? h('span', { class: 'badge event' }, 'event') : h('span', { class: 'muted' }, '–')));
  });
  const body = reps.length
    ? h('div', { class: 'scroll' }, h('table', { id: 'reps-table', 'data-rows': reps.length },
      h('thead', {}, h('tr', {},
        h('th', { class: 'num' }, 'Set'), h('th', { class: 'num' }, 'Rep'), h('th', {}, 'Exercise'), h('th', { class: 'num' }, 'Load kg'),
        h('th', { class: 'num', title: 'Peak lumbar flexion, degrees' }, 'Peak flex. °'),
        h('th', { class: 'num', title: 'Lumbar dominance index of the ascent, 0..1' }, 'LDI'),
        h('th', { class: 'num', title: 'Peak lumbar extension velocity in the first 40 % of the ascent, °/s' }, 'Ext. vel. °/s'),
        h('th', { class: 'num', title: 'Longest stretch with the lumbar share above threshold, ms' }, 'Lumbar-led ms'),
        h('th', { class: 'num', title: 'Lumbar extension onset minus pelvic extension onset, ms (negative = lumbar first)' }, 'Onset lag ms'),
        h('th', { class: 'num', title: 'Peak estimated L5/S1 load moment, N·m' }, 'Moment N·m'),
        h('th', { class: 'num', title: 'Fatigue score after this rep, 0..100' }, 'Fatigue'),
        h('th', { class: 'num', title: 'Stability deficit of the lowering phase (z-score sum)' }, 'Stability'),
        h('th', { class: 'num', title: 'LiFFT damage of this rep (load moment normalised to capacity)' }, 'Damage'),
        h('th', { title: 'Extensor-moment event: a lumbar-led ascent' }, 'Event'))),
      h('tbody', {}, rows)))
    : emptyState('No reps in this session');
  return card(`Reps — ${fmtDate(session.start_us)}`, 'Every rep of the session with the evidence behind the extensor-event decision (hover a column for its definition).', body, 'card-reps');
}

function alertsCard(a) {
  const alerts = a.alerts.slice().sort((x, y) => y.time_us - x.time_us);
  const body = alerts.length
    ? h('div', { class: 'list scroll-list', id: 'alerts-list', 'data-rows': alerts.length }, alerts.map((al) =>
      h('div', { class: 'item ' + al.severity, 'data-alert-id': al.alert_id },
        h('div', { class: 'item-head' },
          h('span', { class: 'badge ' + al.severity }, al.severity),
          h('span', { class: 'title' }, al.title || label(al.kind))),
        h('div', { class: 'when' }, `${fmtDateTime(al.time_us)} · ${label(al.kind)}`),
        al.recommendation ? h('p', {}, al.recommendation) : null,
        al.evidence.length ? h('div', { class: 'evidence' }, al.evidence.map((e) =>
          h('span', {}, `${label(e.name)}: `, h('b', {}, `${fmtSmart(e.value)}${e.unit && e.unit !== 'fraction' ? ' ' + e.unit : ''}`),
            e.threshold ? ` (threshold ${fmtSmart(e.threshold)})` : ''))) : null)))
    : emptyState(a.alerts_available ? 'No alerts' : 'Alerts are not stored yet', a.alerts_available ? 'The alert rules have not fired for this athlete.' : null);
  return card('Alerts', 'What the alert rules raised, newest first, with their evidence and advice.', body, 'card-alerts');
}

function flareupsCard(a) {
  const items = a.flareups.slice().sort((x, y) => y.onset_time_us - x.onset_time_us);
  const body = items.length
    ? h('div', { class: 'list', id: 'flareups-list', 'data-rows': items.length }, items.map((f) =>
      h('div', { class: 'item critical', 'data-report-id': f.report_id },
        h('div', { class: 'item-head' },
          h('span', { class: 'title' }, `Pain ${f.pain}/10`),
          h('span', { class: 'pain', 'aria-hidden': 'true' }, Array.from({ length: 10 }, (_, i) => h('i', { class: i < f.pain ? 'on' : '' })))),
        h('div', { class: 'when' }, `onset ${fmtDateTime(f.onset_time_us)}`),
        f.note ? h('p', {}, f.note) : null,
        h('p', { class: 'muted' }, `reported ${fmtDateTime(f.reported_at_us)}`))))
    : emptyState(a.flareups_available ? 'No flare-ups reported' : 'Flare-up reports are not stored yet');
  return card('Reported flare-ups', 'Back pain the athlete reported, with its onset.', body, 'card-flareups');
}
