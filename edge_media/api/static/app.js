// edge-media review page: plain JS, no build step, nothing loaded from elsewhere.
// Every piece of data reaches the DOM through textContent or an attribute, never innerHTML.
"use strict";

(() => {
  const API = new URL("../api/v1/", document.baseURI); // works behind a reverse proxy's path prefix too
  const TOKEN_KEY = "edge-media-token"; // sessionStorage only: gone with the tab, never in a URL
  const REFRESH_MS = 10000;
  const PAGE = 200;

  const $ = (id) => document.getElementById(id);
  const state = {
    me: null,
    events: [],
    cursor: null,
    cameras: [],
    labels: new Set(),
    audioLabels: [],
    selected: null, // {event, clip}
    timer: null,
  };

  // ---- DOM helpers ---------------------------------------------------------------------------------------------
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function show(id, on) { $(id).hidden = !on; }

  const pretty = (label) => label.replace(/_/g, " ");
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
  const clock = (iso, seconds) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit",
                                                                          second: seconds ? "2-digit" : undefined });

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 129600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  // One stable colour per label (motion first), so the timeline, list and filter agree.
  const PALETTE = ["#2f7de1", "#d9480f", "#2b8a3e", "#ae3ec9", "#e8590c", "#1098ad", "#c2255c", "#5c940d"];
  const colours = new Map([["motion", PALETTE[0]]]);
  function colour(label) {
    if (!colours.has(label)) colours.set(label, PALETTE[colours.size % PALETTE.length]);
    return colours.get(label);
  }

  // ---- API -----------------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(path, { method = "GET", body = undefined } = {}) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(new URL(path, API), { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                                cache: "no-store", credentials: "omit" });
    } catch (e) {
      throw new ApiError(0, "The hub cannot be reached. Is it running?");
    }
    const data = await resp.json().catch(() => null);
    if (resp.ok) return data;
    const detail = data && typeof data.detail === "string" ? data.detail : `request failed (HTTP ${resp.status})`;
    if (resp.status === 401) { loggedOut("Your token was not accepted (revoked or mistyped). Log in again."); }
    if (resp.status === 429) throw new ApiError(429, "Too many attempts: wait a minute and try again.");
    throw new ApiError(resp.status, detail);
  }

  function banner(message) {
    $("banner").textContent = message || "";
    show("banner", Boolean(message));
  }

  // Errors of background work go to the banner; a 401 has already sent us to the login form.
  function report(err) {
    if (err.status === 401) return;
    banner(err.message);
  }

  // ---- login ---------------------------------------------------------------------------------------------------
  async function login(ev) {
    ev.preventDefault();
    const token = $("token").value.trim();
    $("login-error").textContent = "";
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    try {
      await start();
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      if (err.status !== 401) $("login-error").textContent = err.message;
    }
  }

  function loggedOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(state.timer);
    state.me = null;
    stopMedia();
    for (const id of ["nav", "who", "events-view", "consent-view", "banner"]) show(id, false);
    show("login-view", true);
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  async function start() {
    state.me = await api("me");
    banner("");
    $("who-name").textContent = state.me.name;
    $("who-role").textContent = state.me.role;
    show("login-view", false);
    show("nav", true);
    show("who", true);
    show("nav-consent", state.me.role === "owner");
    await loadModels();
    switchView("events");
    $("main").focus(); // from the login form to the content, for keyboard and screen-reader users
    clearInterval(state.timer);
    state.timer = setInterval(() => { if (!$("events-view").hidden) refresh(false).catch(report); }, REFRESH_MS);
  }

  async function loadModels() {
    // The audio labels, when the hub says them; otherwise those seen in events (see refreshLabels).
    const models = await api("models").catch(() => ({ models: [] }));
    const audio = (models.models || []).find((m) => Array.isArray(m.labels) && m.name !== "motion");
    state.audioLabels = audio ? audio.labels.filter((l) => l !== "background") : [];
  }

  function switchView(view) {
    for (const tab of document.querySelectorAll(".tab")) {
      if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    show("events-view", view === "events");
    show("consent-view", view === "consent");
    banner("");
    if (view === "events") refresh(true).catch(report);
    else { stopMedia(); loadConsent().catch(report); }
  }

  // ---- cameras, timeline, events -------------------------------------------------------------------------------
  async function refresh(reset) {
    const label = $("label-filter").value;
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (label) query.set("label", label);
    const [cameras, page] = await Promise.all([api("cameras"), api(`events?${query}`)]);
    state.cameras = cameras;
    if (reset || !state.events.length) {
      state.events = page.items;
      state.cursor = page.next_cursor;
    } else { // keep older pages the user loaded; put new events on top
      const known = new Set(state.events.map((e) => e.event_id));
      state.events = [...page.items.filter((e) => !known.has(e.event_id)), ...state.events];
    }
    keepingFocus(() => {
      renderCameras();
      refreshLabels();
      renderTimeline();
      renderEvents();
    });
  }

  // A refresh rebuilds the lists: whoever was on an event (keyboard, screen reader) stays on it.
  function keepingFocus(render) {
    const active = document.activeElement;
    const id = active && active.dataset ? active.dataset.event : undefined;
    const where = id && active.closest("#timeline") ? "#timeline" : "#events";
    render();
    if (id) {
      const again = [...document.querySelectorAll(`${where} [data-event]`)].find((n) => n.dataset.event === id);
      if (again) again.focus();
    }
  }

  async function loadMore() {
    if (!state.cursor) return;
    const query = new URLSearchParams({ limit: String(PAGE), cursor: state.cursor });
    const label = $("label-filter").value;
    if (label) query.set("label", label);
    const page = await api(`events?${query}`);
    state.events.push(...page.items);
    state.cursor = page.next_cursor;
    renderTimeline();
    renderEvents();
  }

  function renderCameras() {
    const list = $("cameras");
    list.replaceChildren();
    if (!state.cameras.length) list.append(el("li", { class: "hint", text: "No cameras are shared with you." }));
    for (const c of state.cameras) {
      const status = c.connected ? "connected" : c.state;
      const facts = [c.kind, c.fps !== null && c.fps !== undefined ? `${c.fps} fps` : null].filter(Boolean).join(" · ");
      const last = [];
      if (c.last_motion) last.push(`motion ${ago(c.last_motion.start)}`);
      if (c.last_audio) last.push(`${pretty(c.last_audio.label)} ${ago(c.last_audio.start)}`);
      list.append(el("li", { class: `camera state-${c.connected ? "ok" : "bad"}` },
        el("div", { class: "camera-name" },
          el("span", { class: "dot", "aria-hidden": "true" }),
          el("strong", { text: c.name }),
          c.restricted ? el("span", { class: "badge warn", text: "restricted" }) : null),
        el("div", { class: "camera-state", text: `${status}${facts ? " · " + facts : ""}` }),
        el("div", { class: "hint", text: last.length ? `last: ${last.join(", ")}` : "no events yet" })));
    }
  }

  function refreshLabels() {
    for (const e of state.events) state.labels.add(e.label);
    for (const l of state.audioLabels) state.labels.add(l);
    const select = $("label-filter");
    const current = select.value;
    const labels = [...state.labels].sort((a, b) => (a === "motion" ? -1 : b === "motion" ? 1 : a.localeCompare(b)));
    select.replaceChildren(el("option", { value: "", text: "All labels" }),
      ...labels.map((l) => el("option", { value: l, text: pretty(l) })));
    select.value = current;
  }

  function renderTimeline() {
    const box = $("timeline");
    box.replaceChildren();
    const events = state.events;
    show("timeline-empty", !events.length);
    if (!events.length) return;
    const now = Date.now();
    const oldest = Math.min(...events.map((e) => Date.parse(e.start)));
    const span = Math.max(now - oldest, 60 * 1000) * 1.08; // the loaded events, a margin, at least a minute
    const t0 = now - span;
    const x = (iso) => Math.min(99, Math.max(0, ((Date.parse(iso) - t0) / span) * 100));
    const names = [...new Set([...state.cameras.map((c) => c.name), ...events.map((e) => e.camera)])];
    for (const name of names) {
      const track = el("div", { class: "track", role: "group", "aria-label": `${name} events` });
      for (const e of events.filter((ev) => ev.camera === name)) {
        const left = x(e.start);
        const width = Math.min(100 - left, Math.max(0.6, ((Date.parse(e.end) - Date.parse(e.start)) / span) * 100));
        const mark = el("button", {
          type: "button", class: "mark", "data-event": e.event_id,
          "aria-label": `${pretty(e.label)} on ${name} at ${when(e.start)}`, title: `${pretty(e.label)} · ${when(e.start)}`,
          onclick: () => select(e),
        });
        mark.style.left = `${left.toFixed(3)}%`;
        mark.style.width = `${width.toFixed(3)}%`;
        mark.style.background = colour(e.label);
        if (state.selected && state.selected.event.event_id === e.event_id) mark.classList.add("selected");
        track.append(mark);
      }
      box.append(el("div", { class: "lane" }, el("div", { class: "lane-name", text: name }), track));
    }
    const axis = el("div", { class: "axis", "aria-hidden": "true" });
    for (let i = 0; i <= 4; i++) {
      const t = new Date(t0 + (span * i) / 4).toISOString();
      const tick = el("span", { class: "tick", text: i === 4 ? "now" : clock(t, span < 20 * 60 * 1000) });
      tick.style.left = `${i * 25}%`;
      axis.append(tick);
    }
    box.append(el("div", { class: "lane" }, el("div", { class: "lane-name" }), axis));
  }

  function renderEvents() {
    const list = $("events");
    list.replaceChildren();
    for (const e of state.events) {
      const selected = state.selected && state.selected.event.event_id === e.event_id;
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.background = colour(e.label);
      list.append(el("li", {},
        el("button", { type: "button", class: `event${selected ? " selected" : ""}`, "data-event": e.event_id,
                       "aria-pressed": selected ? "true" : "false", onclick: () => select(e) },
          swatch,
          el("span", { class: "event-label", text: pretty(e.label) }),
          el("span", { class: "event-camera", text: e.camera }),
          // a sound's score is the model's confidence; motion's is the changed area, not worth a number here
          el("span", { class: "event-score", text: e.label === "motion" ? "" : `${Math.round(e.score * 100)} %` }),
          el("time", { datetime: e.start, text: when(e.start) }))));
    }
    show("more", Boolean(state.cursor));
  }

  // ---- player and flags ----------------------------------------------------------------------------------------
  function stopMedia() {
    const old = $("media-slot").querySelector("video, audio");
    if (old) { old.pause(); old.removeAttribute("src"); old.load(); }
    $("media-slot").replaceChildren();
  }

  async function select(event) {
    stopMedia();
    $("player-error").textContent = "";
    $("flag-result").textContent = "";
    show("player-empty", false);
    show("player-body", true);
    $("player-title").textContent = `${pretty(event.label)} on ${event.camera}, ${when(event.start)}`;
    state.selected = { event, clip: null };
    renderTimeline();
    renderEvents();
    try {
      const [clip, link] = await Promise.all([api(`clips/${encodeURIComponent(event.clip_id)}`), newLink(event.clip_id)]);
      if (!state.selected || state.selected.event !== event) return; // another event was chosen meanwhile
      state.selected.clip = clip;
      play(clip, link, event);
      renderFlagForms(clip, event);
      renderClipFlags(clip.flags);
    } catch (err) {
      if (err.status !== 401) $("player-error").textContent = err.message;
    }
  }

  function newLink(clipId) {
    return api(`clips/${encodeURIComponent(clipId)}/link`, { method: "POST" });
  }

  function play(clip, link, event) {
    const media = el(clip.video ? "video" : "audio", { controls: true, preload: "auto", playsinline: true,
                                                       "aria-label": `Clip of ${event.camera}` });
    const offset = (clip.events || []).filter((e) => e.label === event.label).map((e) => e.start_s);
    let relinked = false;
    media.addEventListener("loadedmetadata", () => {
      // Start a little before the event: the pre-roll is there for context, not to be sat through.
      if (offset.length) media.currentTime = Math.max(0, Math.min(...offset) - 1);
    }, { once: true });
    media.addEventListener("error", async () => {
      const code = media.error ? media.error.code : 0;
      if (!relinked && code === 2) { // network: the short-lived link may have expired while paused
        relinked = true;
        try { media.src = (await newLink(clip.clip_id)).url; return; } catch (err) { /* fall through */ }
      }
      $("player-error").textContent = code === 4
        ? "This browser cannot play this clip's format. Download it instead: "
        : "The clip could not be loaded. ";
      $("player-error").append(el("a", { href: media.currentSrc || link.url, download: "", rel: "noreferrer",
                                         text: "download clip" }));
    });
    media.src = link.url;
    $("media-slot").replaceChildren(media,
      el("p", { class: "hint", text: `Link valid until ${when(link.expires_at)}.` }));
    media.play().catch(() => { /* autoplay refused: the controls are there */ });
  }

  function renderFlagForms(clip, event) {
    // "wrong": the event's own label; the truth is another label of the same kind, or "nothing".
    const sameKind = event.label === "motion" ? [] : audioLabels().filter((l) => l !== event.label);
    $("truth").replaceChildren(el("option", { value: "", text: "not sure" }),
      el("option", { value: "nothing", text: "nothing happened" }),
      ...sameKind.map((l) => el("option", { value: l, text: pretty(l) })));
    $("flag-wrong").textContent = `This was not ${pretty(event.label)}`;
    // "missed": a sound the clip should have had (only for clips with audio, and not one already reported).
    const had = new Set((clip.events || []).map((e) => e.label));
    const missable = audioLabels().filter((l) => !had.has(l));
    $("missed-label").replaceChildren(...missable.map((l) => el("option", { value: l, text: pretty(l) })));
    show("missed-form", Boolean(clip.audio) && missable.length > 0);
  }

  function audioLabels() {
    if (state.audioLabels.length) return state.audioLabels;
    return [...state.labels].filter((l) => l !== "motion").sort();
  }

  async function flag(kind) {
    const sel = state.selected;
    if (!sel || !sel.clip) return;
    const body = kind === "wrong"
      ? { kind, label: sel.event.label, truth: $("truth").value || null }
      : { kind, label: $("missed-label").value, truth: null };
    if (!body.label) return;
    const result = $("flag-result");
    result.className = "result";
    result.textContent = "Sending…";
    try {
      const f = await api(`clips/${encodeURIComponent(sel.clip.clip_id)}/flags`, { method: "POST", body });
      const what = f.kind === "wrong" ? `“${pretty(f.label)}” marked as wrong${f.truth ? ` (really: ${pretty(f.truth)})` : ""}`
                                      : `missed “${pretty(f.label)}” reported`;
      const partner = f.partner_queued ? "an anonymised sample is queued for the model team (you consented)."
                                       : "nothing leaves the hub (no consent, or not a sound).";
      result.textContent = `Thank you: ${what}; ${partner}`;
      result.classList.add("ok");
      const clip = await api(`clips/${encodeURIComponent(sel.clip.clip_id)}`);
      if (state.selected === sel) { sel.clip = clip; renderClipFlags(clip.flags); renderFlagForms(clip, sel.event); }
    } catch (err) {
      result.textContent = err.status === 401 ? "" : `Not recorded: ${err.message}`;
      result.classList.add("bad");
    }
  }

  function renderClipFlags(flags) {
    $("clip-flags").replaceChildren(...(flags || []).map((f) => el("li", {
      "data-flag": f.flag_id,
      text: `${f.kind === "wrong" ? "wrong" : "missed"}: ${pretty(f.label)}${f.truth ? ` → ${pretty(f.truth)}` : ""} · ${when(f.created)}`,
    })));
  }

  // ---- consent (owners only) -----------------------------------------------------------------------------------
  const PURPOSE_TITLES = {
    "misdetection-feedback": "Share the sounds you flag as misdetected",
    "product-improvement": "Share sound samples to improve the product",
  };

  async function loadConsent() {
    const consent = await api("consent");
    $("consent-owner").textContent = `for ${consent.owner}`;
    const notices = await Promise.all(consent.state.map((s) => api(`consent/notice?purpose=${encodeURIComponent(s.purpose)}`)));
    $("purposes").replaceChildren(...consent.state.map((s, i) => purposeCard(s, notices[i])));
    $("history").replaceChildren(...[...consent.history].reverse().map((r) => el("tr", {},
      el("td", {}, el("time", { datetime: r.at, text: when(r.at) })),
      el("td", { text: r.purpose }),
      el("td", { text: r.action }),
      el("td", { text: r.notice_version ? `v${r.notice_version}` : "—" }),
      el("td", { text: r.method }),
      el("td", { text: r.actor }))));
    if (!consent.history.length) {
      $("history").append(el("tr", {}, el("td", { colspan: "6", class: "hint", text: "Nothing recorded yet." })));
    }
  }

  function describe(s) {
    if (s.allowed) return `Granted under notice v${s.notice_version}`;
    if (s.reason === "notice-superseded") return `Not in force: the notice changed (you agreed to v${s.notice_version})`;
    return s.reason === "withdrawn" ? "Withdrawn" : "Not granted";
  }

  function purposeCard(s, notice) {
    const id = `purpose-${s.purpose}`;
    const grant = el("button", { type: "button", class: "grant", "data-purpose": s.purpose,
                                 text: s.allowed ? `Granted (notice v${notice.version})` : `Grant under notice v${notice.version}`,
                                 disabled: s.allowed,
                                 onclick: () => changeConsent("grant", s.purpose, notice) });
    const withdraw = el("button", { type: "button", class: "withdraw quiet", "data-purpose": s.purpose, text: "Withdraw",
                                    disabled: !s.allowed, onclick: () => changeConsent("withdraw", s.purpose, notice) });
    return el("section", { class: "card purpose", id, "aria-labelledby": `${id}-h` },
      el("div", { class: "row" },
        el("h3", { id: `${id}-h`, text: PURPOSE_TITLES[s.purpose] || s.purpose }),
        el("span", { class: "spacer" }),
        el("span", { class: `badge ${s.allowed ? "ok" : ""}`, "data-state": s.allowed ? "granted" : s.reason, text: describe(s) })),
      el("p", { class: "hint", text: `${s.purpose} · notice version ${notice.version} · sha256 ${notice.sha256.slice(0, 16)}…` }),
      el("pre", { class: "notice", tabindex: "0", "aria-label": `Notice v${notice.version}`, text: notice.text }),
      el("div", { class: "row end" }, withdraw, grant));
  }

  function confirmDialog(title, text, ok) {
    const dialog = $("confirm");
    $("confirm-h").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = ok;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      $("confirm-cancel").focus(); // the safe choice has the focus
    });
  }

  async function changeConsent(action, purpose, notice) {
    const ok = action === "grant"
      ? await confirmDialog("Grant consent?",
        `You agree to notice v${notice.version} (${purpose}) as shown on this page. You can withdraw at any time.`,
        `Grant (notice v${notice.version})`)
      : await confirmDialog("Withdraw consent?",
        `Nothing more will be shared for ${purpose}; samples still waiting to be sent are deleted, and what was ` +
        "already sent is asked to be deleted.", "Withdraw");
    if (!ok) return;
    const result = $("consent-result");
    result.className = "result";
    try {
      const change = action === "grant"
        ? await api(`consent/${encodeURIComponent(purpose)}/grant`, { method: "POST", body: { notice_version: notice.version } })
        : await api(`consent/${encodeURIComponent(purpose)}/withdraw`, { method: "POST" });
      const verb = action === "grant" ? "granted" : "withdrawn";
      let text = change.recorded ? `Consent ${verb} for ${purpose}.` : `Nothing changed: consent was already ${verb}.`;
      if (action === "withdraw" && change.deleted_samples) text += ` ${change.deleted_samples} queued samples deleted.`;
      result.textContent = text;
      result.classList.add("ok");
    } catch (err) {
      if (err.status === 409) result.textContent = "The notice changed meanwhile: please read the new version below.";
      else result.textContent = err.status === 401 ? "" : `Not recorded: ${err.message}`;
      result.classList.add("bad");
    }
    await loadConsent().catch(report);
  }

  // ---- wiring --------------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", () => loggedOut("Logged out."));
    for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => switchView(tab.dataset.view));
    $("label-filter").addEventListener("change", () => refresh(true).catch(report));
    $("refresh").addEventListener("click", () => refresh(false).catch(report));
    $("more").addEventListener("click", () => loadMore().catch(report));
    $("wrong-form").addEventListener("submit", (ev) => { ev.preventDefault(); flag("wrong"); });
    $("missed-form").addEventListener("submit", (ev) => { ev.preventDefault(); flag("missed"); });
    if (sessionStorage.getItem(TOKEN_KEY)) {
      start().catch((err) => { if (err.status !== 401) loggedOut(err.message); });
    } else {
      loggedOut("");
    }
  });
})();
