// The agent desk (docs/desk.md): the desk over Server-Sent Events, its buttons POSTed with
// the session's CSRF token. Times in the desk are the PBX's epoch seconds; waits and time in
// state count on here from the server's clock sent with each update.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const t = (english, values) => window.acdI18n.t(english, values);
  const params = new URLSearchParams(location.search);
  const qs = params.get("agent") ? "?agent=" + encodeURIComponent(params.get("agent")) : "";
  const STATES = { ready: "Ready", ringing: "Ringing", talking: "Talking", on_hold: "On hold",
    wrapup: "Wrap-up", paused: "Paused", logged_out: "Logged out" };
  const FIGURES = { answered: "Calls answered", aht_s: "AHT", acw_s: "ACW per call",
    hold_s: "Hold per call", occupancy: "Occupancy" };
  let desk = null, offset = 0, csrf = "", shownChoices = "";

  const clock = () => Date.now() / 1000 + offset;  // the server's clock, counted on here
  function span(s) {
    if (s == null || !isFinite(s)) return "–";
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0") + ":" + String(x).padStart(2, "0");
    return h ? h + ":" + mm : mm;
  }
  function figure(name, v) {
    if (v == null) return "–";
    if (name === "occupancy") return Math.round(v * 100) + "%";
    if (name === "answered") return String(v);
    return span(v);
  }
  function text(id, value) { $(id).textContent = value == null || value === "" ? "–" : String(value); }

  function tickClock() {
    if (!desk) return;
    const now = clock();
    $("since").textContent = desk.since != null ? span(now - desk.since) : "";
    const c = desk.call;
    if (c) text("pop-wait", span(c.answer_ts != null ? c.answer_ts - c.enter_ts : now - c.enter_ts));
  }

  function renderPop(c) {
    $("pop").hidden = !c;
    if (!c) { $("pop").dataset.uniqueid = ""; return; }
    $("pop").dataset.uniqueid = c.uniqueid;
    text("pop-title", t(c.answer_ts != null ? "Current call" : "Ringing: incoming call"));
    text("pop-caller", c.caller); text("pop-name", c.card.name || c.caller_name);
    text("pop-account", c.card.account); text("pop-address", c.card.address);
    text("pop-calltype", c.card.call_type); text("pop-hotline", c.card.hotline);
    text("pop-language", c.card.language); text("pop-queue", c.queue); text("pop-notice", c.card.notice);
    $("pop-vip").hidden = !c.card.vip;
    const body = $("pop-previous");
    body.replaceChildren();
    if (!c.previous.length) {
      const tr = body.insertRow(), td = tr.insertCell();
      td.colSpan = 6; td.className = "empty";
      td.textContent = t(c.history_loaded ? "no previous calls" : "looking up…");
    }
    for (const p of c.previous) {
      const tr = body.insertRow();
      const when = new Date(p.time * 1000).toISOString().slice(0, 16).replace("T", " ");
      for (const v of [when, p.queue, p.outcome, p.agent, p.disposition, p.survey]) {
        tr.insertCell().textContent = v == null ? "–" : String(v);
      }
    }
  }

  function renderFigures(today) {
    const box = $("figures");
    box.replaceChildren();
    for (const [name, label] of Object.entries(FIGURES)) {
      const f = today[name] || {};
      const div = document.createElement("div");
      div.className = "fig" + (f.met === true ? " met" : f.met === false ? " missed" : "");
      div.dataset.figure = name;
      const n = document.createElement("div"); n.className = "name"; n.textContent = t(label);
      const v = document.createElement("div"); v.className = "value"; v.textContent = figure(name, f.value);
      const g = document.createElement("div"); g.className = "target";
      g.textContent = f.target == null ? "" : t("target {value}", { value: figure(name, f.target) });
      div.append(n, v, g); box.append(div);
    }
  }

  function renderChoices(d) {
    const key = JSON.stringify([d.pause_reasons, d.dispositions]);
    if (key === shownChoices) return;
    shownChoices = key;
    const sel = $("reason"); sel.replaceChildren();
    for (const r of d.pause_reasons) sel.add(new Option(r.reason, r.reason));
    const box = $("dispositions"); box.replaceChildren();
    for (const x of d.dispositions) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = x.code; b.dataset.code = x.code;
      b.addEventListener("click", () => act("disposition", x.code));
      box.append(b);
    }
  }

  function render(d) {
    desk = d;
    document.body.dataset.state = d.state;
    $("agent").textContent = d.agent;
    const st = $("state");
    st.className = "state " + d.state;
    st.textContent = t(STATES[d.state] || d.state) + (d.reason ? ": " + d.reason : "");
    if (d.pause_reasons) renderChoices(d);
    const own = d.own !== false;
    $("controls").hidden = !own; $("readonly").hidden = own;
    const out = d.state === "logged_out";
    $("login").disabled = !out; $("logout").disabled = out;
    $("pause").disabled = out || d.state === "paused"; $("unpause").disabled = d.state !== "paused";
    $("wrapup").hidden = !(own && d.state === "wrapup");
    renderPop(d.call);
    renderFigures(d.today);
    tickClock();
  }

  async function act(action, value) {
    $("problem").textContent = "";
    try {
      const r = await fetch("/api/desk/" + encodeURIComponent(desk.agent) + "/" + action, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(value ? { value: value } : {}),
      });
      if (!r.ok) $("problem").textContent = ((await r.json().catch(() => ({}))).error) || r.statusText;
    } catch (e) { $("problem").textContent = t("the daemon did not answer: {value}", { value: e }); }
  }

  function connect() {
    const es = new EventSource("/api/desk/events" + qs);
    es.onopen = () => { $("link").textContent = t("live"); $("link").className = "link live"; };
    es.onerror = () => { $("link").textContent = t("reconnecting…"); $("link").className = "link"; };
    es.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      offset = msg.now - Date.now() / 1000;
      render(Object.assign({}, desk || {}, msg.desk));
    };
  }

  $("login").addEventListener("click", () => act("login"));
  $("logout").addEventListener("click", () => act("logout"));
  $("pause").addEventListener("click", () => act("pause", $("reason").value));
  $("unpause").addEventListener("click", () => act("unpause"));
  setInterval(tickClock, 1000);
  // the first desk (with the reasons and codes) from the JSON API, then live
  window.acdSession.then((me) => { csrf = (me && me.csrf) || ""; });
  fetch("/api/desk" + qs, { credentials: "same-origin" })
    .then(async (r) => {
      const body = await r.json();
      if (!r.ok) { $("problem").textContent = body.error || r.statusText; return; }
      offset = body.now - Date.now() / 1000;
      render(body);
      connect();
    })
    .catch((e) => { $("problem").textContent = t("the daemon did not answer: {value}", { value: e }); });
  // another language picked: word the desk again (the choices' buttons are codes, not words)
  document.addEventListener("acd-lang", () => {
    if (desk) render(desk);
    const link = $("link");
    if (link.classList.contains("live")) link.textContent = t("live");
  });
  $("link").textContent = t("connecting…");
})();
