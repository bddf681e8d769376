// The supervisor desk (docs/desk.md, "Supervisor desk"): the grid over Server-Sent Events. The
// stream sends only the rows that changed; each row is one <tr> kept by agent name and updated in
// place, so 500 agents never mean a redraw. Time in state and talk time count on here from the
// server's clock; a row turns amber at its limit and red at red_factor times it.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const t = (english, values) => window.acdI18n.t(english, values);
  const STATES = { ready: "Ready", ringing: "Ringing", talking: "Talking", on_hold: "On hold",
    wrapup: "Wrap-up", paused: "Paused", logged_out: "Logged out" };
  const rows = new Map();  // agent -> {tr, row, cells}
  const panels = new Map();  // queue -> its panel's <div>
  const queueData = new Map();  // queue -> its last message, to re-word on a language change
  let lastAbandons = [];
  let offset = 0, csrf = "", redFactor = 2, sortKey = "agent", sortUp = true;
  const clock = () => Date.now() / 1000 + offset;

  function span(s) {
    if (s == null || !isFinite(s)) return "–";
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(x).padStart(2, "0");
  }
  function stateName(s) { return STATES[s] ? t(STATES[s]) : s; }
  function set(el, value) { const t = value == null || value === "" ? "–" : String(value); if (el.textContent !== t) el.textContent = t; }
  function level(r, now) {
    if (r.limit_s == null || r.since == null) return "";
    const spent = now - r.since;
    return spent >= r.limit_s * redFactor ? "red" : spent >= r.limit_s ? "amber" : "";
  }

  function button(label, action, cls) {
    const b = document.createElement("button");
    b.type = "button"; b.dataset.en = label; b.textContent = t(label); b.dataset.action = action;
    if (cls) b.className = cls;
    return b;
  }
  function newRow(name) {
    const tr = document.createElement("tr");
    tr.dataset.agent = name;
    const cells = {};
    for (const k of ["agent", "st", "t", "caller", "queue", "talk", "calls", "aht", "skills", "acts"]) {
      cells[k] = tr.insertCell(); cells[k].className = k;
    }
    cells.st.append(document.createElement("span"));
    cells.acts.append(button("Listen", "listen", "quiet"), button("Whisper", "whisper", "quiet"),
      button("Barge", "barge", "quiet"), button("Pause", "pause", "amber"), button("Unpause", "unpause"),
      button("Log out", "logout", "quiet"), button("Skill", "skill", "quiet"));
    return { tr, row: null, cells };
  }
  function fill(entry, r) {
    const c = entry.cells;
    entry.row = r;
    set(c.agent, r.agent);
    const st = c.st.firstChild;
    st.className = "state " + r.state;
    const paused = r.state === "paused" ? ": " + r.reason : r.paused ? " " + t("(paused: {reason})", { reason: r.reason }) : "";
    set(st, stateName(r.state) + (r.reason || r.paused ? paused : ""));
    entry.tr.dataset.paused = r.paused ? "1" : "0";
    entry.tr.dataset.state = r.state;
    set(c.caller, r.caller); set(c.queue, r.call_queue); set(c.calls, r.calls_today);
    set(c.aht, r.aht_today_s == null ? null : span(r.aht_today_s));
    set(c.skills, Object.entries(r.skills).map(([s, l]) => s + " " + l).join(", "));
    for (const b of c.acts.querySelectorAll("button")) {
      const a = b.dataset.action;
      b.disabled = (["listen", "whisper", "barge"].includes(a) && !r.spyable) ||
        (a === "pause" && (r.paused || r.state === "logged_out")) ||
        (a === "unpause" && !r.paused) || (a === "logout" && r.state === "logged_out");
    }
    tickRow(entry, clock());
  }
  function tickRow(entry, now) {
    const r = entry.row;
    set(entry.cells.t, r.since == null ? null : span(now - r.since));
    set(entry.cells.talk, r.answer_ts == null ? null : span(now - r.answer_ts));
    const lv = level(r, now);
    if (entry.tr.className !== lv) entry.tr.className = lv;
  }
  function visible(r) {
    const q = $("f-queue").value, s = $("f-skill").value, st = $("f-state").value;
    return (!q || r.queues.includes(q)) && (!s || s in r.skills) && (!st || r.state === st);
  }
  function sortValue(r) {
    const v = r[sortKey];
    return v == null ? (typeof r.agent === "string" && sortKey === "agent" ? "" : -Infinity) : v;
  }
  function reorder() {
    const list = [...rows.values()].sort((a, b) => {
      const x = sortValue(a.row), y = sortValue(b.row);
      const d = x < y ? -1 : x > y ? 1 : a.row.agent < b.row.agent ? -1 : 1;
      return sortUp ? d : -d;
    });
    const body = $("rows");
    let at = body.firstChild;
    for (const e of list) {  // moves only the rows out of place
      if (e.tr === at) { at = at.nextSibling; continue; }
      body.insertBefore(e.tr, at);
    }
  }
  function refilter() {
    let shown = 0;
    for (const e of rows.values()) { const v = visible(e.row); e.tr.hidden = !v; shown += v; }
    $("count").textContent = t("{shown} of {total} agents", { shown: shown, total: rows.size });
  }
  function options(sel, values, label) {
    const have = [...sel.options].map((o) => o.value).slice(1).join("|");
    if (have === values.join("|")) return;
    const keep = sel.value;
    while (sel.options.length > 1) sel.remove(1);
    for (const v of values) sel.add(new Option(label ? label(v) : v, v));
    sel.value = values.includes(keep) ? keep : "";
  }

  function panel(q) {
    const div = document.createElement("div"); div.className = "qpanel"; div.dataset.queue = q.queue;
    const h = document.createElement("h3"); h.textContent = t("{queue} · waiting {value}", { queue: q.queue, value: q.waiting });
    const d = q.today, sl = d.service_level == null ? "–" : Math.round(d.service_level * 100) + "%";
    const f = document.createElement("div"); f.className = "fig-line";
    f.textContent = t("today: offered {offered}, answered {answered}, abandoned {abandoned}, SL {sl}, ASA {asa}, AHT {aht}",
      { offered: d.offered, answered: d.answered, abandoned: d.abandoned, sl: sl, asa: span(d.asa_s), aht: span(d.aht_s) });
    const a = document.createElement("div"); a.className = "fig-line";
    a.textContent = Object.entries(q.agents).map(([s, n]) => stateName(s) + " " + n).join(" · ") || t("no agents");
    const ol = document.createElement("ol");
    for (const c of q.callers) {
      const li = document.createElement("li"); li.dataset.enter = c.enter_ts;
      const who = document.createElement("span"); who.textContent = c.caller + " ";
      const wait = document.createElement("span"); wait.className = "wait"; wait.textContent = span(clock() - c.enter_ts);
      li.append(who, wait);
      for (const tag of [c.vip && "VIP", c.call_type, c.language, c.repeat && "repeat"]) {
        if (!tag) continue;
        const s = document.createElement("span"); s.className = tag === "VIP" ? "vip" : "tag"; s.textContent = tag === "repeat" ? t(tag) : tag;
        li.append(s);
      }
      ol.append(li);
    }
    div.append(h, f, a, ol);
    return div;
  }
  // only the panels that changed are rebuilt; the others keep their nodes
  function renderQueues(changed, gone) {
    const box = $("queues");
    for (const name of gone) { const old = panels.get(name); if (old) old.remove(); panels.delete(name); queueData.delete(name); }
    for (const [name, q] of Object.entries(changed)) {
      queueData.set(name, q);
      const div = panel(q), old = panels.get(name);
      if (old) old.replaceWith(div);
      else {
        const next = [...panels.keys()].sort().find((k) => k > name);
        box.insertBefore(div, next ? panels.get(next) : null);
      }
      panels.set(name, div);
    }
    options($("f-queue"), [...panels.keys()].sort());
  }
  function renderAbandons(list) {
    const body = $("abandons");
    lastAbandons = list;
    body.replaceChildren();
    if (!list.length) { const td = body.insertRow().insertCell(); td.colSpan = 5; td.textContent = t("none"); td.className = "empty"; }
    for (const a of list) {
      const tr = body.insertRow(); tr.dataset.key = a.key;
      const when = new Date(a.time * 1000).toLocaleTimeString();
      for (const v of [when, a.queue, a.caller, span(a.wait_s)]) tr.insertCell().textContent = v;
      const b = button("Mark handled", "handled"); b.addEventListener("click", () => post("/api/supervisor/abandons/handled", { key: a.key }));
      tr.insertCell().append(b);
    }
  }

  function apply(msg) {
    offset = msg.now - Date.now() / 1000;
    if (msg.full) {
      for (const e of rows.values()) e.tr.remove();
      rows.clear(); $("queues").replaceChildren(); panels.clear(); queueData.clear();
    }
    if (msg.rows) {
      for (const name of msg.gone || []) { const e = rows.get(name); if (e) { e.tr.remove(); rows.delete(name); } }
      for (const [name, r] of Object.entries(msg.rows)) {
        let e = rows.get(name);
        if (!e) { e = newRow(name); rows.set(name, e); $("rows").append(e.tr); }
        fill(e, r); e.tr.hidden = !visible(r);
      }
      reorder(); refilter();
    }
    if (msg.queues) renderQueues(msg.queues, msg.gone_queues || []);
    if (msg.abandons) renderAbandons(msg.abandons);
  }

  async function post(path, body) {
    $("problem").textContent = ""; $("done").textContent = "";
    try {
      const r = await fetch(path, { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body) });
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) $("problem").textContent = answer.error || r.statusText;
      else $("done").textContent = answer.action ? t("{action} {agent}: done", answer) : t("done");
    } catch (e) { $("problem").textContent = t("the daemon did not answer: {value}", { value: e }); }
  }
  $("rows").addEventListener("click", (ev) => {
    const b = ev.target.closest("button"); if (!b) return;
    const agent = b.closest("tr").dataset.agent, a = b.dataset.action;
    const body = a === "pause" ? { reason: $("reason").value }
      : a === "skill" ? { skill: $("skill-name").value, level: Number($("skill-level").value) } : {};
    post("/api/supervisor/agents/" + encodeURIComponent(agent) + "/" + a, body);
  });
  for (const th of document.querySelectorAll("#grid th[data-sort]")) {
    th.addEventListener("click", () => {
      sortUp = sortKey === th.dataset.sort ? !sortUp : true; sortKey = th.dataset.sort;
      for (const x of document.querySelectorAll("#grid th")) x.classList.remove("sorted", "up");
      th.classList.add("sorted"); if (sortUp) th.classList.add("up");
      reorder();
    });
  }
  for (const id of ["f-queue", "f-skill", "f-state"]) $(id).addEventListener("change", refilter);
  setInterval(() => {
    const now = clock();
    for (const e of rows.values()) if (!e.tr.hidden) tickRow(e, now);
    for (const li of document.querySelectorAll("#queues li")) set(li.querySelector(".wait"), span(now - Number(li.dataset.enter)));
  }, 1000);

  window.acdSession.then((me) => { csrf = (me && me.csrf) || ""; });
  fetch("/api/supervisor", { credentials: "same-origin" })
    .then(async (r) => {
      const body = await r.json();
      if (!r.ok) { $("problem").textContent = body.error || r.statusText; return; }
      redFactor = body.red_factor;
      for (const reason of body.pause_reasons) $("reason").add(new Option(reason, reason));
      options($("f-skill"), body.skills); options($("f-state"), Object.keys(STATES), stateName);
      for (const s of body.skills) $("skill-name").add(new Option(s, s));
      const es = new EventSource("/api/supervisor/events");
      es.onopen = () => { $("link").dataset.i18nEn = "live"; $("link").textContent = t("live"); $("link").className = "link live"; };
      es.onerror = () => { $("link").dataset.i18nEn = "reconnecting…"; $("link").textContent = t("reconnecting…"); $("link").className = "link"; };
      es.onmessage = (ev) => apply(JSON.parse(ev.data));
    })
    .catch((e) => { $("problem").textContent = t("the daemon did not answer: {value}", { value: e }); });

  // a language switch re-words what the script built (the HTML's words i18n.js does itself)
  document.addEventListener("acd-lang", () => {
    for (const e of rows.values()) {
      for (const b of e.tr.querySelectorAll("button")) b.textContent = t(b.dataset.en);
      if (e.row) fill(e, e.row);
    }
    for (const o of [...$("f-state").options].slice(1)) o.textContent = stateName(o.value);
    renderQueues(Object.fromEntries(queueData), []); renderAbandons(lastAbandons); refilter();
  });
})();
