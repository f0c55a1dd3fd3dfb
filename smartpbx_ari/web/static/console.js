// SmartPBX operators' console: vanilla JS, no build step. Every text from the server is
// put in the page with textContent (never as HTML), so a stored "<script>" stays text.
"use strict";

const state = { token: sessionStorage.getItem("token"), user: sessionStorage.getItem("user"),
  role: sessionStorage.getItem("role"), lastId: 0, socket: null, retry: 500,
  alerts: new Map(), calls: new Map() };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function toast(message, bad = false) {
  const box = $("#toast");
  box.textContent = message;
  box.className = "show" + (bad ? " bad" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ""; }, 3500);
}

async function api(method, path, body) {
  const response = await fetch(path, { method, headers: {
    "Content-Type": "application/json", Authorization: `Bearer ${state.token}` },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== "/api/v1/auth/login") logout();
  if (!response.ok) throw new Error(data.error ? data.error.message : response.statusText);
  return data;
}

// ---- login ---------------------------------------------------------------------------
$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#login-error").textContent = "";
  try {
    const data = await api("POST", "/api/v1/auth/login", {
      email: $("#login-email").value, password: $("#login-password").value });
    Object.assign(state, { token: data.access_token, user: data.user, role: data.role });
    for (const key of ["token", "user", "role"]) sessionStorage.setItem(key, state[key]);
    start();
  } catch (err) {
    $("#login-error").textContent = err.message;
  }
});

function logout() {
  sessionStorage.clear();
  state.token = null;
  if (state.socket) state.socket.close();
  location.reload();
}
$("#logout").addEventListener("click", logout);

function start() {
  $("#login").hidden = true;
  $("#tabs").hidden = false;
  $("#logout").hidden = false;
  $("#who").textContent = `${state.user} (${state.role})`;
  show("live");
  connect();
  loadOperators();
}

// ---- tabs ----------------------------------------------------------------------------
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => show(button.dataset.tab));
}

function show(tab) {
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== tab;
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.tab === tab);
  }
  if (tab === "history") loadHistory();
  if (tab === "metrics") loadMetrics();
}

