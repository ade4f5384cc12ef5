// The relais status page: the queue with its actions, live events, counters as small charts
// and the probe form. Plain DOM, no library; text from the server is always set as text,
// never as HTML (addresses and headers come from strangers).
'use strict';

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (selector) => document.querySelector(selector);

/** An element with attributes (`class`, `data-*`, …) and children (text or elements). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function say(text, isError = false) {
  const line = $('#status-line');
  line.textContent = text;
  line.classList.toggle('error', isError);
}

/** A request to the page's API; POSTs carry the CSRF token. Throws with the server's reason. */
async function api(method, url, body) {
  const options = { method, headers: {}, credentials: 'same-origin' };
  if (method === 'POST') {
    options.headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) {
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
  }
  const r = await fetch(url, options);
  let data;
  try {
    data = await r.json();
  } catch {
    data = { error: `${r.status} ${r.statusText}` };
  }
  if (!r.ok) throw new Error(data.error || String(r.status));
  return data;
}

/** Asks in the page's own dialog; true when confirmed. */
function confirmAction(text) {
  const dialog = $('#confirm');
  $('#confirm-text').textContent = text;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

function age(seconds) {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

// ------------------------------------------------------------------ the queue

let queueQuery = '';
let shown = null; // the id of the message whose details are open

function queueRow(m, now) {
  const id = m.id;
  const link = el('a', { class: 'qid', 'data-id': id }, id);
  link.addEventListener('click', () => showMessage(id));
  const actions = el('td', { class: 'actions' });
  const button = (action, label) => {
    const b = el('button', { type: 'button', class: `act-${action}`, 'data-id': id }, label);
    b.addEventListener('click', () => act(id, action));
    actions.append(b);
  };
  if (m.held) button('release', 'Release');
  else button('hold', 'Hold');
  button('flush', 'Flush');
  button('delete', 'Delete');
  const recipients = m.recipients.map((r) => `${r.address} (${r.status})`).join(', ');
  return el('tr', { 'data-id': id, 'data-state': m.state },
    el('td', {}, link),
    el('td', {}, el('span', { class: `state state-${m.state}` }, m.state)),
    el('td', {}, age(Math.max(0, now - m.arrival))),
    el('td', {}, m.size),
    el('td', {}, m.sender || '<>'),
    el('td', {}, recipients),
    actions);
}

async function loadQueue() {
  try {
    const data = await api('GET', `/api/queue${queueQuery}`);
    const body = $('#queue-table tbody');
    body.replaceChildren(...data.messages.map((m) => queueRow(m, data.now)));
    $('#queue-empty').hidden = data.messages.length > 0;
    const n = data.messages.length;
    $('#queue-count').textContent = `(${n} message${n === 1 ? '' : 's'}${queueQuery ? ', filtered' : ''})`;
  } catch (e) {
    say(`queue: ${e.message}`, true);
  }
}

const ACTION_WORDS = {
  hold: 'Hold', release: 'Release', flush: 'Try delivery now for', delete: 'Delete (without a bounce)',
};

async function act(id, action) {
  const target = id ? `message ${id}` : 'every message that is not held';
  if (!(await confirmAction(`${ACTION_WORDS[action] || action} ${target}?`))) return;
  const url = id ? `/api/queue/${encodeURIComponent(id)}/${action}` : '/api/queue/flush';
  try {
    await api('POST', url);
    say(`${id || 'queue'}: ${action} done`);
  } catch (e) {
    say(`${id || 'queue'}: ${action} refused: ${e.message}`, true);
  }
  await loadQueue();
  if (shown === id) {
    if (action === 'delete') closeMessage();
    else showMessage(id);
  }
}

function closeMessage() {
  shown = null;
  $('#message').hidden = true;
}

async function showMessage(id) {
  let d;
  try {
    d = await api('GET', `/api/queue/${encodeURIComponent(id)}`);
  } catch (e) {
    say(`${id}: ${e.message}`, true);
    return;
  }
  shown = id;
  const e = d.entry;
  $('#message-id').textContent = e.id;
  const facts = [
    ['State', e.state], ['Arrival', new Date(e.arrival * 1000).toLocaleString()],
    ['Size', `${e.size} octets`], ['Client', d.client], ['Sender', `<${e.sender}>`],
    ['Attempts', e.attempts],
    ['Next try', e.next_attempt ? new Date(e.next_attempt * 1000).toLocaleString() : 'as soon as possible'],
  ];
  $('#message-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  $('#message-recipients tbody').replaceChildren(...e.recipients.map((r) =>
    el('tr', {}, el('td', {}, r.address), el('td', {}, r.status), el('td', {}, r.reason || ''))));
  $('#message-envelope').textContent = d.envelope;
  $('#message-headers').textContent = d.headers.replaceAll('\r\n', '\n');
  $('#message').hidden = false;
}

function setUpQueue() {
  $('#queue-filter').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    const params = new URLSearchParams();
    for (const k of ['sender', 'recipient', 'state']) {
      if (form.get(k)) params.set(k, form.get(k));
    }
    const [name, value] = String(form.get('age') || '').split('=');
    if (value) params.set(name, value);
    queueQuery = params.toString() ? `?${params}` : '';
    loadQueue();
  });
  $('#flush-all').addEventListener('click', () => act(null, 'flush'));
  $('#message-close').addEventListener('click', closeMessage);
  loadQueue();
  setInterval(loadQueue, 5000);
}

