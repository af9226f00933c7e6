"""The page's HTML and script, served by engine/web/server.py (no CDN, no build step).

The script polls `/api/snapshot` every `poll_secs` and fills the tables with `textContent` (never
HTML from the DB), and draws the equity curve on a <canvas>. It only ever issues GET requests.
"""

from __future__ import annotations

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ai-quant</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/app.css"></head>
<body>
<h1>ai-quant <span id="mode"></span> <small id="status">loading…</small></h1>
<div class="grid">
 <section><h2>Account</h2><dl id="totals"></dl></section>
 <section><h2>Risk</h2><dl id="risk"></dl></section>
 <section><h2>Shard health</h2><dl id="shards"></dl></section>
 <section><h2>Market data sources <small id="sources-age"></small></h2>
 <table id="sources"><thead><tr><th>dex</th><th>ws</th><th>rest</th><th>none</th></tr></thead>
 <tbody></tbody></table></section>
</div>
<h2>Equity <small>(cash balance after each fill, in ledger order)</small></h2>
<canvas id="equity" width="900" height="220"></canvas>
<h2>Open positions <small>(at entry; not marked to market)</small></h2>
<table id="positions"><thead><tr><th>symbol</th><th>side</th><th>size</th><th>entry</th>
<th>notional $</th><th>lev</th><th>margin $</th><th>age</th></tr></thead><tbody></tbody></table>
<h2>Recent trades</h2>
<table id="trades"><thead><tr><th>time</th><th>kind</th><th>symbol</th><th>side</th><th>size</th>
<th>price</th><th>fee $</th><th>PnL $</th><th>reason</th></tr></thead><tbody></tbody></table>
<h2>Recent decisions <small>(holds omitted)</small></h2>
<table id="decisions"><thead><tr><th>time</th><th>symbol</th><th>type</th><th>status</th><th>action</th>
<th>reason</th></tr></thead><tbody></tbody></table>
<script src="/app.js"></script>
</body></html>
"""

APP_CSS = """body{font:13px/1.4 system-ui,sans-serif;margin:1em;background:#fafafa;color:#222}
h1{font-size:18px;margin:0 0 .3em} h2{font-size:14px;margin:1.2em 0 .3em}
table{border-collapse:collapse;background:#fff} td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
#status{color:#666} .bad{color:#b00;font-weight:bold} .ok{color:#070}
.grid{display:flex;flex-wrap:wrap;gap:1.5em} canvas{background:#fff;border:1px solid #ddd}
dl{display:grid;grid-template-columns:auto auto;gap:0 1em;margin:0} dt{color:#666}
"""

APP_JS = r"""'use strict';
const $ = (id) => document.getElementById(id);
const money = (x) => (x == null ? '' : Number(x).toFixed(2));
const num = (x) => (x == null ? '' : Number(Number(x).toPrecision(6)).toString());
const when = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '');
const age = (s) => (s < 120 ? s.toFixed(0) + 's'
  : s < 7200 ? (s / 60).toFixed(0) + 'm' : (s / 3600).toFixed(1) + 'h');

function fillTable(id, rows, cells, key) {
  const body = $(id).tBodies[0];
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement('tr');
    if (key) tr.dataset.key = key(r);
    for (const v of cells(r)) { const td = document.createElement('td'); td.textContent = v; tr.append(td); }
    return tr;
  }));
}

function fillList(id, pairs) {
  $(id).replaceChildren(...pairs.flatMap(([k, v, cls]) => {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v; if (cls) dd.className = cls;
    return [dt, dd];
  }));
}

