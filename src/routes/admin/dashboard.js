// The operator dashboard: reads the admin API with the token kept in session storage.
// Every value is inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("berth-admin-token") || "";

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((answer.error && answer.error.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return answer;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(parent, label, onClick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.addEventListener("click", onClick);
  parent.appendChild(b);
}

async function act(method, path, confirmText, body) {
  if (confirmText && !confirm(confirmText)) return;
  try {
    await api(method, path, body);
    $("message").textContent = "";
  } catch (error) {
    $("message").textContent = error.message;
  }
  refresh();
}

// Issues a new manage token (the old one stops working) and shows its link once, to hand on.
async function issueLink(path, hostname) {
  if (!confirm("Issue a new manage link for " + hostname + "? The current one stops working.")) return;
  const email = confirm("Email the new link to the site's customer as well?");
  try {
    const issued = await api("POST", path + "/manage-token" + (email ? "?email=true" : ""));
    $("message").textContent = "New manage link for " + hostname + " (shown once" +
      (issued.emailed ? ", and emailed to the customer" : "") + "): " + issued.manage_url;
  } catch (error) {
    $("message").textContent = error.message;
  }
}

function renderSites(sites) {
  const body = $("sites");
  body.replaceChildren();
  for (const site of sites) {
    const row = document.createElement("tr");
    const name = cell(row, "");
    if (site.state === "ready" && site.url) {
      const link = document.createElement("a");
      link.href = site.url;
      link.rel = "noopener noreferrer";
      link.textContent = site.hostname;
      name.appendChild(link);
    } else {
      name.textContent = site.hostname;
    }
    cell(row, site.tenant);
    const state = cell(row, "");
    const badge = document.createElement("span");
    badge.className = "state " + site.state;
    badge.textContent = site.state;
    state.appendChild(badge);
    if (site.live_version) state.appendChild(document.createTextNode(" v" + site.live_version));
    if (site.state === "rejected" && site.paid_at) {
      // A paid checkout whose name was refused: the customer was emailed to choose another.
      state.appendChild(document.createTextNode(" · paid, waiting for a new name"));
    }
    cell(row, site.last_error || site.step || "", site.last_error ? "error" : "");
    cell(row, new Date(site.updated_at).toLocaleString());
    const actions = cell(row, "");
    const path = "/admin/sites/" + encodeURIComponent(site.id);
    if (site.state === "failed") button(actions, "Retry", () => act("POST", path + "/retry"));
    if (site.state === "ready" || site.state === "provisioning") button(actions, "Suspend", () => act("POST", path + "/suspend", "Suspend " + site.hostname + "?"));
    if (site.state === "suspended") button(actions, "Resume", () => act("POST", path + "/resume"));
    if (site.state !== "deleted") button(actions, "New manage link", () => issueLink(path, site.hostname));
    if (site.state !== "deleted") button(actions, "Delete", () => act("DELETE", path, "Delete " + site.hostname + "? This removes the site."));
    body.appendChild(row);
  }
}

// Asks how a rollout goes, then starts it.
function startRollout(tenant, drifted) {
  const parallel = prompt("Roll out the current configuration to " + drifted + " site(s) of " + tenant + ".\nSites deployed at once, per wave:", "1");
  if (parallel === null) return;
  const failures = prompt("Stop after how many failed sites?", "1");
  if (failures === null) return;
  act("POST", "/admin/t/" + encodeURIComponent(tenant) + "/rollout", null,
    { max_parallel: Number(parallel), max_failures: Number(failures) });
}

function renderRollouts(statuses) {
  const body = $("rollouts");
  body.replaceChildren();
  for (const status of statuses) {
    const row = document.createElement("tr");
    const rollout = status.rollout;
    cell(row, status.tenant);
    cell(row, status.drift.ready);
    cell(row, status.drift.drifted + (status.drift.drifted_suspended ? " (+" + status.drift.drifted_suspended + " suspended)" : ""));
    if (rollout) {
      const p = rollout.progress;
      cell(row, rollout.state + ", wave " + rollout.wave + ": " + p.done + " done, " + p.failed + " failed, " +
        p.skipped + " skipped, " + rollout.remaining + " remaining" + (rollout.reason ? " — " + rollout.reason : ""));
      cell(row, rollout.problems.map((s) => s.site_id + ": " + (s.error || s.state)).join("; "), "error");
    } else {
      cell(row, "none yet");
      cell(row, "");
    }
    const actions = cell(row, "");
    const path = "/admin/t/" + encodeURIComponent(status.tenant) + "/rollout";
    const active = rollout && (rollout.state === "running" || rollout.state === "paused");
    if (!active && status.drift.drifted > 0) button(actions, "Roll out", () => startRollout(status.tenant, status.drift.drifted));
    if (rollout && rollout.state === "running") button(actions, "Pause", () => act("POST", path + "/pause"));
    if (rollout && rollout.state === "paused") button(actions, "Resume", () => act("POST", path + "/resume"));
    if (active) button(actions, "Cancel", () => act("POST", path + "/cancel", "Cancel the rollout of " + status.tenant + "? Sites already deploying finish."));
    body.appendChild(row);
  }
  $("rollout-section").hidden = statuses.length === 0;
}

function renderJobs(jobs) {
  const body = $("jobs");
  body.replaceChildren();
  for (const job of jobs) {
    const row = document.createElement("tr");
    cell(row, job.id);
    cell(row, job.kind);
    cell(row, job.site_id || "");
    cell(row, job.attempts + " / " + job.max_attempts);
    cell(row, job.last_error || "", "error");
    const actions = cell(row, "");
    if (job.superseded) {
      actions.textContent = "superseded";
      actions.title = "A newer job of this site has run since; retry the site instead if it is failed";
    } else {
      button(actions, "Retry", () => act("POST", "/admin/jobs/" + encodeURIComponent(job.id) + "/retry"));
    }
    body.appendChild(row);
  }
}

function renderEvents(events) {
  const body = $("events");
  body.replaceChildren();
  for (const event of events) {
    const row = document.createElement("tr");
    cell(row, event.stripe_event_id);
    cell(row, event.tenant);
    cell(row, event.event_type);
    cell(row, event.outcome);
    cell(row, event.detail || "", "error");
    cell(row, new Date(event.received_at).toLocaleString());
    const actions = cell(row, "");
    button(actions, "Replay", () => act("POST", "/admin/events/" + encodeURIComponent(event.id) + "/replay"));
    body.appendChild(row);
  }
}

function renderBacklog(backlog) {
  const kinds = backlog.by_kind.map((k) => k.kind + " " + k.queued + "/" + k.running).join(", ");
  $("backlog").textContent =
    backlog.queued + " queued, " + backlog.running + " running; the oldest due job has waited " +
    backlog.oldest_due_secs.toFixed(1) + " s" + (kinds ? " (queued/running: " + kinds + ")" : "");
}

async function refresh() {
  try {
    const { sites } = await api("GET", "/admin/sites?limit=500");
    renderSites(sites);
    const tenants = [...new Set(sites.map((site) => site.tenant))].sort();
    renderRollouts(await Promise.all(tenants.map((t) => api("GET", "/admin/t/" + encodeURIComponent(t) + "/rollout"))));
    const attention = await Promise.all(
      ["deferred", "rejected", "invalid"].map((outcome) => api("GET", "/admin/events?limit=100&outcome=" + outcome)),
    );
    renderEvents(attention.flatMap((page) => page.events));
    try {
      const { jobs, backlog } = await api("GET", "/admin/jobs?state=failed&limit=200");
      renderJobs(jobs);
      renderBacklog(backlog);
      $("failed-jobs").hidden = false;
      $("scope").textContent = "global token";
    } catch (error) {
      if (error.status !== 403) throw error;
      $("failed-jobs").hidden = true;
      $("scope").textContent = "tenant token";
    }
    $("refreshed").textContent = new Date().toLocaleTimeString();
  } catch (error) {
    if (error.status === 401) return showLogin("That token was not accepted.");
    $("message").textContent = error.message;
  }
}

function showLogin(message) {
  token = "";
  sessionStorage.removeItem("berth-admin-token");
  $("main").hidden = true;
  $("login").hidden = false;
  if (message) alert(message);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("berth-admin-token", token);
  $("login").hidden = true;
  $("main").hidden = false;
  refresh();
});
$("logout").addEventListener("click", () => showLogin());

if (token) {
  $("main").hidden = false;
  refresh();
} else {
  $("login").hidden = false;
}
setInterval(() => { if (token) refresh(); }, 3000);