// ---- the live feed -------------------------------------------------------------------
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/ws/operator/${encodeURIComponent(state.user)}` +
    `?token=${encodeURIComponent(state.token)}&since=${state.lastId}`;
  const socket = new WebSocket(url);
  state.socket = socket;
  socket.onopen = () => { state.retry = 500; setLink(true); };
  socket.onmessage = (event) => handle(JSON.parse(event.data));
  socket.onclose = () => {
    setLink(false);
    if (state.token) setTimeout(connect, state.retry = Math.min(state.retry * 2, 10000));
  };
}

function setLink(up) {
  $("#link").textContent = up ? "live" : "offline";
  $("#link").className = up ? "badge" : "badge off";
}

function handle(message) {
  if (message.id) state.lastId = Math.max(state.lastId, message.id);
  switch (message.type) {
    case "hello":
      for (const alert of message.alerts) upsertAlert(alert);
      break;
    case "hitl_alert":
      upsertAlert({ ...message, status: "open", accepted_by: "" });
      toast(message.reason === "callback" ? `Call back requested: ${message.question}`
        : `Alert: ${message.question || message.reason}`);
      break;
    case "alert_update": {
      const alert = state.alerts.get(message.alert_id);
      if (alert) upsertAlert({ ...alert, status: message.status, accepted_by: message.user,
        summary: message.summary ?? alert.summary });
      break;
    }
    case "alert_heard": {
      const alert = state.alerts.get(message.alert_id);
      const heard = { text: message.text, answer: message.answer };
      if (alert) upsertAlert({ ...alert, heard: [...(alert.heard || []), heard] });
      break;
    }
    case "call_started": callBox(message.call_id, message.caller); break;
    case "transcript": addLine(message.call_id, message.speaker, message.text); break;
    case "call_ended": endCall(message.call_id, message.status, message.reason); break;
    case "taken_over": operatorOn(message.call_id, message.endpoint, true); break;
    case "handed_back": operatorOn(message.call_id, message.endpoint, false); break;
    case "takeover_failed": toast(`Phone ${message.endpoint} did not answer`, true); break;
    case "listening": listenerOn(message.call_id, message.endpoint, true); break;
    case "listen_ended": listenerOn(message.call_id, message.endpoint, false); break;
    case "presence": loadOperators(); break;
    case "answered": toast("Your answer is being spoken to the caller"); break;
    case "accepted": toast("Alert taken"); break;
    case "error": toast(message.message, true); break;
    default: break;
  }
}

function upsertAlert(alert) {
  const live = alert.status === "open" || alert.status === "accepted";
  state.alerts.set(alert.alert_id, alert);
  let item = document.querySelector(`li[data-alert-id="${CSS.escape(alert.alert_id)}"]`);
  if (!live) {
    if (item) item.remove();
    state.alerts.delete(alert.alert_id);
    $("#alert-count").textContent = String(state.alerts.size);
    return;
  }
  const mine = alert.accepted_by === state.user;
  const taken = alert.accepted_by && !mine;
  const fresh = el("li", { class: `alert ${alert.status}`, "data-alert-id": alert.alert_id },
    el("div", {}, el("strong", {}, alert.reason === "callback" ? `Call back ${alert.question}`
      : alert.question || `(${alert.reason})`)),
    el("div", { class: "meta" }, `${alert.reason}` +
      (alert.confidence != null ? ` · confidence ${alert.confidence}` : "") +
      ` · call ${alert.call_id}` + (alert.accepted_by ? ` · taken by ${alert.accepted_by}` : "")),
    el("div", { class: "summary" }, alert.summary || ""),
    el("ul", { class: "heard" }, ...(alert.heard || []).map((h) => el("li", {}, `“${h.text}”`,
      el("span", { class: "small" }, h.answer ? ` · answered: ${h.answer}` : " · unsure: for you")))));
  if (!taken && state.role !== "viewer") {
    const accept = el("button", { class: "accept", type: "button", disabled: mine }, mine ? "Yours" : "Accept");
    accept.addEventListener("click", () => act(alert, "accept"));
    fresh.append(accept);
    if (mine && !alert.waiting) {
      const done = el("button", { class: "close", type: "button" }, "Done");
      done.addEventListener("click", () => act(alert, "close"));
      fresh.append(done);
    }
    if (alert.waiting) {
      const takeover = el("button", { class: "takeover", type: "button" }, "Take over on my phone");
      takeover.addEventListener("click", () => act(alert, "takeover"));
      fresh.append(takeover);
      const input = el("input", { class: "answer-text", placeholder: "type the answer for the caller" });
      const send = el("button", { class: "answer-send", type: "button" }, "Send answer");
      send.addEventListener("click", () => act(alert, "answer", input.value));
      fresh.append(el("div", { class: "row" }, input, send));
    }
  }
  if (item) item.replaceWith(fresh); else $("#alerts").prepend(fresh);
  $("#alert-count").textContent = String(state.alerts.size);
}

async function act(alert, action, text) {
  try {
    const body = action === "answer" ? { text } : undefined;
    const data = await api("POST", `/api/v1/alerts/${encodeURIComponent(alert.alert_id)}/${action}`, body);
    upsertAlert(data);
    toast({ answer: "Answer sent: it is being spoken to the caller",
      takeover: "Your phone is ringing: answer it to talk to the caller",
      accept: "Alert taken", close: "Alert closed" }[action]);
  } catch (err) {
    toast(err.message, true);
  }
}

function callBox(callId, caller) {
  let box = state.calls.get(callId);
  if (!box) {
    box = el("div", { class: "call", "data-call-id": callId },
      el("div", {}, el("strong", {}, caller || "unknown caller"), el("span", { class: "small" }, ` · ${callId}`)),
      el("div", { class: "transcript" }));
    state.calls.set(callId, box);
    $("#calls").prepend(box);
    if (state.role !== "viewer") box.append(callButton(callId, "listen", "Listen in on my phone"));
  }
  return box;
}

function addLine(callId, speaker, text) {
  const lines = callBox(callId).querySelector(".transcript");
  lines.append(el("div", { class: "transcript-line" },
    el("span", { class: `speaker speaker-${speaker}` }, speaker), text));
  lines.scrollTop = lines.scrollHeight;
}

function operatorOn(callId, endpoint, on) {
  const box = callBox(callId);
  box.querySelector(".handback")?.remove();
  box.querySelector(".takeover")?.remove();
  addLine(callId, "system", on ? `operator phone ${endpoint} joined; the AI is listening only`
    : `operator phone ${endpoint} left; the AI answers again`);
  if (on && state.role !== "viewer") {
    const back = el("button", { class: "handback", type: "button" }, "Hand back to the AI");
    back.addEventListener("click", async () => {
      try {
        await api("POST", `/api/v1/calls/${encodeURIComponent(callId)}/handback`);
        toast("Handed back to the AI");
      } catch (err) { toast(err.message, true); }
    });
    box.append(back);
  }
}

function callButton(callId, action, label) {
  const button = el("button", { class: action, type: "button" }, label);
  button.addEventListener("click", async () => {
    try {
      await api("POST", `/api/v1/calls/${encodeURIComponent(callId)}/${action}`);
      toast(action === "listen" ? "Your phone is ringing: answer it to listen in"
        : "Taking the call on your phone");
    } catch (err) { toast(err.message, true); }
  });
  return button;
}

function listenerOn(callId, endpoint, on) {
  const box = callBox(callId);
  box.querySelector(".takeover")?.remove();
  addLine(callId, "system", on ? `operator phone ${endpoint} is listening in`
    : `operator phone ${endpoint} stopped listening`);
  if (on && state.role !== "viewer") box.append(callButton(callId, "takeover", "Take over"));
}

function endCall(callId, status, reason) {
  const box = state.calls.get(callId);
  if (!box) return;
  box.querySelector(".small").textContent += ` · ${status} (${reason})`;
  setTimeout(() => { box.remove(); state.calls.delete(callId); }, 60000);
}

async function loadOperators() {
  try {
    const data = await api("GET", "/api/v1/operators");
    $("#operators").replaceChildren(...data.data.map((op) =>
      el("li", { class: `presence ${op.state}` }, `${op.endpoint}: ${op.state}`)));
  } catch (err) { /* shown on the next action */ }
}

// ---- history -------------------------------------------------------------------------
const PAGE = 25;
const listing = { offset: 0, total: 0 };
$("#history-form").addEventListener("submit", (event) => {
  event.preventDefault();
  listing.offset = 0;
  loadHistory();
});
$("#history-prev").addEventListener("click", () => {
  listing.offset = Math.max(0, listing.offset - PAGE);
  loadHistory();
});
$("#history-next").addEventListener("click", () => {
  if (listing.offset + PAGE < listing.total) listing.offset += PAGE;
  loadHistory();
});

async function loadHistory() {
  const params = new URLSearchParams({ limit: String(PAGE), offset: String(listing.offset) });
  for (const key of ["caller", "status", "disposition"]) {
    const value = $(`#history-${key}`).value;
    if (value) params.set(key, value);
  }
  try {
    const data = await api("GET", `/api/v1/calls?${params}`);
    listing.total = data.total;
    $("#history-table tbody").replaceChildren(...data.data.map(historyRow));
    $("#history-page").textContent = pageLabel(listing.offset, data.data.length, data.total);
    $("#history-prev").disabled = listing.offset === 0;
    $("#history-next").disabled = listing.offset + data.data.length >= data.total;
  } catch (err) { toast(err.message, true); }
}

