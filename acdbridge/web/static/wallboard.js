// The wallboard: one EventSource, each message a whole board (acdbridge/adapters/web/board.py).
"use strict";
const pct = (x) => (x === null || x === undefined) ? "--" : Math.round(x * 100) + "%";
const mmss = (s) => { s = Math.floor(s || 0); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); };
const secs = (x) => (x === null || x === undefined) ? "--" : Math.round(x) + "s";

function tile(q) {
  const el = document.createElement("div");
  el.className = "tile " + q.status;
  el.dataset.queue = q.queue;
  el.innerHTML = `<h2></h2><div class="led"></div><div class="figures">
    <div>LONGEST<b class="longest"></b></div><div>SL ${q.window}<b class="sl"></b></div>
    <div>ABANDON<b class="abandon"></b></div><div>AVG WAIT TODAY<b class="asa"></b></div>
    <div>READY<b class="ready"></b></div><div>TALKING / PAUSED<b class="busy"></b></div></div>`;
  el.querySelector("h2").textContent = q.queue;
  el.querySelector(".led").textContent = q.led;
  el.querySelector(".longest").textContent = mmss(q.longest_wait_s);
  el.querySelector(".sl").textContent = pct(q.service_level);
  el.querySelector(".abandon").textContent = pct(q.abandon_rate);
  el.querySelector(".asa").textContent = secs(q.avg_wait_today_s);
  el.querySelector(".ready").textContent = q.agents_ready;
  el.querySelector(".busy").textContent = q.agents_talking + " / " + q.agents_paused;
  return el;
}

function render(board) {
  const queues = document.getElementById("queues");
  queues.replaceChildren(...Object.values(board.queues || {}).map(tile));
  const agents = document.getElementById("agents");
  agents.replaceChildren(...Object.values(board.agents || {}).map((a) => {
    const el = document.createElement("span");
    el.className = "agent " + a.state;
    el.dataset.agent = a.agent;
    el.textContent = a.agent + " · " + a.state.replace("_", " ");
    return el;
  }));
}

function connect() {
  const source = new EventSource("events" + location.search);  // reconnects by itself
  const link = document.getElementById("link");
  source.onopen = () => { link.textContent = "live"; link.className = ""; };
  source.onmessage = (e) => render(JSON.parse(e.data));
  source.onerror = () => {
    link.textContent = "reconnecting…";
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
setInterval(() => { document.getElementById("clock").textContent = new Date().toLocaleTimeString(); }, 1000);
connect();