// ------------------------------------------------------------------ recent events

const MAX_EVENTS = 200;
let queueRefresh = null;

function addEvent(ev) {
  const list = $('#event-list');
  const time = (ev.ts || '').slice(11, 19);
  const name = ev.event === 'log' ? ev.level : ev.event;
  list.prepend(el('li', { class: `level-${ev.level}`, 'data-event': ev.event },
    el('span', { class: 'time' }, time),
    el('span', { class: `ev ev-${ev.event}` }, name),
    ev.msg || ''));
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  // A message came, went or changed: look at the queue again, once for a burst.
  if (ev.queue_id && !queueRefresh) {
    queueRefresh = setTimeout(() => { queueRefresh = null; loadQueue(); }, 300);
  }
}

function setUpEvents() {
  const source = new EventSource('/api/events');
  const state = $('#events-state');
  source.onopen = () => { state.textContent = 'live'; };
  source.onerror = () => { state.textContent = 'reconnecting…'; };
  source.onmessage = (m) => {
    try {
      addEvent(JSON.parse(m.data));
    } catch {
      // Not an event: ignore it.
    }
  };
  source.addEventListener('missed', (m) => {
    addEvent({ event: 'missed', level: 'warn', msg: `${m.data} events missed (this page was too slow)` });
  });
  // A reconnection sends the backlog again.
  source.addEventListener('open', () => $('#event-list').replaceChildren());
}

// ------------------------------------------------------------------ counters

const SVG = 'http://www.w3.org/2000/svg';
const HISTORY = 60;
const COLORS = ['#2563eb', '#d97706', '#dc2626', '#059669'];

/** The samples of a Prometheus text page: [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function sum(samples, name, want = {}) {
  return samples
    .filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

// Each chart: a title, its kind (rate of counters, gauge, or bars of totals) and its series.
const CHARTS = [
  { title: 'Messages accepted /s', kind: 'rate',
    series: [['accepted', (s) => sum(s, 'relais_messages_accepted_total')]] },
  { title: 'Deliveries /s', kind: 'rate',
    series: ['sent', 'deferred', 'bounced'].map((o) =>
      [o, (s) => sum(s, 'relais_deliveries_total', { outcome: o })]) },
  { title: 'Connections open', kind: 'gauge',
    series: [['open', (s) => sum(s, 'relais_connections_open')]] },
  { title: 'Queue', kind: 'gauge',
    series: ['active', 'deferred', 'held'].map((st) =>
      [st, (s) => sum(s, 'relais_queue_messages', { state: st })]) },
  { title: 'Refused /s', kind: 'rate',
    series: [['rejects', (s) => sum(s, 'relais_rejects_total')],
      ['connections', (s) => sum(s, 'relais_connections_refused_total')]] },
  { title: 'Replies (total)', kind: 'bars',
    series: ['2xx', '4xx', '5xx'].map((c) => [c, (s) => sum(s, 'relais_replies_total', { class: c })]) },
];

const history = []; // [{t, values: [[…per series] per chart]}]

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** The points of each series of chart `i`: values, or rates between samples. */
function points(i) {
  const chart = CHARTS[i];
  return chart.series.map((_, j) => {
    if (chart.kind !== 'rate') return history.map((h) => h.values[i][j]);
    const out = [];
    for (let k = 1; k < history.length; k++) {
      const dt = (history[k].t - history[k - 1].t) / 1000;
      out.push(dt > 0 ? Math.max(0, history[k].values[i][j] - history[k - 1].values[i][j]) / dt : 0);
    }
    return out;
  });
}

function drawLines(svg, lines) {
  const max = Math.max(1, ...lines.flat());
  lines.forEach((values, j) => {
    const step = 300 / (HISTORY - 1);
    const start = 300 - step * (values.length - 1);
    const pts = values.map((v, k) => `${(start + k * step).toFixed(1)},${(68 - (v / max) * 64).toFixed(1)}`);
    if (pts.length === 1) pts.push(`300,${pts[0].split(',')[1]}`);
    svg.append(svgEl('polyline', { points: pts.join(' '), fill: 'none', stroke: COLORS[j], 'stroke-width': 1.5 }));
  });
  const label = svgEl('text', { x: 2, y: 10, 'font-size': 9, fill: '#6b7280' });
  label.textContent = `max ${Number.isInteger(max) ? max : max.toFixed(2)}`;
  svg.append(label);
}