function historyRow(call) {
  const row = el("tr", { class: "clickable", "data-call-id": call.call_id, tabIndex: 0 },
    el("td", { class: "when", title: call.start_time || "" }, localTime(call.start_time)),
    el("td", {}, call.caller), el("td", { class: "num" }, clock(call.duration)),
    el("td", {}, disposition(call) || call.status),
    el("td", { class: "question", title: call.first_question }, call.first_question),
    el("td", {}, call.language || "default"));
  row.addEventListener("click", () => {
    for (const other of document.querySelectorAll("#history-table tr.selected")) other.classList.remove("selected");
    row.classList.add("selected");
    showTranscript(call.call_id);
  });
  row.addEventListener("keydown", (event) => { if (event.key === "Enter") row.click(); });
  return row;
}

async function showTranscript(callId) {
  try {
    const call = await api("GET", `/api/v1/calls/${encodeURIComponent(callId)}`);
    const box = $("#history-transcript");
    box.replaceChildren(el("h3", {}, `${call.caller} → ${call.callee}`),
      el("p", { class: "small" }, `${localTime(call.start_time)} · ${clock(call.duration) || "live"}` +
        ` · ${call.language || "default language"}`),
      el("p", { class: "disposition" }, disposition(call)), await player(call),
      ...call.utterances.map((u) => el("div", { class: "transcript-line" },
        el("span", { class: `speaker speaker-${u.speaker}` }, u.speaker), u.text)));
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  } catch (err) { toast(err.message, true); }
}

