// Moving a model alias (e.g. production) from the page: PUT /models/{name}/aliases/{alias} with the key in
// the API key field, which must have scope admin. Uses app.js's helpers and reloads its model list after.
"use strict";

// Wrapped in a function: its names stay its own, apart from app.js's globals it uses.
(() => {
  const aliasForm = { models: [] };

  async function loadAliasForm() {
    try {
      aliasForm.models = (await (await api("/models")).json()).items;
    } catch (error) {
      $("alias-status").textContent = error.message;
      return;
    }
    const chosen = $("alias-model").value;
    $("alias-model").replaceChildren(...aliasForm.models.map((m) => el("option", { value: m.name }, m.name)));
    if (aliasForm.models.some((m) => m.name === chosen)) $("alias-model").value = chosen;
    fillVersions();
  }

  function fillVersions() {
    const model = aliasForm.models.find((m) => m.name === $("alias-model").value);
    const versions = model ? model.versions : [];
    $("alias-version").replaceChildren(...versions.map((v) =>
      el("option", { value: String(v.version) }, `${v.version}${v.aliases.length ? ` (@${v.aliases.join(", @")})` : ""}`)));
    if (versions.length) $("alias-version").value = String(versions[versions.length - 1].version);
  }

  async function moveAlias(event) {
    event.preventDefault();
    const name = $("alias-model").value, alias = $("alias-name").value.trim(), version = Number($("alias-version").value);
    if (!name || !alias || !version) return;
    const status = $("alias-status");
    status.className = "muted";
    status.textContent = `Moving ${name}@${alias}…`;
    try {
      const moved = await (await api(`/models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}`, {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ version }),
      })).json();
      status.textContent = `${name}@${alias} now points at version ${moved.version}.`;
      if (typeof loadModels === "function") loadModels();
      await loadAliasForm();
    } catch (error) {
      status.className = "error";
      status.textContent = error.status === 401 || error.status === 403
        ? `Moving an alias needs an API key with scope admin in the API key field: ${error.message}` : error.message;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("alias-model").addEventListener("change", fillVersions);
    $("alias-form").addEventListener("submit", moveAlias);
    loadAliasForm();
  });
})();
