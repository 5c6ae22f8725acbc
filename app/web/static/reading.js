// What a reader needs beside the bars (issue 17): the input check, each finding in words with the model's
// test AUROC for it, warnings, and the resolution the model sees. Loaded before app.js, which calls
// renderReading(result) with each /predict result and clearReading() when a new one starts.
"use strict";

function readingCell(tag, text, cls) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function clearReading() {
  const box = document.getElementById("reading");
  if (box) box.replaceChildren();
}

function renderReading(result) {
  const box = document.getElementById("reading");
  if (!box || !result.findings) return;
  const parts = [];
  if (result.warnings.length) {
    const list = document.createElement("ul");
    list.id = "warnings";
    list.className = "warnings";
    list.setAttribute("role", "alert");
    for (const text of result.warnings) list.append(readingCell("li", `⚠ ${text}`));
    parts.push(list);
  }
  const check = result.input_check;
  parts.push(readingCell("p", check.in_distribution
    ? `Input check: looks like a chest X-ray (score ${check.score.toFixed(2)}, threshold ${check.threshold.toFixed(2)}).`
    : `Input check: FLAGGED, may not be a chest X-ray (score ${check.score.toFixed(2)}, threshold ${check.threshold.toFixed(2)}).`,
    check.in_distribution ? "muted" : "flagged"));
  const views = {
    hflip: " Each probability averages the image and its mirror.",
    crops: " Each probability averages six views: the whole image and five crops of 90% of its side.",
  }[result.test_time_views] || "";
  parts.push(readingCell("p", `The model sees ${result.input_size[1]}×${result.input_size[0]} px; ` +
    (result.calibrated ? "probabilities are calibrated." : "probabilities are not calibrated.") + views, "muted"));
  const table = document.createElement("table");
  table.id = "findings";
  table.className = "findings";
  const head = document.createElement("tr");
  for (const h of ["Finding", "Probability", "Threshold", "Decision", "Test AUROC"]) head.append(readingCell("th", h));
  table.append(head);
  for (const f of result.findings) {
    const row = document.createElement("tr");
    row.dataset.label = f.label;
    row.append(readingCell("td", f.label), readingCell("td", f.probability.toFixed(3)),
      readingCell("td", f.threshold.toFixed(3)),
      readingCell("td", f.decision === "positive" ? "positive (at or above threshold)" : "negative (below threshold)",
        f.decision),
      readingCell("td", (f.test_auroc === null ? "unknown" : f.test_auroc.toFixed(2)) +
        (f.reliable ? "" : " (unreliable for this finding)"), f.reliable ? "" : "unreliable"));
    table.append(row);
  }
  const wrap = document.createElement("div");  // a narrow screen scrolls the table, not the page
  wrap.className = "findings-wrap";
  wrap.append(table);
  parts.push(wrap);
  box.replaceChildren(...parts);
}