const DISPOSITIONS = { ai: "AI answered", operator_answer: "operator's typed answer",
  queue: "to the queue", taken_over: "taken over", abandoned_on_hold: "abandoned on hold",
  dead_peer: "line went dead" };

function disposition(call) {
  if (!call.disposition) return "";
  const name = DISPOSITIONS[call.disposition] || call.disposition;
  return call.disposition_reason ? `${name} (${call.disposition_reason})` : name;
}

// The recording, fetched with the bearer token (an <audio src> could not send it).
async function player(call) {
  if (!call.recording) return el("p", { class: "muted" }, "no recording");
  if (state.role === "viewer") return el("p", { class: "muted" }, "recordings: operators and admins");
  const response = await fetch(call.recording, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) return el("p", { class: "muted" }, `recording: ${response.statusText}`);
  const audio = el("audio", { controls: true, preload: "metadata", class: "recording" });
  audio.src = URL.createObjectURL(await response.blob());
  return audio;
}

// ---- knowledge -----------------------------------------------------------------------
$("#kb-search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("#kb-query").value.trim();
  const path = query ? `/api/v1/knowledge?${new URLSearchParams({ query, top_k: "10" })}` : "/api/v1/knowledge?limit=50";
  listKnowledge(path, false);
});
$("#kb-pending").addEventListener("click", () => listKnowledge("/api/v1/knowledge?status=pending&limit=50", true));

// Phrasings generated at import: shown as such, each removable by an editor.
function generatedPhrasings(entry, candidates) {
  const generated = entry.generated || [];
  if (!generated.length) return "";
  const line = el("div", { class: "small generated" }, "generated: ");
  for (const phrasing of generated) {
    const chip = el("span", { class: "chip" }, phrasing);
    if (!candidates && state.role !== "viewer") {
      const remove = el("button", { type: "button", class: "remove", title: "remove this generated phrasing" }, "×");
      remove.addEventListener("click", async () => {
        try {
          const kept = (entry.generated || []).filter((p) => p !== phrasing);
          await api("PUT", `/api/v1/knowledge/${encodeURIComponent(entry.id)}`, { generated: kept });
          entry.generated = kept;
          chip.remove();
          toast("Generated phrasing removed");
        } catch (err) { toast(err.message, true); }
      });
      chip.append(remove);
    }
    line.append(chip, " ");
  }
  return line;
}

