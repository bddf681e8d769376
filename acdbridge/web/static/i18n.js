// The pages' languages: English, Chinese and Spanish (the hotlines' own). Chosen by the browser
// (navigator.languages), switchable from the page (kept in localStorage), English when nothing
// matches. Static text is marked data-i18n in the HTML (its English text is the key); the pages'
// scripts word what they build with acdI18n.t(english, {name: value}). Hand-written on purpose:
// a few dozen strings, no build step, no CDN (contact-centre networks are often closed).
// What the server says (errors, the LED line) stays in English.
"use strict";
(function () {
  const ZH = {
    "Sign out": "退出登录", "Sign in": "登录", "Username": "用户名", "Password": "密码",
    "connecting…": "连接中…", "live": "实时", "reconnecting…": "重新连接中…", "Language": "语言",
    "Log in": "签入", "Log out": "签出", "Pause": "暂停", "Unpause": "恢复",
    "pause reason": "暂停原因",
    "Read-only: only the agent presses this desk's buttons.": "只读：只有该座席本人可以操作这些按钮。",
    "Wrap-up: pick a disposition": "话后处理：请选择处理结果",
    "Call": "通话", "Current call": "当前通话", "Ringing: incoming call": "振铃：来电",
    "Caller": "来电号码", "Name": "姓名", "Account": "账户", "Address": "地址", "Call type": "来电类型",
    "Hotline": "热线", "Queue": "队列", "Waited": "等待时长", "Notice": "通知",
    "Previous calls": "历史来电", "when": "时间", "queue": "队列", "outcome": "结果", "agent": "座席",
    "disposition": "处理结果", "survey": "满意度", "Today": "今日", "no previous calls": "无历史来电",
    "looking up…": "查询中…", "target {value}": "目标 {value}",
    "Ready": "就绪", "Ringing": "振铃", "Talking": "通话中", "On hold": "保持", "Wrap-up": "话后处理",
    "Paused": "暂停", "Logged out": "已签出",
    "Calls answered": "接听数", "AHT": "平均处理时长", "ACW per call": "平均话后时长",
    "Hold per call": "平均保持时长", "Occupancy": "占用率",
    "the daemon did not answer: {value}": "服务无响应：{value}",
    "acdbridge wallboard": "acdbridge 墙板", "LONGEST": "最长等待", "SL {value}": "服务水平 {value}",
    "ABANDON": "放弃率", "AVG WAIT TODAY": "今日平均等待", "READY": "就绪", "TALKING / PAUSED": "通话 / 暂停",
    "SL {value} below its {target} target": "服务水平 {value}，低于目标 {target}",
    "{value} waiting, no agent ready": "{value} 人等待，无就绪座席",
    "need {need}, have {have}": "需要 {need}，现有 {have}", "next {value}": "下一时段 {value}",
    "Audit trail (last 24 hours, newest first)": "审计记录（最近 24 小时，最新在前）",
    "time (UTC)": "时间 (UTC)", "who": "操作人", "action": "操作", "target": "对象", "address": "地址",
    "detail": "详情",
    "Supervisor": "班长席", "Skill": "技能", "State": "状态", "Pause reason": "暂停原因", "level": "等级",
    "all": "全部", "Agent": "座席", "In state": "状态时长", "Talk": "通话时长", "Calls": "来电数",
    "Skills": "技能", "Actions": "操作", "Abandoned today, not called back": "今日放弃、尚未回拨",
    "time": "时间", "caller": "来电号码", "waited": "等待", "none": "无", "Listen": "监听",
    "Whisper": "耳语", "Barge": "强插", "Mark handled": "标记已处理", "{shown} of {total} agents": "{shown} / {total} 名座席",
    "{queue} · waiting {value}": "{queue} · 等待 {value}", "no agents": "无座席", "repeat": "重复来电",
    "today: offered {offered}, answered {answered}, abandoned {abandoned}, SL {sl}, ASA {asa}, AHT {aht}":
      "今日：来电 {offered}，接听 {answered}，放弃 {abandoned}，服务水平 {sl}，平均应答 {asa}，平均处理 {aht}",
    "(paused: {reason})": "（暂停：{reason}）", "done": "完成", "{action} {agent}: done": "{action} {agent}：完成",
  };
  const ES = {
    "Sign out": "Cerrar sesión", "Sign in": "Iniciar sesión", "Username": "Usuario", "Password": "Contraseña",
    "connecting…": "conectando…", "live": "en vivo", "reconnecting…": "reconectando…", "Language": "Idioma",
    "Log in": "Conectarse", "Log out": "Desconectarse", "Pause": "Pausa", "Unpause": "Reanudar",
    "pause reason": "motivo de pausa",
    "Read-only: only the agent presses this desk's buttons.":
      "Solo lectura: solo el agente usa los botones de este escritorio.",
    "Wrap-up: pick a disposition": "Cierre: elija una tipificación",
    "Call": "Llamada", "Current call": "Llamada en curso", "Ringing: incoming call": "Sonando: llamada entrante",
    "Caller": "Llamante", "Name": "Nombre", "Account": "Cuenta", "Address": "Dirección",
    "Call type": "Tipo de llamada", "Hotline": "Línea", "Queue": "Cola", "Waited": "Esperó", "Notice": "Aviso",
    "Previous calls": "Llamadas anteriores", "when": "cuándo", "queue": "cola", "outcome": "resultado",
    "agent": "agente", "disposition": "tipificación", "survey": "encuesta", "Today": "Hoy",
    "no previous calls": "sin llamadas anteriores", "looking up…": "buscando…",
    "target {value}": "objetivo {value}",
    "Ready": "Disponible", "Ringing": "Sonando", "Talking": "En llamada", "On hold": "En espera",
    "Wrap-up": "Cierre", "Paused": "En pausa", "Logged out": "Desconectado",
    "Calls answered": "Llamadas atendidas", "AHT": "TMO", "ACW per call": "Cierre por llamada",
    "Hold per call": "Espera por llamada", "Occupancy": "Ocupación",
    "the daemon did not answer: {value}": "el servicio no respondió: {value}",
    "acdbridge wallboard": "panel acdbridge", "LONGEST": "MÁS LARGA", "SL {value}": "NS {value}",
    "ABANDON": "ABANDONO", "AVG WAIT TODAY": "ESPERA MEDIA HOY", "READY": "DISPONIBLES",
    "TALKING / PAUSED": "EN LLAMADA / PAUSA",
    "SL {value} below its {target} target": "NS {value} por debajo del objetivo {target}",
    "{value} waiting, no agent ready": "{value} en espera, ningún agente disponible",
    "need {need}, have {have}": "se necesitan {need}, hay {have}", "next {value}": "siguiente {value}",
    "Audit trail (last 24 hours, newest first)": "Registro de auditoría (últimas 24 horas, más recientes primero)",
    "time (UTC)": "hora (UTC)", "who": "quién", "action": "acción", "target": "objeto", "address": "dirección",
    "detail": "detalle",
    "Supervisor": "Supervisión", "Skill": "Habilidad", "State": "Estado", "Pause reason": "Motivo de pausa",
    "level": "nivel", "all": "todos", "Agent": "Agente", "In state": "En estado", "Talk": "Conversación",
    "Calls": "Llamadas", "Skills": "Habilidades", "Actions": "Acciones",
    "Abandoned today, not called back": "Abandonadas hoy, sin devolver", "time": "hora", "caller": "llamante",
    "waited": "esperó", "none": "ninguna", "Listen": "Escuchar", "Whisper": "Susurrar", "Barge": "Intervenir",
    "Mark handled": "Marcar atendida", "{shown} of {total} agents": "{shown} de {total} agentes",
    "{queue} · waiting {value}": "{queue} · en espera {value}", "no agents": "sin agentes", "repeat": "repetida",
    "today: offered {offered}, answered {answered}, abandoned {abandoned}, SL {sl}, ASA {asa}, AHT {aht}":
      "hoy: ofrecidas {offered}, atendidas {answered}, abandonadas {abandoned}, NS {sl}, TMR {asa}, TMO {aht}",
    "(paused: {reason})": "(en pausa: {reason})", "done": "hecho", "{action} {agent}: done": "{action} {agent}: hecho",
  };
  const LANGS = { en: { name: "English", words: {} }, zh: { name: "中文", words: ZH }, es: { name: "Español", words: ES } };
  const KEY = "acdbridge.lang";

  function chosen() {
    let kept = null;
    try { kept = localStorage.getItem(KEY); } catch (e) { /* storage off: the browser decides */ }
    if (kept && LANGS[kept]) return kept;
    for (const tag of navigator.languages || [navigator.language || "en"]) {
      const base = String(tag).toLowerCase().split("-")[0];
      if (LANGS[base]) return base;
    }
    return "en";
  }

  let lang = chosen();

  function t(english, values) {
    let s = LANGS[lang].words[english] || english;
    for (const [k, v] of Object.entries(values || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  function apply(root) {
    document.documentElement.lang = lang;
    for (const el of (root || document).querySelectorAll("[data-i18n]")) {
      if (!el.dataset.i18nEn) el.dataset.i18nEn = el.textContent.trim();
      el.textContent = t(el.dataset.i18nEn);
    }
    for (const el of (root || document).querySelectorAll("[data-i18n-label]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nLabel));
    }
  }

  function switcher() {
    const sel = document.createElement("select");
    sel.id = "lang";
    sel.className = "lang";
    sel.setAttribute("aria-label", "Language");
    for (const [code, l] of Object.entries(LANGS)) sel.add(new Option(l.name, code, false, code === lang));
    sel.addEventListener("change", () => {
      lang = sel.value;
      try { localStorage.setItem(KEY, lang); } catch (e) { /* this page only */ }
      apply();
      document.dispatchEvent(new CustomEvent("acd-lang", { detail: lang }));
    });
    document.body.append(sel);
  }

  window.acdI18n = { t: t, apply: apply, get lang() { return lang; } };
  document.addEventListener("DOMContentLoaded", () => { apply(); switcher(); });
})();
