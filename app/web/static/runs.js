// The researcher's workbench under the classifier: the runs table (key metrics, filters, pages), per-epoch
// curves of the chosen runs on one chart (uPlot, vendored under /static/vendor/uplot), and a job view with
// live curves, elapsed time, ETA, a cancel button and links to its run and model version. Uses app.js's
// helpers ($, el, api, setStatus), loaded before this file.
"use strict";

// Wrapped in a function: its names stay its own, apart from app.js's globals it uses.
(() => {
  const COLOURS = ["#1f6feb", "#d9534f", "#2da44e", "#8250df", "#bf8700", "#1b7c83", "#e16f24", "#57606a"];
  const RUN_METRICS = [["val.mean_auroc", "val AUROC"], ["val.loss", "val loss"], ["train.loss", "train loss"]];
  const LIVE = ["queued", "running", "cancelling"];
  const runsView = { page: { limit: 20, offset: 0 }, chosen: new Set(), series: new Map(), chart: null, seq: 0 };

  const fmt = (value, digits = 3) => (typeof value === "number" ? value.toFixed(digits) : "–");

  function clock(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? `${h} h ${m} min` : m ? `${m} min ${r} s` : `${r} s`;
  }

  // one uPlot chart of `lines` ({label, points: [{epoch, value}]}) on a shared epoch axis; it replaces the
  // previous chart in `target` and returns the new one
  function drawCurves(target, previous, lines, yLabel) {
    if (previous) previous.destroy();
    target.replaceChildren();
    if (!lines.length || !lines.some((l) => l.points.length)) {
      target.append(el("p", { class: "muted" }, "no per-epoch metrics yet"));
      return null;
    }
    const epochs = [...new Set(lines.flatMap((l) => l.points.map((p) => p.epoch)))].sort((a, b) => a - b);
    const data = [epochs, ...lines.map((l) => {
      const byEpoch = new Map(l.points.map((p) => [p.epoch, p.value]));
      return epochs.map((e) => (byEpoch.has(e) ? byEpoch.get(e) : null));
    })];
    const options = {
      width: Math.max(260, target.clientWidth || 600), height: 240,
      scales: { x: { time: false } },
      axes: [{ label: "epoch", incrs: [1, 2, 5, 10, 20, 50, 100] }, { label: yLabel }],
      series: [{ label: "epoch" }, ...lines.map((l, i) => ({
        label: l.label, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true,
        points: { show: true, size: 6 }, value: (u, v) => fmt(v, 4),
      }))],
    };
    const chart = new uPlot(options, data, target);
    target.dataset.series = String(lines.length);
    target.dataset.points = String(lines.reduce((n, l) => n + l.points.length, 0));
    return chart;
  }

  function seriesOf(run, key) {
    const [split, name] = key.split(".");
    return (run.metrics?.[split]?.[name] || []).filter((p) => typeof p.value === "number");
  }

  // -- runs table -------------------------------------------------------------------------------------

  function runsQuery() {
    const params = new URLSearchParams({ limit: runsView.page.limit, offset: runsView.page.offset });
    for (const field of ["model", "dataset", "status"]) {
      const value = $(`runs-${field}`).value.trim();
      if (value) params.set(field, value);
    }
    return params.toString();
  }

  const filtered = () => ["model", "dataset", "status"].some((f) => $(`runs-${f}`).value.trim());

  async function loadRuns() {
    const seq = ++runsView.seq;
    try {
      const body = await (await api(`/runs?${runsQuery()}`)).json();
      if (seq !== runsView.seq) return;  // a newer filter or page was asked for
      const rows = body.items.map((run) => {
        const box = el("input", { type: "checkbox", "data-run": String(run.id), "aria-label": `compare run ${run.id}` });
        box.checked = runsView.chosen.has(run.id);
        box.addEventListener("change", () => chooseRun(run.id, box.checked));
        const version = run.model_version
          ? el("a", { href: `/models/${encodeURIComponent(run.model_version.name)}/versions` },
               `${run.model_version.name}:${run.model_version.version}`)
          : "–";
        const k = run.key_metrics;
        return el("tr", { "data-run": String(run.id) },
          el("td", {}, box), el("td", {}, `#${run.id}`),
          el("td", {}, el("a", { href: `#job/${run.job_id}` }, `job ${run.job_id}`)),
          el("td", {}, run.model), el("td", {}, run.dataset), el("td", {}, el("span", { class: "badge" }, run.status)),
          el("td", { class: "num" }, String(run.epochs)), el("td", { class: "num" }, run.best_epoch ?? "–"),
          el("td", { class: "num" }, fmt(k["val.mean_auroc"])), el("td", { class: "num" }, fmt(k["val.loss"])),
          el("td", { class: "num" }, fmt(k["test.mean_auroc"])), el("td", {}, version));
      });
      $("runs-body").replaceChildren(...(rows.length ? rows
        : [el("tr", {}, el("td", { colspan: "12", class: "muted" }, filtered()
            ? "no runs match" : "no runs yet: a training job makes one (POST /training-jobs)"))]));
      const { offset, limit } = runsView.page;
      $("runs-count").textContent = body.total
        ? `${offset + 1}–${offset + body.items.length} of ${body.total}` : "0 runs";
      $("runs-prev").disabled = offset === 0;
      $("runs-next").disabled = offset + limit >= body.total;
      if (!runsView.chosen.size && body.items.length && offset === 0) {
        await chooseRun(body.items[0].id, true);  // show the newest run's curves from the start
      }
    } catch (error) {
      if (seq === runsView.seq) $("runs-body").replaceChildren(el("tr", {}, el("td", { colspan: "12", class: "error" }, error.message)));
    }
  }

  async function chooseRun(id, chosen) {
    if (chosen) runsView.chosen.add(id); else runsView.chosen.delete(id);
    const box = document.querySelector(`#runs-body input[data-run="${id}"]`);
    if (box) box.checked = chosen;
    if (chosen && !runsView.series.has(id)) {
      try {
        runsView.series.set(id, await (await api(`/runs/${id}`)).json());
      } catch (error) {
        runsView.chosen.delete(id);
        setStatus(`run ${id}: ${error.message}`, true);
      }
    }
    drawRuns();
  }

  function drawRuns() {
    const key = $("runs-metric").value;
    const label = RUN_METRICS.find(([k]) => k === key)?.[1] || key;
    const lines = [...runsView.chosen].sort((a, b) => a - b).filter((id) => runsView.series.has(id)).map((id) => {
      const run = runsView.series.get(id);
      return { label: `run ${id} ${run.model}`, points: seriesOf(run, key) };
    });
    runsView.chart = drawCurves($("runs-chart"), runsView.chart, lines, label);
  }

  // -- one job, live ----------------------------------------------------------------------------------

  const jobView = { id: null, timer: null, charts: [], seq: 0 };

  function closeJob() {
    jobView.id = null;
    clearTimeout(jobView.timer);
    $("job-panel").hidden = true;
    if (location.hash.startsWith("#job/")) history.replaceState(null, "", location.pathname + location.search);
  }

  async function openJob(id) {
    clearTimeout(jobView.timer);
    jobView.id = id;
    $("job-panel").hidden = false;
    $("job-title").textContent = `Training job #${id}`;
    await refreshJob();
    $("job-panel").scrollIntoView({ block: "nearest" });
  }

  async function refreshJob() {
    const id = jobView.id, seq = ++jobView.seq;
    if (id === null) return;
    try {
      const job = await (await api(`/training-jobs/${id}`)).json();
      const run = job.run_id ? await (await api(`/runs/${job.run_id}`)).json() : null;
      if (seq !== jobView.seq || id !== jobView.id) return;  // another job was opened meanwhile
      renderJob(job, run);
      if (LIVE.includes(job.status)) jobView.timer = setTimeout(refreshJob, 3000);
    } catch (error) {
      if (seq === jobView.seq) $("job-info").replaceChildren(el("p", { class: "error" }, error.message));
    }
  }

  function renderJob(job, run) {
    const p = job.progress || {};
    const started = job.started_at ? Date.parse(job.started_at) : null;
    const ended = job.finished_at ? Date.parse(job.finished_at) : Date.now();
    const elapsed = typeof p.elapsed_s === "number" ? p.elapsed_s : started ? (ended - started) / 1000 : null;
    const facts = [
      ["status", `${job.status}${job.stalled ? " (stalled: no heartbeat)" : ""}`],
      ["phase", p.phase],
      ["epoch", p.epochs ? `${p.epoch ?? 0} of ${p.epochs}` : null],
      ["progress", typeof p.fraction === "number" ? `${(100 * p.fraction).toFixed(0)}%` : null],
      ["elapsed", clock(elapsed)],
      ["ETA", LIVE.includes(job.status) ? (typeof p.eta_s === "number" ? clock(p.eta_s) : "unknown") : null],
      ["heartbeat", job.heartbeat_at ? new Date(job.heartbeat_at).toLocaleTimeString() : null],
      ["device", job.device],
      ["model", `${job.model} on ${job.dataset}`],
      ["error", job.error],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "");
    const links = [];
    if (job.run_id) links.push(el("a", { href: `#run/${job.run_id}`, "data-link": "run" }, `run #${job.run_id}`));
    if (job.model_version) {
      const v = job.model_version;
      links.push(el("a", { href: `/models/${encodeURIComponent(v.name)}/versions`, "data-link": "version" },
                    `model ${v.name}:${v.version}`));
    }
    $("job-info").replaceChildren(
      el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-fact": k }, String(v))])),
      el("p", { class: "links" }, ...links.flatMap((a, i) => (i ? [" · ", a] : [a]))));
    $("job-cancel").hidden = !LIVE.includes(job.status) || job.cancel_requested;
    for (const chart of jobView.charts) if (chart) chart.destroy();
    const loss = ["train", "val"].map((split) => ({ label: `${split} loss`, points: run ? seriesOf(run, `${split}.loss`) : [] }));
    const auroc = [{ label: "val AUROC", points: run ? seriesOf(run, "val.mean_auroc") : [] }];
    jobView.charts = [drawCurves($("job-loss"), null, loss, "loss"), drawCurves($("job-auroc"), null, auroc, "AUROC")];
  }

  async function cancelJob() {
    const id = jobView.id;
    try {
      await api(`/training-jobs/${id}/cancel`, { method: "POST" });
      setStatus(`Cancel requested for job ${id}.`);
    } catch (error) {
      setStatus(error.status === 401 || error.status === 403
        ? `Cancelling needs an API key with scope train: ${error.message}` : error.message, true);
    }
    await refreshJob();
  }

  // -- wiring -----------------------------------------------------------------------------------------

  function followHash() {
    const job = /^#job\/(\d+)$/.exec(location.hash);
    if (job) openJob(Number(job[1]));
    const run = /^#run\/(\d+)$/.exec(location.hash);
    if (run) {
      chooseRun(Number(run[1]), true);
      $("runs-panel").scrollIntoView({ block: "start" });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("runs-metric").replaceChildren(...RUN_METRICS.map(([k, label]) => el("option", { value: k }, label)));
    $("runs-metric").addEventListener("change", drawRuns);
    $("runs-filter").addEventListener("submit", (event) => {
      event.preventDefault();
      runsView.page.offset = 0;
      loadRuns();
    });
    $("runs-prev").addEventListener("click", () => { runsView.page.offset = Math.max(0, runsView.page.offset - runsView.page.limit); loadRuns(); });
    $("runs-next").addEventListener("click", () => { runsView.page.offset += runsView.page.limit; loadRuns(); });
    $("job-close").addEventListener("click", closeJob);
    $("job-cancel").addEventListener("click", cancelJob);
    // the side panel's jobs (drawn by app.js) open here
    $("jobs").addEventListener("click", (event) => {
      const item = event.target.closest("li[data-job]");
      if (item) location.hash = `#job/${item.dataset.job}`;
    });
    window.addEventListener("hashchange", followHash);
    loadRuns();
    followHash();
  });
})();