async function listKnowledge(path, candidates) {
  try {
    const data = await api("GET", path);
    $("#kb-results").replaceChildren(...data.data.map((entry) => {
      const also = (entry.alternates || []).length ? el("div", { class: "small" }, `also asked as: ${entry.alternates.join(" · ")}`) : "";
      const title = entry.title ? el("div", { class: "small" }, `spoken title: ${entry.title}`) : "";
      const item = el("li", { "data-knowledge-id": entry.id }, el("strong", {}, entry.question), title, also,
        generatedPhrasings(entry, candidates),
        el("div", {}, entry.answer), el("div", { class: "small" }, `${entry.category || ""}` +
          (entry.similarity != null ? ` · similarity ${entry.similarity}` : "")));
      if (candidates && state.role !== "viewer") {
        for (const action of ["approve", "reject"]) {
          const button = el("button", { type: "button", class: action }, action === "approve" ? "Approve" : "Reject");
          button.addEventListener("click", async () => {
            try {
              await api("POST", `/api/v1/knowledge/${encodeURIComponent(entry.id)}/${action}`);
              item.remove();
              toast(action === "approve" ? "Approved: callers get this answer now" : "Rejected");
            } catch (err) { toast(err.message, true); }
          });
          item.append(button);
        }
      }
      return item;
    }));
    if (!data.data.length) toast("Nothing found");
  } catch (err) { toast(err.message, true); }
}

$("#kb-add").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const alternates = $("#kb-alternates").value.split("\n").map((line) => line.trim()).filter(Boolean);
    await api("POST", "/api/v1/knowledge", { question: $("#kb-question").value, alternates,
      answer: $("#kb-answer").value, category: $("#kb-category").value || "general" });
    event.target.reset();
    toast("Entry added");
  } catch (err) { toast(err.message, true); }
});

// ---- metrics -------------------------------------------------------------------------
$("#metrics-refresh").addEventListener("click", loadMetrics);
$("#metrics-period").addEventListener("change", loadMetrics);

// the period shown -> its buckets: hours of a day, 6 hours of a week
const BUCKETS = { "1h": "5m", "24h": "1h", "7d": "6h", "30d": "1d" };
const CHARTS = {
  calls: { kind: "bars", unit: "calls", series: [{ name: "calls", value: (b) => b.calls }] },
  containment: { kind: "lines", unit: "%", top: 100, scale: 100,
    series: [{ name: "contained", value: (b) => b.containment_rate }] },
  hold: { kind: "lines", unit: "s", series: [{ name: "p50", value: (b) => b.hold_s.p50 },
    { name: "p95", value: (b) => b.hold_s.p95 }] },
  latency: { kind: "lines", unit: "ms", series: [{ name: "p50", value: (b) => b.latency_ms.p50 },
    { name: "p95", value: (b) => b.latency_ms.p95 }] },
};

async function loadMetrics() {
  const period = $("#metrics-period").value;
  try {
    const [m, line] = await Promise.all([
      api("GET", `/api/v1/metrics/performance?period=${period}`),
      api("GET", `/api/v1/metrics/timeline?${new URLSearchParams({ period, bucket: BUCKETS[period],
        utc_offset: String(-new Date().getTimezoneOffset()) })}`)]);  // local days
    const pct = (x) => (x == null ? "–" : `${Math.round(x * 100)} %`);
    const secs = (x) => (x == null ? "–" : `${x} s`);
    const ms = (x) => (x == null ? "–" : `${Math.round(x)} ms`);
    const figures = [["Calls", m.calls], ["Active", m.active], ["AI resolved", pct(m.ai_resolved_rate)],
      ["HITL", pct(m.hitl_rate)], ["Handed off", m.handed_off],
      ["Containment", pct(m.containment_rate)], ["Hold p50", secs(m.hold_s.p50)],
      ["Hold p95", secs(m.hold_s.p95)],
      ["Abandoned on hold", `${m.abandoned_on_hold} (${pct(m.abandoned_on_hold_rate)})`],
      ["Latency p50", ms(m.latency_ms.p50)], ["Latency p95", ms(m.latency_ms.p95)]];
    $("#metrics-figures").replaceChildren(...figures.map(([k, v]) =>
      el("div", { class: "figure" }, el("dt", {}, k), el("dd", {}, v))));
    for (const [name, spec] of Object.entries(CHARTS)) {
      drawChart($(`#chart-${name}`), spec, line.data, line.bucket_s);
    }
    $("#metrics-span").textContent = `${localTime(line.from)} – ${localTime(line.to)}, per ${line.bucket}`;
  } catch (err) { toast(err.message, true); }
}

if (state.token) start();
