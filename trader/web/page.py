"""The dashboard page: plain HTML and JavaScript, nothing fetched but ``/api/state``."""

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>trader</title>
<style>
body{font-family:system-ui,sans-serif;margin:1em 2em;color:#222}
h2{font-size:1.05em;margin:1.2em 0 .3em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin-bottom:.5em}
td,th{padding:.2em .6em;border:1px solid #ddd;text-align:left} th{background:#f4f4f4}
.kv span{display:inline-block;margin-right:1.5em} .bad{color:#b00;font-weight:bold}
.ok{color:#070} #equity{border:1px solid #ddd;background:#fafafa}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 2em}
</style></head><body>
<h1>trader <small id="name"></small></h1>
<div class="kv" id="head">loading...</div>
<h2>Equity (NAV as the dashboard saw it)</h2>
<svg id="equity" width="900" height="180"><polyline id="navline" fill="none"
 stroke="#36c" stroke-width="1.5" points=""/></svg>
<div class="grid">
<div><h2>Positions</h2><table id="positions"></table></div>
<div><h2>Working orders</h2><table id="orders"></table></div>
<div><h2>Recent fills</h2><table id="fills"></table></div>
<div><h2>Risk events</h2><table id="risk"></table></div>
<div><h2>Gateway and feed health</h2><table id="health"></table>
<table id="feeds"></table></div>
<div><h2>Models</h2><table id="models"></table></div>
</div>
<h2>Sessions</h2><table id="sessions"></table>
<p id="store" class="kv"></p>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const api = "/api/state" + (token ? "?token=" + encodeURIComponent(token) : "");
const esc = s => String(s ?? "").replace(/[&<>"]/g,
  c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const num = v => (typeof v === "number") ?
  v.toLocaleString("en-US", {maximumFractionDigits: 2}) : esc(v);
function table(id, cols, rows) {
  const head = "<tr>" + cols.map(c => "<th>" + esc(c[0]) + "</th>").join("") + "</tr>";
  const body = rows.map(r => "<tr>" + cols.map(c => "<td>" + num(c[1](r)) + "</td>").join("")
    + "</tr>").join("");
  document.getElementById(id).innerHTML = head + (body || "<tr><td>none</td></tr>");
}
function draw(points) {
  const line = document.getElementById("navline");
  if (points.length < 2) { line.setAttribute("points", ""); return; }
  const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = v => 5 + 890 * (v - x0) / ((x1 - x0) || 1);
  const sy = v => 175 - 170 * (v - y0) / ((y1 - y0) || 1);
  line.setAttribute("points", points.map(p => sx(p[0]) + "," + sy(p[1])).join(" "));
}
function render(d) {
  const s = d.status, st = d.store || {};
  document.getElementById("name").textContent = s.config_name || "";
  const run = s.running ? '<b class="ok">running</b>' : '<b class="bad">not running</b>';
  const kill = s.kill_switch ? '<b class="bad">ENGAGED</b>' : "off";
  document.getElementById("head").innerHTML =
    "<span>daemon " + run + "</span><span>mode <b id='mode'>" + esc(s.mode) + "</b></span>" +
    "<span>state <b id='state'>" + esc(s.state) + "</b></span>" +
    "<span>trading <b id='trading'>" + (s.trading ? "on" : "off") + "</b></span>" +
    "<span>risk <b id='risk-state'>" + esc(s.risk_state || "-") + "</b></span>" +
    "<span>kill switch <b id='kill'>" + kill + "</b></span>" +
    "<span>NAV <b id='nav'>" + (s.nav == null ? "-" : num(s.nav)) + "</b></span>" +
    "<span>fills <b id='fill-count'>" + esc(s.fills ?? 0) + "</b></span>" +
    "<span>heartbeat " + esc(s.heartbeat_age_s ?? "-") + " s ago</span>" +
    (s.feed_failed ? "<span class='bad'>market data FAILED: " + esc(s.feed_failed) +
     "</span>" : "") + (s.note ? "<span>" + esc(s.note) + "</span>" : "");
  draw(d.nav_history || []);
  table("positions", [["instrument", r => r[0]], ["quantity", r => r[1]]],
        Object.entries(s.positions || {}));
  table("orders", [["client order id", r => r.client_order_id], ["instrument",
        r => r.instrument], ["side", r => r.side], ["quantity", r => r.quantity],
        ["filled", r => r.filled], ["status", r => r.status]], s.open_orders || []);
  table("fills", [["time", r => r.ts], ["instrument", r => r.instrument_id],
        ["side", r => r.side], ["quantity", r => r.quantity], ["price", r => r.price],
        ["order", r => r.client_order_id]], st.fills || []);
  table("risk", [["time", r => r.ts], ["kind", r => r.kind], ["reason", r => r.reason]],
        st.risk_events || []);
  table("health", [["gateway", r => r[0]], ["state", r => r[1].state],
        ["reason", r => r[1].reason]], Object.entries(s.feeds || {}));
  const stale = new Set(s.stale_feeds || []);
  table("feeds", [["instrument", r => r[0]], ["last bar", r => r[1].ts],
        ["stale", r => stale.has(r[0]) ? "STALE" : ""]], Object.entries(s.last_bar || {}));
  table("models", [["name", r => r.name], ["model", r => r.model], ["stage", r => r.stage],
        ["active", r => r.active ? "yes" : "no"]], s.models || []);
  table("sessions", [["id", r => r.id], ["mode", r => r.mode], ["name", r => r.name],
        ["started", r => r.started], ["ended", r => r.ended]], st.sessions || []);
  document.getElementById("store").textContent = st.error ? "store: " + st.error :
    "store " + (st.database || "") + "; journal " + (s.journal || "-");
}
async function tick() {
  try {
    const r = await fetch(api, {cache: "no-store"});
    if (r.ok) render(await r.json());
    else document.getElementById("head").textContent = "error " + r.status;
  } catch (e) { document.getElementById("head").textContent = "dashboard unreachable"; }
  setTimeout(tick, 1000);
}
tick();
</script></body></html>
"""
