// The signed-in bar of every page: who you are, and a sign-out button (a POST with the
// session's CSRF token, which /api/me gives to this origin only).
"use strict";
window.acdSession = fetch("/api/me", { credentials: "same-origin" })
  .then((r) => (r.ok ? r.json() : null))
  .then((me) => {
    const bar = document.getElementById("session");
    if (!me || !bar) return me;
    bar.querySelector(".who").textContent = me.username + " · " + me.role;
    bar.querySelector("input[name=csrf]").value = me.csrf;
    bar.hidden = false;
    return me;
  })
  .catch(() => null);