function drawEquity(points) {
  const c = $('equity'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  if (points.length < 2) { g.fillText('no fills yet', 10, 20); return; }
  // x is the fill's order in the ledger (event times can come from different clocks)
  const ys = points.map((p) => p[1]), lo = Math.min(...ys), hi = Math.max(...ys);
  const pad = 40, w = c.width - 2 * pad, h = c.height - 2 * pad, last = points.length - 1;
  const X = (i) => pad + (i / last) * w;
  const Y = (y) => pad + (hi > lo ? 1 - (y - lo) / (hi - lo) : 0.5) * h;
  g.strokeStyle = '#ccc'; g.strokeRect(pad, pad, w, h);
  g.fillStyle = '#444'; g.fillText(money(hi), 2, pad + 4); g.fillText(money(lo), 2, pad + h + 4);
  g.fillText(when(points[0][0]), pad, c.height - 8);
  g.fillText(when(points[last][0]), pad + w - 120, c.height - 8);
  g.strokeStyle = '#1565c0'; g.lineWidth = 1.5; g.beginPath();
  points.forEach((p, i) => (i ? g.lineTo(X(i), Y(p[1])) : g.moveTo(X(i), Y(p[1]))));
  g.stroke();
}

// Markets per feed (a sidecar's WebSocket, its REST polling, or none: the engine cannot see them),
// per perp dex and in total; a dex with markets on `none` is marked bad.
function renderSources(ms) {
  if (!ms) {
    fillTable('sources', [], () => []);
    $('sources-age').textContent = '(not reported yet)';
    return;
  }
  const rows = [...Object.entries(ms.per_dex), ['all', ms.total]];
  fillTable('sources', rows, ([dex, c]) => [dex, String(c.ws), String(c.rest), String(c.none)],
    ([dex]) => dex);
  for (const tr of $('sources').tBodies[0].rows) {
    if (tr.cells[3].textContent !== '0') tr.cells[3].className = 'bad';
  }
  $('sources-age').textContent = '(' + when(ms.wall_ms) + ')';
}

function render(s) {
  $('mode').textContent = '[' + s.mode + ']';
  const t = s.totals;
  fillList('totals', [
    ['balance $', money(t.balance_usd)], ['seed $', money(t.seed_usd)],
    ['realised PnL $', money(t.realised_pnl_usd)], ['realised today $', money(t.realised_today_usd)],
    ['fees $', money(t.fees_usd)], ['funding $', money(t.funding_usd)],
    ['closed trades', String(t.closed_trades)],
  ]);
  const r = s.risk;
  fillList('risk', [
    ['trading state', r.trading_state,
      r.trading_state === 'ACTIVE' ? 'ok' : (r.trading_state === 'not recorded' ? '' : 'bad')],
    ['since', when(r.state_since_ms)], ['last event', r.last_event || ''],
    ['kill (env)', r.kill_env || 'none', r.kill_env ? 'bad' : ''],
    ['kill (file)', r.kill_file || 'none', r.kill_file ? 'bad' : ''],
    ['kill file', r.kill_file_path || 'not configured'],
    ['hard kill', r.hard_kill ? 'ON' : 'off', r.hard_kill ? 'bad' : ''],
  ]);
  const sh = s.shards;
  fillList('shards', [
    ['last tick', sh.last_tick_id == null ? '' : String(sh.last_tick_id)],
    ['last decision', when(sh.last_decision_ms)],
    ['timeouts (' + sh.window_secs + 's)', String(sh.timeouts_recent), sh.timeouts_recent ? 'bad' : 'ok'],
    ['timed-out symbols', sh.timeout_symbols.join(', ')],
  ]);
  renderSources(s.market_sources);
  fillTable('positions', s.positions, (p) => [p.symbol, p.side, num(p.size_coins), num(p.entry_price),
    money(p.notional_usd), num(p.leverage), money(p.margin_used_usd), age(p.age_secs)], (p) => p.symbol);
  fillTable('trades', s.trades, (x) => [when(x.event_ms), x.kind, x.symbol, x.side || '', num(x.size_coins),
    num(x.price), money(x.fee_usd), money(x.realised_pnl_usd), x.reason], (x) => x.id);
  fillTable('decisions', s.decisions, (d) => [when(d.event_ms), d.symbol, d.event_type, d.status,
    d.action || '', d.reason_code || ''], (d) => d.seq);
  drawEquity(s.equity);
  $('status').textContent = 'updated ' + when(s.now_ms) + (s.db_present ? '' : ' (no trading DB yet)');
  $('status').className = '';
}

async function poll() {
  let wait = 1.5;
  try {
    const res = await fetch('/api/snapshot', { method: 'GET', cache: 'no-store' });
    const s = await res.json();
    if (!res.ok) throw new Error(s.error || res.status);
    wait = s.poll_secs || wait;
    render(s);
  } catch (e) {
    $('status').textContent = 'update failed: ' + e.message + ' (retrying)';
    $('status').className = 'bad';
  }
  setTimeout(poll, wait * 1000);
}
poll();
"""
