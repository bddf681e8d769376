// The wallboard: one EventSource, each message a whole board (acdbridge/adapters/web/board.py).
"use strict";
const t = (english, values) => window.acdI18n.t(english, values);
const STATES = { ready: "Ready", ringing: "Ringing", talking: "Talking", on_hold: "On hold",
  wrapup: "Wrap-up", paused: "Paused", logged_out: "Logged out" };
const pct = (x) => (x === null || x === undefined) ? "--" : Math.round(x * 100) + "%";
const mmss = (s) => { s = Math.floor(s || 0); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); };
const secs = (x) => (x === null || x === undefined) ? "--" : Math.round(x) + "s";

function tile(q) {
  const el = document.createElement("div");
  el.className = "tile " + q.status;
  el.dataset.queue = q.queue;
  el.innerHTML = `<h2></h2><div class="led"></div><div class="figures">
    <div><span class="l-longest"></span><b class="longest"></b></div><div><span class="l-sl"></span><b class="sl"></b></div>
    <div><span class="l-abandon"></span><b class="abandon"></b></div><div><span class="l-asa"></span><b class="asa"></b></div>
    <div><span class="l-ready"></span><b class="ready"></b></div><div><span class="l-busy"></span><b class="busy"></b></div></div>
    <div class="staff"></div><div class="missed"></div>`;
  const labels = { "l-longest": t("LONGEST"), "l-sl": t("SL {value}", { value: q.window }), "l-abandon": t("ABANDON"),
    "l-asa": t("AVG WAIT TODAY"), "l-ready": t("READY"), "l-busy": t("TALKING / PAUSED") };
  for (const [cls, label] of Object.entries(labels)) el.querySelector("." + cls).textContent = label;
  el.querySelector("h2").textContent = q.queue;
  el.querySelector(".led").textContent = q.led;
  staff(el.querySelector(".staff"), q);
  el.querySelector(".missed").textContent = (q.missed || []).map(missedText).join(" · ");
  el.querySelector(".longest").textContent = mmss(q.longest_wait_s);
  el.querySelector(".sl").textContent = pct(q.service_level);
  el.querySelector(".abandon").textContent = pct(q.abandon_rate);
  el.querySelector(".asa").textContent = secs(q.avg_wait_today_s);
  el.querySelector(".ready").textContent = q.agents_ready;
  el.querySelector(".busy").textContent = q.agents_talking + " / " + q.agents_paused;
  return el;
}

// "need 12, have 9" (Erlang's agents for the SL target at the last half hour's load, and the
// members logged in and not paused), red when the queue needs more than it has; then the next
// interval's figure. No figure yet (nothing answered to measure the AHT from): nothing shown.
function staff(el, q) {
  const need = q.agents_needed;
  if (need === null || need === undefined) { el.textContent = ""; return; }
  let text = t("need {need}, have {have}", { need: need, have: q.agents_staffed });
  if (q.agents_needed_next !== null && q.agents_needed_next !== undefined) {
    text += " · " + t("next {value}", { value: q.agents_needed_next });
  }
  el.textContent = text;
  el.classList.toggle("short", need > q.agents_staffed);
}

// The LED line must fit its tile whatever the figures (CSS sizes it for the longest usual line;
// a longer one, e.g. a wait past 99 minutes, is shrunk here until it fits).
function fit(el) {
  el.style.fontSize = "";
  let size = parseFloat(getComputedStyle(el).fontSize);
  for (let i = 0; i < 20 && el.scrollWidth > el.clientWidth && size > 6; i++) {
    size *= 0.92;
    el.style.fontSize = size + "px";
  }
}

// The server's clock at the last board, and ours when it came: time in state counts on from it.
let serverNow = null, receivedAt = 0;
const stateText = (a) => t(STATES[a.state] || a.state) + (a.reason ? " (" + a.reason + ")" : "");

// a missed target in the viewer's language, from the board's figures (its `text` is English)
function missedText(m) {
  if (m.figure === "service_level") return t("SL {value} below its {target} target", { value: pct(m.value), target: pct(m.target) });
  if (m.figure === "waiting") return t("{value} waiting, no agent ready", { value: m.value });
  return m.text;
}

function chipClock(el) {
  const since = parseFloat(el.dataset.since);
  if (serverNow === null || Number.isNaN(since)) return;
  const elapsed = serverNow - since + (Date.now() / 1000 - receivedAt);
  el.querySelector(".in").textContent = mmss(Math.max(0, elapsed));
}

function chip(a) {
  const el = document.createElement("span");
  el.className = "agent " + a.state;
  el.dataset.agent = a.agent;
  if (a.since !== null && a.since !== undefined) el.dataset.since = a.since;
  el.append(a.agent + " · " + stateText(a) + " ");
  const clock = document.createElement("span");
  clock.className = "in";
  el.append(clock);
  chipClock(el);
  return el;
}

let lastBoard = null;
function render(board) {
  lastBoard = board;
  if (typeof board.now === "number") { serverNow = board.now; receivedAt = Date.now() / 1000; }
  const queues = document.getElementById("queues");
  queues.replaceChildren(...Object.values(board.queues || {}).map(tile));
  queues.querySelectorAll(".led").forEach(fit);
  document.getElementById("agents").replaceChildren(...Object.values(board.agents || {}).map(chip));
}
window.addEventListener("resize", () => document.querySelectorAll(".led").forEach(fit));

function connect() {
  const source = new EventSource("events" + location.search);  // reconnects by itself
  const link = document.getElementById("link");
  source.onopen = () => { link.textContent = t("live"); link.className = ""; };
  source.onmessage = (e) => render(JSON.parse(e.data));
  source.onerror = () => {
    link.textContent = t("reconnecting…");
    link.className = "down";
    signedOut();
  };
}

// EventSource retries a 401 for ever: when the session has ended (signed out elsewhere, expired,
// the account disabled), go to the sign-in page instead, and come back here after it.
function signedOut() {
  fetch("api/board" + location.search, { credentials: "same-origin" })
    .then((r) => { if (r.status === 401) location.assign("/signin?next=" + encodeURIComponent("/" + location.search)); })
    .catch(() => {});  // the daemon is down: EventSource keeps retrying
}
setInterval(() => {
  document.getElementById("clock").textContent = new Date().toLocaleTimeString();
  document.querySelectorAll(".agent[data-since]").forEach(chipClock);
}, 1000);
document.addEventListener("acd-lang", () => {
  if (lastBoard) render(lastBoard);
  const link = document.getElementById("link");
  link.textContent = t(link.className === "down" ? "reconnecting…" : "live");
});
document.getElementById("link").textContent = t("connecting…");
connect();
