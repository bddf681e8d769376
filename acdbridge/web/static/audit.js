// The audit page: /api/audit (admins only) as a table; every value set as text, never as HTML.
"use strict";
fetch("/api/audit?hours=24&limit=500", { credentials: "same-origin" })
  .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
  .then(({ ok, body }) => {
    if (!ok) { document.getElementById("problem").textContent = body.error || "cannot read the audit trail"; return; }
    const rows = body.entries.map((e) => {
      const tr = document.createElement("tr");
      const cells = [new Date(e.ts * 1000).toISOString().replace("T", " ").slice(0, 19), e.actor || "-",
                     e.action, e.target, e.outcome, e.address, e.detail];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i === 4) td.className = e.outcome;
        tr.appendChild(td);
      });
      return tr;
    });
    document.getElementById("entries").replaceChildren(...rows);
  });