function drawBars(svg, values) {
  const max = Math.max(1, ...values);
  const w = 300 / values.length;
  values.forEach((v, j) => {
    const h = (v / max) * 60;
    svg.append(svgEl('rect', { x: j * w + 8, y: 68 - h, width: w - 16, height: h, fill: COLORS[j] }));
    const label = svgEl('text', { x: j * w + w / 2, y: Math.max(10, 64 - h), 'font-size': 9, 'text-anchor': 'middle', fill: '#1d2330' });
    label.textContent = String(v);
    svg.append(label);
  });
}

function drawCharts() {
  const grid = $('#chart-grid');
  grid.replaceChildren(...CHARTS.map((chart, i) => {
    const lines = points(i);
    const latest = lines.map((l) => l[l.length - 1] ?? 0);
    const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2));
    const svg = svgEl('svg', { viewBox: '0 0 300 70', preserveAspectRatio: 'none', role: 'img', 'aria-label': chart.title });
    if (chart.kind === 'bars') drawBars(svg, latest);
    else if (lines[0].length > 0) drawLines(svg, lines);
    const legend = el('div', { class: 'legend' },
      ...chart.series.map(([name], j) => el('span', { 'data-color': j }, `■ ${name} ${fmt(latest[j])}`)));
    legend.querySelectorAll('span').forEach((s, j) => { s.style.color = COLORS[j]; });
    return el('div', { class: 'chart', 'data-chart': chart.title }, el('h4', {}, chart.title), svg, legend);
  }));
}

async function sampleMetrics() {
  try {
    const r = await fetch('/metrics', { credentials: 'same-origin' });
    if (!r.ok) throw new Error(`${r.status}`);
    const samples = parseMetrics(await r.text());
    history.push({ t: Date.now(), values: CHARTS.map((c) => c.series.map(([, f]) => f(samples))) });
    if (history.length > HISTORY) history.shift();
    drawCharts();
  } catch (e) {
    say(`metrics: ${e.message}`, true);
  }
}

// ------------------------------------------------------------------ the probe

function verdictList(verdicts) {
  return el('ul', { class: 'verdicts' }, ...verdicts.map((v) =>
    el('li', { 'data-check': v.check },
      el('span', { class: `verdict verdict-${v.level}` }, v.level), ' ',
      el('strong', {}, v.check), `: ${v.reason}`, v.advice ? ` — ${v.advice}` : '')));
}

/** One address's stages as a waterfall: each bar starts where the one before ended. */
function waterfall(stages) {
  const total = stages.reduce((a, s) => a + (s.ms || 0), 0) || 1;
  let at = 0;
  const rows = stages.map((s) => {
    const bar = el('div', { class: 'bar', title: `${s.stage}: ${s.result}` });
    bar.style.left = `${(at / total) * 100}%`;
    bar.style.width = `${((s.ms || 0) / total) * 100}%`;
    at += s.ms || 0;
    return el('div', { class: 'row', 'data-stage': s.stage },
      el('span', {}, s.stage), el('div', { class: 'track' }, bar),
      el('span', { class: 'ms' }, s.ms == null ? '—' : `${s.ms.toFixed(1)} ms`),
      el('span', { class: 'result' }, s.result));
  });
  return el('div', { class: 'waterfall' }, ...rows);
}

function renderProbe(report) {
  const out = $('#probe-result');
  const s = report.summary || {};
  const parts = [el('p', {},
    el('strong', {}, report.target), ` — exit ${report.exit}; ${s.addresses ?? 0} address(es): `,
    `${s.ok ?? 0} ok, ${s.warn ?? 0} warn, ${s.fail ?? 0} fail`)];
  if (report.route_verdicts && report.route_verdicts.length) parts.push(verdictList(report.route_verdicts));
  if (report.sender_auth) {
    parts.push(el('h4', {}, `Sender authentication of ${report.sender_auth.domain || ''}`));
    parts.push(verdictList(report.sender_auth.verdicts || []));
  }
  for (const h of report.hosts || []) {
    const name = h.host && h.host !== h.address ? `${h.host} (${h.address})` : h.address;
    parts.push(el('div', { class: 'probe-host' },
      el('h4', {}, name, h.banner ? el('span', { class: 'muted' }, ` ${h.banner}`) : ''),
      waterfall(h.stages || []), verdictList(h.verdicts || [])));
  }
  out.replaceChildren(...parts);
}

function setUpProbe() {
  $('#probe-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const run = $('#probe-run');
    const state = $('#probe-state');
    run.disabled = true;
    state.textContent = 'probing…';
    state.classList.remove('error');
    try {
      const report = await api('POST', '/api/probe', {
        target: $('#probe-target').value.trim(),
        port: Number($('#probe-port').value) || 25,
        host: $('#probe-host').checked,
      });
      renderProbe(report);
      state.textContent = 'done';
    } catch (e) {
      state.textContent = e.message;
      state.classList.add('error');
    } finally {
      run.disabled = false;
    }
  });
}

document.addEventListener('DOMContentLoaded', () => {
  setUpQueue();
  setUpEvents();
  setUpProbe();
  sampleMetrics();
  setInterval(sampleMetrics, 5000);
  say('connected');
});
