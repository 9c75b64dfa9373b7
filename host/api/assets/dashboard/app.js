// stratbox dashboard: hash-routed views over /dashboard/api. No markup is
// built from strings: every node comes from h(), so stored text is never
// parsed as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "stratbox.token";
  const REFRESH_MS = 2000;
  const main = document.getElementById("main");
  const statusLine = document.getElementById("status");
  const signOut = document.getElementById("sign-out");

  // Read by the browser test and docs/dashboard.md ("Its test").
  const probe = (window.stratboxDashboard = { firstChartMs: null, chartsDrawn: 0, view: null, liquidationMarkers: [], windowBands: 0 });

  let view = { timer: null, charts: [], alive: true };

  class AuthError extends Error {}

  // ---- helpers -------------------------------------------------------

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k in el && k !== "list") el[k] = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch("api/" + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (r.status === 401) throw new AuthError("token needed");
    const text = await r.text();
    if (!r.ok) {
      let message = r.status + " " + r.statusText;
      try {
        const e = JSON.parse(text).error;
        message = e.message + (e.field ? " (" + e.field + ")" : "");
      } catch (_) {
        // Not our JSON error body: keep the status line.
      }
      throw new Error(message);
    }
    return path.endsWith(".csv") ? text : JSON.parse(text);
  }
  const get = (path) => request("GET", path);

  const num = (v, digits = 2) =>
    v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  const pct = (v) => (v === null || v === undefined ? "–" : num(v, 2) + " %");
  const pad = (n) => String(n).padStart(2, "0");
  function when(ms) {
    if (!ms) return "–";
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  function ago(ms) {
    if (!ms) return "–";
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }
  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 120000) return (ms / 1000).toFixed(1) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }
  const pill = (status) => h("span", { class: "pill " + status }, status);
  const card = (label, value, id) => h("div", { class: "card", id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  const th = (label, numeric) => h("th", { class: numeric ? "num" : null }, label);
  const td = (value, numeric) => h("td", { class: numeric ? "num" : null }, value);
  function table(id, headers, rows, empty) {
    if (!rows.length) return h("p", { class: "muted", id }, empty);
    return h("div", { class: "scroll" }, h("table", { id }, h("thead", {}, h("tr", {}, headers)), h("tbody", {}, rows)));
  }
  function flash(text, isError) {
    const el = document.getElementById("flash");
    if (!el) return;
    el.replaceChildren(h("div", { class: "flash" + (isError ? " error" : "") }, text));
  }
  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.className = "status" + (isError ? " error" : "");
  }

  // ---- charts --------------------------------------------------------

  function chartDrawn(u) {
    if (u.root.dataset.drawn) return;
    u.root.dataset.drawn = "1";
    probe.chartsDrawn += 1;
    if (probe.firstChartMs === null) probe.firstChartMs = Math.round(performance.now());
  }

  function chart(container, opts, data) {
    const width = Math.max(300, container.clientWidth - 16);
    const u = new uPlot(
      Object.assign({ width, height: opts.height || 220, hooks: {} }, opts, {
        hooks: Object.assign({}, opts.hooks, { draw: [chartDrawn].concat((opts.hooks && opts.hooks.draw) || []) }),
      }),
      data,
      container,
    );
    view.charts.push({ u, container });
    return u;
  }

  window.addEventListener("resize", () => {
    for (const { u, container } of view.charts) u.setSize({ width: Math.max(300, container.clientWidth - 16), height: u.height });
  });

  const timeAxis = { stroke: "#66707c", grid: { stroke: "#eef0f3" } };
  const valueAxis = (label, fmt) => ({ label, stroke: "#66707c", grid: { stroke: "#eef0f3" }, size: 60, values: fmt ? (u, ticks) => ticks.map(fmt) : undefined });

  // ---- routing -------------------------------------------------------

  function leave() {
    // A message belongs to the page it was given on.
    document.getElementById("flash")?.remove();
    view.alive = false;
    clearTimeout(view.timer);
    for (const { u } of view.charts) u.destroy();
    view = { timer: null, charts: [], alive: true };
  }

  function route() {
    leave();
    const hash = location.hash.replace(/^#\/?/, "");
    const [page, id] = hash.split("/");
    if (page === "backtests" && id) return run((c) => backtestPage(id, c), "backtest");
    if (page === "optimizations" && id) return run((c) => optimizationPage(id, c), "optimization");
    if (page === "backtests") return run((c) => listPage("backtests", c), "backtests");
    if (page === "optimizations") return run((c) => listPage("optimizations", c), "optimizations");
    return run(overview, "overview");
  }

  // Runs a view's refresh loop: again every REFRESH_MS while it asks to.
  function run(refresh, name) {
    probe.view = name;
    const current = view;
    const tick = async () => {
      if (!current.alive) return;
      let again = false;
      try {
        again = await refresh(current);
        setStatus("updated " + when(Date.now()) + " UTC");
      } catch (e) {
        if (e instanceof AuthError) return login(token() ? "That token was refused." : null);
        setStatus(e.message, true);
        again = true;
      }
      if (again && current.alive) current.timer = setTimeout(tick, document.hidden ? REFRESH_MS * 5 : REFRESH_MS);
    };
    tick();
  }

  function login(message) {
    leave();
    signOut.hidden = true;
    probe.view = "login";
    const input = h("input", { type: "password", id: "token-input", autocomplete: "current-password", required: true });
    main.replaceChildren(
      h(
        "form",
        {
          class: "login",
          id: "login",
          onsubmit: (e) => {
            e.preventDefault();
            sessionStorage.setItem(TOKEN_KEY, input.value.trim());
            route();
          },
        },
        h("h1", {}, "API token"),
        h("p", { class: "muted" }, "This server has an API token (STRATBOX_API_TOKEN). It is kept for this tab only."),
        message ? h("p", { class: "flash error" }, message) : null,
        input,
        h("button", { type: "submit", id: "token-save" }, "Open the dashboard"),
      ),
    );
    input.focus();
  }

  signOut.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    login(null);
  });

  // ---- overview ------------------------------------------------------

  async function overview(current) {
    const refresh = () => overview(current).catch(() => {});
    const [state, history, dlq, backtests, optimizations, schedules] = await Promise.all([
      get("queue/state"),
      get("queue/history?minutes=60"),
      get("queue/dlq?count=50"),
      get("backtests?limit=10"),
      get("optimizations?limit=10"),
      get("schedules"),
    ]);
    if (!current.alive) return false;
    signOut.hidden = !token();
    if (!current.built) {
      current.built = true;
      current.throughputBox = h("div", { class: "chart", id: "throughput-chart" }, h("div", { class: "title" }, "Throughput per minute, last hour"));
      current.latencyBox = h("div", { class: "chart", id: "latency-chart" }, h("div", { class: "title" }, "Mean wait and run time, last hour"));
      current.cards = h("div", { class: "cards", id: "queue-cards" });
      current.rest = h("div");
      main.replaceChildren(
        h("h1", {}, "Queue"),
        current.cards,
        h("h2", {}, "Last hour"),
        h("div", { class: "charts" }, current.throughputBox, current.latencyBox),
        h("div", { id: "flash" }),
        current.rest,
      );
    }
    const c = state.counters;
    const waiting = state.waiting;
    const pending = Object.values(state.pending).reduce((a, b) => a + b, 0);
    current.cards.replaceChildren(
      card("Waiting high", waiting.high ?? 0, "waiting-high"),
      card("Waiting normal", waiting.normal ?? 0, "waiting-normal"),
      card("Waiting low", waiting.low ?? 0, "waiting-low"),
      card("Running", pending),
      card("Retry backoff", state.delayed),
      card("Dead letters", state.dlq, "dlq-count"),
      card("Oldest wait", duration(state.oldest_wait_ms)),
      card("Workers", state.workers.length, "worker-count"),
      card("Completed", c.tasks_completed),
      card("Failed", c.tasks_failed),
      card("Timed out", c.tasks_timeout),
    );

    const xs = history.minutes.map((m) => m.at_ms / 1000);
    const series = (key) => history.minutes.map((m) => m[key] ?? null);
    const throughput = [xs, series("completed"), series("failed")];
    const latency = [xs, series("mean_wait_ms"), series("mean_run_ms")];
    if (!current.throughput) {
      const bars = uPlot.paths.bars({ size: [0.7, 40] });
      current.throughput = chart(
        current.throughputBox,
        {
          // Half a minute of room each side, so the edge bars show whole.
          scales: { x: { time: true, range: (u, min, max) => [min - 30, max + 30] } },
          axes: [timeAxis, valueAxis("tasks")],
          series: [{}, { label: "completed", stroke: "#15803d", fill: "rgba(21,128,61,.35)", paths: bars }, { label: "failed", stroke: "#b91c1c", fill: "rgba(185,28,28,.45)", paths: bars }],
        },
        throughput,
      );
      current.latency = chart(
        current.latencyBox,
        {
          scales: { x: { time: true } },
          axes: [timeAxis, valueAxis("ms")],
          series: [{}, { label: "wait", stroke: "#b45309", width: 2, spanGaps: true, points: { show: true } }, { label: "run", stroke: "#2563eb", width: 2, spanGaps: true, points: { show: true } }],
        },
        latency,
      );
    } else {
      current.throughput.setData(throughput);
      current.latency.setData(latency);
    }

    current.rest.replaceChildren(
      h("h2", {}, "Workers"),
      workersTable(state.workers),
      h("h2", {}, `Dead letters (${state.dlq})`),
      dlqSection(dlq.entries, current),
      h("h2", {}, h("a", { href: "#/backtests" }, "Backtests")),
      backtestsTable(backtests.backtests, refresh),
      h("h2", {}, h("a", { href: "#/optimizations" }, "Optimizations")),
      optimizationsTable(optimizations.optimizations, refresh),
      h("h2", {}, "Schedules"),
      schedulesTable(schedules.schedules, refresh),
    );
    return true;
  }

  // Runs a mutating request from a button, then redraws the view.
  async function act(button, method, path, done, redraw) {
    button.disabled = true;
    try {
      const r = await request(method, path);
      flash(done(r));
    } catch (e) {
      if (e instanceof AuthError) return login("That token was refused.");
      flash(`${button.textContent} failed: ${e.message}`, true);
    }
    if (redraw) redraw();
  }

  function actionButton(label, cls, dataset, onclick) {
    const b = h("button", { type: "button", class: cls, dataset }, label);
    b.addEventListener("click", () => onclick(b));
    return b;
  }

  function schedulesTable(list, redraw) {
    const rows = list.map((s) => {
      const last = s.submits === "optimization" ? s.last_optimization_id : s.last_backtest_id;
      const lastLink = last ? h("a", { href: `#/${s.submits === "optimization" ? "optimizations" : "backtests"}/${last}` }, "#" + last) : "–";
      const verb = s.paused ? "resume" : "pause";
      const toggle = actionButton(s.paused ? "Resume" : "Pause", "schedule-toggle", { scheduleId: s.schedule_id }, (b) =>
        act(b, "POST", `schedules/${s.schedule_id}/${verb}`, () => `Schedule ${s.schedule_id} ${s.paused ? "resumed" : "paused"}.`, redraw),
      );
      return h(
        "tr",
        { dataset: { scheduleId: s.schedule_id } },
        td(s.schedule_id, true),
        td(s.name || "–"),
        td(s.submits),
        td(`${s.symbol} ${s.timeframe}`),
        td(s.cron ? "cron " + s.cron : `every ${s.every_secs} s`),
        td(s.paused ? pill("paused") : pill("active")),
        td(s.next_run || "–"),
        td(s.last_run || "–"),
        td(s.runs, true),
        td(lastLink),
        h("td", { class: "wrap" }, s.last_error || ""),
        h("td", {}, toggle),
      );
    });
    return table("schedules", [th("id", true), th("name"), th("submits"), th("market"), th("when (UTC)"), th("state"), th("next run"), th("last run"), th("runs", true), th("last"), th("last error"), th("")], rows, "No schedule. POST /api/v1/schedules creates one.");
  }

  function workersTable(workers) {
    const rows = workers.map((w) =>
      h(
        "tr",
        {},
        td(w.consumer),
        td(w.pid ?? "–", true),
        td(w.slots ?? "–", true),
        td(w.running.length ? w.running.join(", ") : h("span", { class: "muted" }, "idle")),
        td(ago(w.started_at_ms)),
        td(ago(w.seen_at_ms)),
        td(w.version ?? "–"),
      ),
    );
    return table("workers", [th("consumer"), th("pid", true), th("slots", true), th("running"), th("started"), th("heartbeat"), th("version")], rows, "No live worker.");
  }

  function dlqSection(entries, current) {
    const requeue = async (entryId, button) => {
      button.disabled = true;
      try {
        const r = await request("POST", "queue/dlq/requeue", entryId ? { entry_id: entryId } : {});
        flash(`Requeued ${r.requeued} task${r.requeued === 1 ? "" : "s"}.`);
      } catch (e) {
        if (e instanceof AuthError) return login("That token was refused.");
        flash("Requeue failed: " + e.message, true);
      }
      overview(current).catch(() => {});
    };
    const rows = entries.map((e) => {
      const f = e.fields;
      const button = h("button", { type: "button", class: "requeue", dataset: { entryId: e.entry_id, taskId: f.task_id || "" } }, "Requeue");
      button.addEventListener("click", () => requeue(e.entry_id, button));
      return h(
        "tr",
        { dataset: { taskId: f.task_id || "" } },
        td(f.task_id || "–"),
        td(f.kind || "–"),
        td(f.reason || "–"),
        td(f.error_kind || "–"),
        td(f.attempts || "–", true),
        td(f.worker || "–"),
        td(when(Number(f.failed_at_ms))),
        h("td", { class: "wrap", title: f.error || "" }, f.error || ""),
        h("td", {}, button),
      );
    });
    if (!rows.length) return h("p", { class: "muted", id: "dlq" }, "The dead-letter stream is empty.");
    const all = h("button", { type: "button", id: "requeue-all" }, "Requeue all");
    all.addEventListener("click", () => requeue(null, all));
    // Two clicks, so a stray one cannot purge: no modal dialog needed.
    const purge = h("button", { type: "button", class: "danger", id: "purge-dlq" }, "Purge…");
    purge.addEventListener("click", async () => {
      if (!purge.classList.contains("armed")) {
        purge.classList.add("armed");
        purge.textContent = "Click again to purge every entry";
        return;
      }
      purge.disabled = true;
      try {
        const r = await request("DELETE", "queue/dlq");
        flash(`Purged ${r.purged} entr${r.purged === 1 ? "y" : "ies"}.`);
      } catch (e) {
        flash("Purge failed: " + e.message, true);
      }
      overview(current).catch(() => {});
    });
    return h(
      "div",
      {},
      h("div", { class: "toolbar" }, all, purge),
      table("dlq", [th("task"), th("kind"), th("reason"), th("error kind"), th("attempts", true), th("last worker"), th("failed at (UTC)"), th("error"), th("")], rows, ""),
    );
  }

  function progressCell(status, done) {
    if (status === "completed") return td("100 %", true);
    return h("td", { class: "num" }, h("progress", { max: 1, value: done }), " ", Math.round(done * 100) + " %");
  }

  const live = (status) => status === "queued" || status === "running";

  function backtestsTable(list, redraw) {
    const rows = list.map((b) =>
      h(
        "tr",
        { dataset: { backtestId: b.backtest_id } },
        td(h("a", { href: "#/backtests/" + b.backtest_id }, "#" + b.backtest_id)),
        td(b.name || "–"),
        td(`${b.symbol} ${b.timeframe}`),
        td(pill(b.status)),
        progressCell(b.status, b.progress),
        td(pct(b.total_return_pct), true),
        td(b.num_trades ?? "–", true),
        td(when(b.created_at_ms)),
        h("td", { class: "wrap" }, b.error ? b.error.message || b.error.code : ""),
        h(
          "td",
          {},
          live(b.status) && b.task_id
            ? actionButton("Cancel", "cancel-task", { taskId: b.task_id }, (btn) => act(btn, "DELETE", "queue/tasks/" + encodeURIComponent(b.task_id), (r) => `Task ${r.task_id}: ${r.status}.`, redraw))
            : null,
        ),
      ),
    );
    return table("backtests", [th("id"), th("name"), th("market"), th("status"), th("progress", true), th("return", true), th("trades", true), th("created (UTC)"), th("error"), th("")], rows, "No backtest yet.");
  }

  function optimizationsTable(list, redraw) {
    const rows = list.map((o) => {
      const best = o.top && o.top[0];
      const done = o.progress.total ? o.progress.done / o.progress.total : 0;
      return h(
        "tr",
        {},
        td(h("a", { href: "#/optimizations/" + o.optimization_id }, "#" + o.optimization_id)),
        td(o.name || "–"),
        td(`${o.symbol} ${o.timeframe}`),
        td(pill(o.status)),
        progressCell(o.status, done),
        td(o.combinations, true),
        td(`${o.objective.direction} ${o.objective.metric}`),
        td(best ? num(best.score, 4) : "–", true),
        td(when(o.created_at_ms)),
        h(
          "td",
          {},
          live(o.status)
            ? actionButton("Cancel", "cancel-optimization", { optimizationId: o.optimization_id }, (btn) =>
                act(btn, "POST", "optimizations/" + o.optimization_id + "/cancel", (r) => `Optimization ${r.optimization_id}: ${r.status}.`, redraw),
              )
            : null,
        ),
      );
    });
    return table("optimizations", [th("id"), th("name"), th("market"), th("status"), th("chunks", true), th("combinations", true), th("objective"), th("best", true), th("created (UTC)"), th("")], rows, "No optimization yet.");
  }

  async function listPage(kind, current) {
    const data = await get(kind + "?limit=200");
    if (!current.alive) return false;
    const isBacktests = kind === "backtests";
    const redraw = () => listPage(kind, current).catch(() => {});
    // The same flash box across redraws, so a button's message stays.
    const flashBox = document.getElementById("flash") || h("div", { id: "flash" });
    main.replaceChildren(
      h("h1", {}, isBacktests ? "Backtests" : "Optimizations"),
      flashBox,
      isBacktests ? backtestsTable(data.backtests, redraw) : optimizationsTable(data.optimizations, redraw),
    );
    const list = isBacktests ? data.backtests : data.optimizations;
    return list.some((x) => x.status === "queued" || x.status === "running");
  }

  // ---- backtest page -------------------------------------------------

  // Equity at time t on the drawn curve (it may be downsampled).
  function equityAt(xs, ys, t) {
    let lo = 0;
    let hi = xs.length - 1;
    if (t <= xs[0]) return ys[0];
    if (t >= xs[hi]) return ys[hi];
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] <= t) lo = mid;
      else hi = mid;
    }
    const w = (t - xs[lo]) / (xs[hi] - xs[lo] || 1);
    return ys[lo] + w * (ys[hi] - ys[lo]);
  }

  // A colour no other marker or line uses, so a liquidation stands out.
  const LIQUIDATION = "#c026d3";

  // Draws the trade markers; a liquidated exit is a diamond, and its place
  // (CSS px in the plot area) goes to `spots` for the tooltip and the test.
  function tradeMarkers(trades, spots) {
    return (u) => {
      const ctx = u.ctx;
      const xs = u.data[0];
      const ys = u.data[1];
      const size = 5 * devicePixelRatio;
      spots.length = 0;
      ctx.save();
      ctx.beginPath();
      ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
      ctx.clip();
      for (const t of trades) {
        for (const [ts, isEntry] of [[t.entry_ts, true], [t.exit_ts, false]]) {
          const x = u.valToPos(ts, "x", true);
          const y = u.valToPos(equityAt(xs, ys, ts), "y", true);
          ctx.beginPath();
          if (isEntry) {
            // Triangle up for a long entry, down for a short one.
            const dir = t.side === "long" ? -1 : 1;
            ctx.moveTo(x, y + dir * size * 1.6);
            ctx.lineTo(x - size, y - dir * size * 0.4);
            ctx.lineTo(x + size, y - dir * size * 0.4);
            ctx.closePath();
            ctx.fillStyle = t.side === "long" ? "#15803d" : "#b91c1c";
          } else if (t.exit_reason === "liquidation") {
            const r = size * 1.6;
            ctx.moveTo(x, y - r);
            ctx.lineTo(x + r, y);
            ctx.lineTo(x, y + r);
            ctx.lineTo(x - r, y);
            ctx.closePath();
            ctx.fillStyle = LIQUIDATION;
            spots.push({ trade: t, left: u.valToPos(ts, "x"), top: u.valToPos(equityAt(xs, ys, ts), "y") });
          } else {
            ctx.arc(x, y, size * 0.7, 0, 2 * Math.PI);
            ctx.fillStyle = t.pnl >= 0 ? "#1d4ed8" : "#7c2d12";
          }
          ctx.fill();
        }
      }
      ctx.restore();
      probe.liquidationMarkers = spots.map(({ left, top }) => ({ left, top }));
    };
  }

  // Names the liquidation under the cursor, in a tip inside uPlot's overlay.
  function liquidationTip(spots) {
    const tip = h("div", { class: "tip", id: "liquidation-tip", hidden: true });
    return {
      ready: [(u) => u.over.append(tip)],
      setCursor: [
        (u) => {
          const { left, top } = u.cursor;
          const near = spots.find((s) => Math.abs(s.left - left) <= 10 && Math.abs(s.top - top) <= 10);
          tip.hidden = !near;
          if (!near) return;
          const t = near.trade;
          tip.textContent = `liquidation · ${t.side} closed ${when(t.exit_ts * 1000)} UTC at ${num(t.exit_price, 4)} · liq. price ${num(t.liquidation_price, 4)}`;
          tip.style.left = near.left + 12 + "px";
          tip.style.top = Math.max(0, near.top - 30) + "px";
        },
      ],
    };
  }

  // Perpetual reports only (spot reports have none of these keys). Each
  // figure keeps its exact value in data-value and the tooltip.
  function perpSection(r) {
    const exact = (label, v, id) => {
      const c = card(label, num(v), id);
      c.dataset.value = String(v);
      c.title = `${label}: ${v}`;
      return c;
    };
    const word = (label, v, id) => {
      const c = card(label, v, id);
      c.lastChild.classList.add("word");
      return c;
    };
    const rejected = Object.entries(r.rejected_orders || {});
    const total = rejected.reduce((sum, [, n]) => sum + n, 0);
    return h(
      "section",
      { id: "perp" },
      h("h2", {}, "Perpetual futures"),
      h(
        "div",
        { class: "cards", id: "perp-cards" },
        word("Market", r.market, "perp-market"),
        word("Funding source", r.funding_source, "perp-funding-source"),
        card("Liquidations", r.liquidations, "perp-liquidations"),
        exact("Funding paid", r.funding_paid, "perp-funding-paid"),
        exact("Maker fees", r.fees_maker, "perp-fees-maker"),
        exact("Taker fees", r.fees_taker, "perp-fees-taker"),
        card("Rejected orders", total, "perp-rejected"),
        rejected.map(([reason, n]) => {
          const c = card("Rejected: " + reason.replaceAll("_", " "), n);
          c.dataset.reason = reason;
          return c;
        }),
      ),
    );
  }

  // A portfolio report's symbols, one row each (one-symbol reports have
  // no `symbols` key).
  function symbolsSection(r) {
    const rows = r.symbols.map((s) =>
      h(
        "tr",
        { "data-symbol": s.symbol },
        td(s.symbol),
        td(s.bars, true),
        td(s.num_trades, true),
        td(pct(s.win_rate_pct), true),
        h("td", { class: "num " + (s.contribution_pct >= 0 ? "swatch-up" : "swatch-down") }, pct(s.contribution_pct)),
        td(num(s.realized_pnl), true),
        td(num(s.unrealized_pnl), true),
        td(num(s.fees_paid), true),
        td(pct(s.exposure_pct), true),
        td(pct(s.buy_and_hold_return_pct), true),
        s.liquidations === undefined ? null : td(s.liquidations, true),
        td(s.open_position ? `${s.open_position.side} ${num(s.open_position.qty, 6)}` : "–"),
      ),
    );
    const perp = r.symbols.some((s) => s.liquidations !== undefined);
    const headers = [th("symbol"), th("bars", true), th("trades", true), th("win rate", true), th("contribution", true), th("realized", true), th("unrealized", true), th("fees", true), th("exposure", true), th("buy & hold", true), perp ? th("liquidations", true) : null, th("open")];
    return h("section", { id: "symbols" }, h("h2", {}, `Symbols (${r.symbols.length})`), table("symbols", headers, rows, "No symbol."));
  }

  // What the strategy logged in its current run; nothing when it was quiet.
  function logSection(log) {
    if (!log.lines.length && !log.dropped) return [];
    const lines = log.lines.map((l) => h("div", { class: "log-line log-" + l.level }, `[${l.level}] ${l.message}`));
    if (log.dropped) lines.push(h("div", { class: "muted" }, `(${log.dropped} more lines dropped)`));
    return [h("h2", {}, `Strategy log (${log.lines.length})`), h("div", { class: "log", id: "strategy-log" }, ...lines)];
  }

  async function backtestPage(id, current) {
    const [b, log] = await Promise.all([
      get("backtests/" + encodeURIComponent(id)),
      get("backtests/" + encodeURIComponent(id) + "/log"),
    ]);
    // The language it was written in: the same strategy in Rust, Python
    // and JavaScript gives the same report, so only the record tells.
    const runtime = b.strategy_id == null ? null : await get("strategies/" + b.strategy_id).then((s) => s.runtime, () => null);
    if (!current.alive) return false;
    const head = h("h1", {}, `Backtest #${b.backtest_id} `, pill(b.status));
    if (!b.report) {
      main.replaceChildren(
        head,
        b.error ? h("p", { class: "flash error" }, `${b.error.code}: ${b.error.message}`) : h("p", {}, h("progress", { max: 1, value: b.progress }), ` ${Math.round(b.progress * 100)} %`),
        h("p", { class: "muted" }, "Task " + (b.task_id || "–")),
        ...logSection(log),
      );
      return b.status === "queued" || b.status === "running";
    }
    const r = b.report;
    const perp = r.market !== undefined;
    const liquidationSpots = [];
    const equityBox = h("div", { class: "chart", id: "equity-chart" }, h("div", { class: "title" }, "Equity (marked to close)"));
    const ddBox = h("div", { class: "chart", id: "drawdown-chart" }, h("div", { class: "title" }, "Drawdown"));
    const language = { compiled: "compiled", python: "Python", javascript: "JavaScript" }[runtime];
    const strategy = (r.strategy ? `${r.strategy.name} ${r.strategy.version}` : "strategy") + (language ? ` [${language}]` : "");
    const params = r.strategy ? Object.entries(r.strategy.params).map(([k, v]) => `${k}=${v}`).join(", ") : "";
    main.replaceChildren(
      head,
      h("p", { class: "muted" }, `${strategy} (${params}) · ${r.bars} bars · ${when(r.start_ts * 1000)} to ${when(r.end_ts * 1000)} UTC · task ${b.task_id || "–"}`),
      h(
        "div",
        { class: "cards", id: "report-cards" },
        card("Final equity", num(r.final_equity)),
        card("Return", pct(r.total_return_pct)),
        card("Buy & hold", pct(r.buy_and_hold_return_pct)),
        card("Max drawdown", pct(r.max_drawdown_pct)),
        card("Sharpe", num(r.sharpe, 3)),
        card("Sortino", num(r.sortino, 3)),
        card("Trades", r.num_trades),
        card("Win rate", pct(r.win_rate_pct)),
        card("Profit factor", num(r.profit_factor, 3)),
        card("SQN", num(r.sqn, 2)),
        card("Expectancy", num(r.expectancy)),
        card("Kelly", num(r.kelly, 3)),
        card("Volatility / yr", pct(r.annual_volatility_pct)),
        card("Avg drawdown", pct(r.avg_drawdown_pct)),
        card("Exposure", pct(r.exposure_pct)),
        card("Fees", num(r.fees_paid)),
        card("Fuel", num(r.fuel_used, 0)),
      ),
      // replaceChildren would print a null.
      ...(perp ? [perpSection(r)] : []),
      ...(r.symbols ? [symbolsSection(r)] : []),
      h("h2", {}, "Equity and drawdown"),
      equityBox,
      h(
        "p",
        { class: "legend-note" },
        h("span", { class: "swatch-up" }, "▲"),
        " long entry  ",
        h("span", { class: "swatch-down" }, "▼"),
        " short entry  ● exit (blue: profit, brown: loss)",
        perp ? ["  ", h("span", { class: "swatch-liquidation" }, "◆"), " liquidation"] : null,
      ),
      ddBox,
      h("h2", {}, `Trades (${r.trades.length})`),
      tradesTable(r.trades, perp),
      ...logSection(log),
    );
    const xs = r.equity_curve.map((p) => p.ts);
    const eq = r.equity_curve.map((p) => p.equity);
    let peak = -Infinity;
    const dd = eq.map((v) => {
      peak = Math.max(peak, v);
      return peak > 0 ? (v / peak - 1) * 100 : 0;
    });
    const sync = uPlot.sync("backtest");
    const cursor = { sync: { key: sync.key } };
    chart(
      equityBox,
      {
        height: 280,
        cursor,
        scales: { x: { time: true } },
        axes: [timeAxis, valueAxis("equity", (v) => num(v, 0))],
        series: [{}, { label: "equity", stroke: "#2563eb", width: 1.5, value: (u, v) => num(v) }],
        hooks: Object.assign({ draw: [tradeMarkers(r.trades, liquidationSpots)] }, perp ? liquidationTip(liquidationSpots) : {}),
      },
      [xs, eq],
    );
    chart(
      ddBox,
      {
        height: 160,
        cursor,
        scales: { x: { time: true }, y: { range: (u, min) => [Math.min(min, -1), 0] } },
        axes: [timeAxis, valueAxis("%", (v) => num(v, 1))],
        series: [{}, { label: "drawdown %", stroke: "#b91c1c", fill: "rgba(185,28,28,.18)", value: (u, v) => (v === null ? "–" : num(v) + " %") }],
      },
      [xs, dd],
    );
    return false;
  }

  function tradesTable(trades, perp) {
    const shown = trades.slice(0, 500);
    const rows = shown.map((t, i) =>
      h(
        "tr",
        { class: t.exit_reason === "liquidation" ? "liquidated" : null },
        td(i + 1, true),
        t.symbol === undefined ? null : td(t.symbol),
        td(t.side),
        td(when(t.entry_ts * 1000)),
        td(when(t.exit_ts * 1000)),
        td(num(t.qty, 6), true),
        td(num(t.entry_price, 4), true),
        td(num(t.exit_price, 4), true),
        h("td", { class: "num " + (t.pnl >= 0 ? "swatch-up" : "swatch-down") }, num(t.pnl)),
        td(pct(t.return_pct), true),
        td(num(t.fees), true),
        perp ? [td(num(t.funding), true), td(num(t.liquidation_price, 4), true)] : null,
        td(`${t.entry_reason} → ${t.exit_reason}`),
      ),
    );
    const note = trades.length > shown.length ? h("p", { class: "muted" }, `First ${shown.length} of ${trades.length}; the API has them all.`) : null;
    const perpHeaders = perp ? [th("funding", true), th("liq. price", true)] : null;
    const symbolHeader = trades.some((t) => t.symbol !== undefined) ? th("symbol") : null;
    return h("div", {}, table("trades", [th("#", true), symbolHeader, th("side"), th("entry (UTC)"), th("exit (UTC)"), th("qty", true), th("entry", true), th("exit", true), th("pnl", true), th("return", true), th("fees", true), perpHeaders, th("fills")], rows, "No trade."), note);
  }

  // ---- optimization page ---------------------------------------------

  // RFC 4180, as the server writes it.
  function parseCsv(text) {
    const rows = [];
    let row = [];
    let field = "";
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (quoted) {
        if (ch === '"' && text[i + 1] === '"') {
          field += '"';
          i++;
        } else if (ch === '"') quoted = false;
        else field += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ",") {
        row.push(field);
        field = "";
      } else if (ch === "\n") {
        row.push(field);
        rows.push(row);
        row = [];
        field = "";
      } else if (ch !== "\r") field += ch;
    }
    if (field || row.length) {
      row.push(field);
      rows.push(row);
    }
    const [header, ...body] = rows;
    return body.map((r) => Object.fromEntries(header.map((k, i) => [k, r[i]])));
  }

  async function optimizationPage(id, current) {
    const o = await get(`optimizations/${encodeURIComponent(id)}?top=100`);
    if (!current.alive) return false;
    const head = h("h1", {}, `Optimization #${o.optimization_id} `, pill(o.status));
    const meta = h("p", { class: "muted" }, `${o.name || "strategy " + (o.strategy_id ?? "")} · ${o.symbol} ${o.timeframe} · ${o.combinations} combinations · ${o.objective.direction} ${o.objective.metric}, at least ${o.objective.min_trades} trades · searched: ${o.search_params.join(", ")}`);
    if (o.status !== "completed") {
      const done = o.progress.total ? o.progress.done / o.progress.total : 0;
      main.replaceChildren(
        head,
        meta,
        o.error ? h("p", { class: "flash error" }, `${o.error.code}: ${o.error.message}`) : h("p", {}, h("progress", { max: 1, value: done }), ` ${o.progress.done} of ${o.progress.total} chunks`),
        ...(o.trials ? [trialsSection(o.trials, o.objective)] : []),
      );
      return o.status === "queued" || o.status === "running";
    }
    const csv = await get(`optimizations/${encodeURIComponent(id)}/table.csv`);
    if (!current.alive) return false;
    const rows = parseCsv(csv);
    const download = h("button", { type: "button", id: "download-csv" }, "Download the table (CSV)");
    download.addEventListener("click", () => {
      const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
      h("a", { href: url, download: `optimization-${o.optimization_id}.csv` }).click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    });
    const heat = h("div", { id: "heatmap-section" });
    const wf = o.walk_forward;
    const walk = wf ? walkForwardSection(wf, o.search_params) : null;
    // replaceChildren would print a null.
    const parts = [
      o.trials ? trialsSection(o.trials, o.objective) : null,
      walk ? walk.section : null,
      // A walk-forward's table is its last window's (the params one would trade next).
      wf ? h("h2", {}, "Last window's search") : null,
    ].filter((p) => p !== null);
    main.replaceChildren(
      head,
      meta,
      ...parts,
      h("div", { class: "toolbar" }, download),
      heat,
      h("h2", {}, "Ranking"),
      rankingTable(rows, o.search_params),
    );
    if (walk) walk.draw();
    if (o.search_params.length >= 2) heatmap(heat, rows, o.search_params, o.objective);
    return false;
  }

  // A Bayesian search's trials so far and the best of them (the record
  // moves a round, one batch of trials, at a time).
  function trialsSection(trials, objective) {
    const best = trials.best;
    const params = best ? Object.entries(best.params).map(([k, v]) => `${k}=${v}`).join(", ") : "";
    return h(
      "div",
      { id: "trials-progress" },
      h("h2", {}, "Bayesian search"),
      h("p", {}, h("progress", { max: trials.total || 1, value: trials.done }), ` `, h("span", { id: "trials-done" }, `${trials.done} of ${trials.total} trials`)),
      h(
        "div",
        { class: "cards" },
        card("Trials done", trials.done, "trials-done-card"),
        card(`Best ${objective.metric} so far`, best ? num(best.score, 4) : "–", "trials-best-score"),
        h("div", { class: "card", id: "trials-best-params" }, h("div", { class: "label" }, "Its params"), h("div", { class: "value word" }, best ? params : "none ranked yet")),
      ),
    );
  }

  // app.css .band-0 and .band-1 (the table's keys).
  const BAND_COLORS = ["#fef3c7", "#e0f2fe"];

  // The stitched out-of-sample equity as one curve, each window's test
  // bars a band behind it, and a row per window.
  function walkForwardSection(wf, searched) {
    const s = wf.stitched;
    const box = h("div", { class: "chart", id: "walk-forward-chart" }, h("div", { class: "title" }, "Stitched out-of-sample equity"));
    const windows = wf.windows;
    // Band k runs from its first test bar to the next window's (the last to its own last bar).
    const bands = windows.map((w, k) => [w.test.start_ts, k + 1 < windows.length ? windows[k + 1].test.start_ts : w.test.end_ts]);
    const chosenParams = (w) => (w.chosen ? Object.entries(w.chosen.params).map(([k, v]) => `${k}=${v}`).join(", ") : "flat (nothing ranked)");
    const oos = (w, m) => (w.chosen ? w.chosen.out_of_sample[m] : null);
    const rows = windows.map((w) =>
      h(
        "tr",
        { dataset: { window: w.index } },
        td(h("span", { class: "band-key band-" + (w.index % 2) }, w.index + 1), true),
        td(`${when(w.train.start_ts * 1000)} – ${when(w.train.end_ts * 1000)}`),
        td(`${when(w.test.start_ts * 1000)} – ${when(w.test.end_ts * 1000)}`),
        td(chosenParams(w)),
        td(w.chosen ? num(w.chosen.score, 4) : "–", true),
        td(pct(oos(w, "total_return_pct")), true),
        td(num(oos(w, "sharpe"), 3), true),
        td(w.chosen ? num(oos(w, "num_trades"), 0) : "–", true),
        td(`${w.ranked} / ${w.combinations}`, true),
        td(num(w.deflated_sharpe, 3), true),
      ),
    );
    const section = h(
      "div",
      { id: "walk-forward" },
      h("h2", {}, `Walk-forward: ${windows.length} windows, train ${wf.train_bars} bars, test ${wf.test_bars}${wf.anchored ? ", anchored" : ", rolling"}`),
      h(
        "div",
        { class: "cards", id: "walk-forward-cards" },
        card("Efficiency", num(wf.efficiency, 3), "wf-efficiency"),
        card("OOS return / yr", pct(wf.out_of_sample_annualized_return_pct)),
        card("IS return / yr", pct(wf.in_sample_annualized_return_pct)),
        card("OOS return", pct(s.total_return_pct), "wf-return"),
        card("OOS final equity", num(s.final_equity)),
        card("OOS Sharpe", num(s.sharpe, 3)),
        card("OOS max drawdown", pct(s.max_drawdown_pct)),
        card("OOS trades", s.num_trades, "wf-trades"),
      ),
      box,
      h("p", { class: "legend-note" }, "Shaded: each window's test bars, traded with the params its train bars chose (numbered as in the table). Searched: " + searched.join(", ") + "."),
      table("wf-windows", [th("window", true), th("train (UTC)"), th("test (UTC)"), th("chosen"), th("in-sample score", true), th("OOS return", true), th("OOS Sharpe", true), th("OOS trades", true), th("ranked", true), th("deflated Sharpe", true)], rows, "No window."),
    );
    const draw = () => {
      const xs = s.equity_curve.map((p) => p.ts);
      const eq = s.equity_curve.map((p) => p.equity);
      chart(
        box,
        {
          height: 280,
          scales: { x: { time: true } },
          axes: [timeAxis, valueAxis("equity", (v) => num(v, 0))],
          series: [{}, { label: "stitched equity", stroke: "#2563eb", width: 1.5, value: (u, v) => num(v) }],
          hooks: { drawClear: [windowBands(bands)] },
        },
        [xs, eq],
      );
    };
    return { section, draw };
  }

  // Draws the bands under the grid and the curve, numbered at the top.
  function windowBands(bands) {
    return (u) => {
      const ctx = u.ctx;
      const { top, height } = u.bbox;
      ctx.save();
      ctx.font = `${Math.round(10 * devicePixelRatio)}px system-ui, sans-serif`;
      ctx.textAlign = "center";
      bands.forEach(([from, to], k) => {
        const x0 = Math.max(u.bbox.left, u.valToPos(from, "x", true));
        const x1 = Math.min(u.bbox.left + u.bbox.width, u.valToPos(to, "x", true));
        if (x1 <= x0) return;
        ctx.fillStyle = BAND_COLORS[k % 2];
        ctx.fillRect(x0, top, x1 - x0, height);
        if (x1 - x0 > 14 * devicePixelRatio) {
          ctx.fillStyle = "#66707c";
          ctx.fillText(String(k + 1), (x0 + x1) / 2, top + 12 * devicePixelRatio);
        }
      });
      ctx.restore();
      probe.windowBands = bands.length;
    };
  }

  function rankingTable(rows, params) {
    const hasOos = rows.length && "oos_total_return_pct" in rows[0];
    const metrics = ["total_return_pct", "sharpe", "max_drawdown_pct", "num_trades", "win_rate_pct"];
    const oos = hasOos ? ["oos_total_return_pct", "oos_sharpe"] : [];
    const shown = rows.slice(0, 100);
    const cell = (v) => td(v === "" || v === undefined ? "–" : num(Number(v), 3), true);
    const body = shown.map((r) => h("tr", {}, td(r.rank || "–", true), cell(r.score), params.map((p) => td(r[p], true)), metrics.map((m) => cell(r[m])), oos.map((m) => cell(r[m])), h("td", { class: "wrap" }, r.error || "")));
    return h(
      "div",
      {},
      table("ranking", [th("rank", true), th("score", true), params.map((p) => th(p, true)), metrics.map((m) => th(m, true)), oos.map((m) => th(m, true)), th("error")], body, "No row."),
      rows.length > shown.length ? h("p", { class: "muted" }, `First ${shown.length} of ${rows.length} rows; the CSV has them all.`) : null,
    );
  }

  // Score per (x, y) cell: the best over the other params, as ranked.
  function heatmap(section, rows, params, objective) {
    const pickX = h("select", { id: "heat-x" }, params.map((p, i) => h("option", { value: p, selected: i === 0 }, p)));
    const pickY = h("select", { id: "heat-y" }, params.map((p, i) => h("option", { value: p, selected: i === 1 }, p)));
    const canvas = h("canvas", { id: "heatmap" });
    const tip = h("div", { class: "tip", hidden: true });
    const scale = h("span", { class: "muted", id: "heat-scale" });
    const wrap = h("div", { class: "heatmap-wrap" }, canvas, tip);
    section.replaceChildren(h("h2", {}, `Heatmap of ${objective.metric}`), h("div", { class: "toolbar" }, "x ", pickX, " y ", pickY, h("span", { class: "muted" }, params.length > 2 ? " · best over the other params" : ""), scale), wrap);
    const better = objective.direction === "minimize" ? (a, b) => a < b : (a, b) => a > b;

    function draw() {
      const px = pickX.value;
      const py = pickY.value;
      const key = (v) => (Number.isNaN(Number(v)) ? v : Number(v));
      const sortVals = (vals) => [...new Set(vals)].sort((a, b) => (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b))));
      const xv = sortVals(rows.map((r) => key(r[px])));
      const yv = sortVals(rows.map((r) => key(r[py])));
      const cells = new Map();
      for (const r of rows) {
        if (r.score === "") continue;
        const s = Number(r.score);
        const k = key(r[px]) + "|" + key(r[py]);
        if (!cells.has(k) || better(s, cells.get(k))) cells.set(k, s);
      }
      const scores = [...cells.values()];
      const lo = Math.min(...scores);
      const hi = Math.max(...scores);
      const [worst, best] = objective.direction === "minimize" ? [hi, lo] : [lo, hi];
      scale.textContent = scores.length ? ` · red ${num(worst, 4)} (worst) to green ${num(best, 4)} (best); grey: no valid run` : " · no valid run";
      const dpr = devicePixelRatio || 1;
      const cssW = Math.max(320, wrap.clientWidth - 16);
      const left = 70;
      const bottom = 46;
      const cw = Math.max(6, Math.min(90, (cssW - left - 20) / xv.length));
      const ch = Math.max(6, Math.min(48, 480 / yv.length));
      const cssH = ch * yv.length + bottom + 10;
      canvas.width = cssW * dpr;
      canvas.height = cssH * dpr;
      canvas.style.height = cssH + "px";
      const ctx = canvas.getContext("2d");
      ctx.scale(dpr, dpr);
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = "#66707c";
      const geometry = { xv, yv, left, top: 6, cw, ch, px, py, cells };
      yv.forEach((y, j) => {
        const top = 6 + (yv.length - 1 - j) * ch;
        if (yv.length <= 25 || j % Math.ceil(yv.length / 25) === 0) {
          ctx.fillStyle = "#66707c";
          ctx.textAlign = "right";
          ctx.fillText(String(y), left - 6, top + ch / 2 + 4);
        }
        xv.forEach((x, i) => {
          const s = cells.get(x + "|" + y);
          const rank = hi === lo ? 1 : (s - lo) / (hi - lo);
          ctx.fillStyle = s === undefined ? "#e5e7eb" : color(objective.direction === "minimize" ? 1 - rank : rank);
          ctx.fillRect(left + i * cw, top, cw - 1, ch - 1);
        });
      });
      ctx.fillStyle = "#66707c";
      ctx.textAlign = "center";
      xv.forEach((x, i) => {
        if (xv.length <= 30 || i % Math.ceil(xv.length / 30) === 0) ctx.fillText(String(x), left + i * cw + cw / 2, 6 + yv.length * ch + 14);
      });
      ctx.fillText(px, left + (xv.length * cw) / 2, 6 + yv.length * ch + 34);
      ctx.save();
      ctx.translate(14, 6 + (yv.length * ch) / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(py, 0, 0);
      ctx.restore();
      canvas.dataset.cells = String(cells.size);
      canvas.dataset.drawn = "1";
      probe.chartsDrawn += 1;
      if (probe.firstChartMs === null) probe.firstChartMs = Math.round(performance.now());
      canvas.onmousemove = (e) => {
        const rect = canvas.getBoundingClientRect();
        const i = Math.floor((e.clientX - rect.left - geometry.left) / geometry.cw);
        const j = yv.length - 1 - Math.floor((e.clientY - rect.top - geometry.top) / geometry.ch);
        if (i < 0 || j < 0 || i >= xv.length || j >= yv.length) {
          tip.hidden = true;
          return;
        }
        const s = cells.get(xv[i] + "|" + yv[j]);
        tip.textContent = `${px}=${xv[i]}, ${py}=${yv[j]}: ${s === undefined ? "no valid run" : num(s, 4)}`;
        tip.hidden = false;
        tip.style.left = e.clientX - rect.left + 14 + "px";
        tip.style.top = e.clientY - rect.top + 10 + "px";
      };
      canvas.onmouseleave = () => (tip.hidden = true);
    }
    pickX.addEventListener("change", draw);
    pickY.addEventListener("change", draw);
    draw();
  }

  // Red (worst) through yellow to green (best).
  function color(t) {
    const stops = [
      [185, 28, 28],
      [234, 179, 8],
      [21, 128, 61],
    ];
    const x = Math.min(1, Math.max(0, t)) * 2;
    const i = Math.min(1, Math.floor(x));
    const f = x - i;
    const [a, b] = [stops[i], stops[i + 1]];
    return `rgb(${a.map((v, k) => Math.round(v + f * (b[k] - v))).join(",")})`;
  }

  window.addEventListener("hashchange", route);
  route();
})();
