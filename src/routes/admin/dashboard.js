// The operator dashboard: reads the admin API with the token kept in session storage.
// Every value is inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 50;
let token = sessionStorage.getItem("berth-admin-token") || "";
// The sites listing pages with the API's cursors: cursors[i] is the `before` of page i.
let cursors = [null];
let pageIndex = 0;
let nextCursor = null;
let refreshing = false;
let refreshAgain = false;

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

// Tells the operator how an action went (a live region: screen readers announce it too).
function say(text, ok) {
  $("message").textContent = text;
  $("message").className = ok ? "ok" : "bad";
}

function cell(row, label, text, className) {
  const td = document.createElement("td");
  td.dataset.label = label;
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function link(parent, href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.rel = "noopener noreferrer";
  a.textContent = text;
  parent.appendChild(a);
  return a;
}

function line(parent, text, className) {
  const div = document.createElement("div");
  div.textContent = text;
  if (className) div.className = className;
  parent.appendChild(div);
  return div;
}

function button(parent, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onClick);
  parent.appendChild(b);
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

// What each table shows now, so that a refresh that changes nothing leaves the rows (and the
// keyboard focus on their buttons) alone.
const shown = {};

// Fills a table's body with a row per item, or with one row saying why there are none.
function fill(bodyId, items, empty, renderRow) {
  const key = JSON.stringify([items, empty]);
  if (shown[bodyId] === key) return;
  shown[bodyId] = key;
  const body = $(bodyId);
  body.replaceChildren();
  if (items.length === 0) {
    const row = document.createElement("tr");
    const td = cell(row, "", empty, "empty");
    td.colSpan = body.parentElement.querySelectorAll("th").length;
    body.appendChild(row);
    return;
  }
  for (const item of items) {
    const row = document.createElement("tr");
    renderRow(row, item);
    body.appendChild(row);
  }
}

// Runs an action, says how it went, and refreshes.
async function act(method, path, done, confirmText, body) {
  if (confirmText && !confirm(confirmText)) return;
  try {
    await api(method, path, body);
    say(done, true);
  } catch (error) {
    say(error.message, false);
  }
  refresh();
}

// Issues a new manage token (the old one stops working) and shows its link once, to hand on.
async function issueLink(path, hostname) {
  if (!confirm("Issue a new manage link for " + hostname + "? The current one stops working.")) return;
  const email = confirm("Email the new link to the site's customer as well?");
  try {
    const issued = await api("POST", path + "/manage-token" + (email ? "?email=true" : ""));
    say("New manage link for " + hostname + " (shown once" +
      (issued.emailed ? ", and emailed to the customer" : "") + "): " + issued.manage_url, true);
  } catch (error) {
    say(error.message, false);
  }
}

function siteRow(row, site) {
  const name = cell(row, "Site", "");
  if (site.state === "ready" && site.url) {
    link(name, site.url, site.hostname);
  } else {
    line(name, site.hostname);
  }
  line(name, site.id, "id");
  if (site.status_url) link(name, site.status_url, "status page");
  const state = cell(row, "State", "");
  const badge = document.createElement("span");
  badge.className = "state " + site.state;
  badge.textContent = site.state;
  state.appendChild(badge);
  if (site.live_version) state.appendChild(document.createTextNode(" v" + site.live_version));
  if (site.state === "rejected" && site.paid_at) {
    // A paid checkout whose name was refused: the customer was emailed to choose another.
    state.appendChild(document.createTextNode(" · paid, waiting for a new name"));
  }
  cell(row, "Email", site.email);
  cell(row, "Plan", site.plan || "—");
  cell(row, "Created", when(site.created_at));
  cell(row, "Updated", when(site.updated_at));
  cell(row, "Now", site.last_error || site.step || "", site.last_error ? "error" : "");
  const actions = cell(row, "Actions", "", "actions");
  const path = "/admin/sites/" + encodeURIComponent(site.id);
  const host = site.hostname;
  if (site.state === "failed") button(actions, "Retry", () => act("POST", path + "/retry", "Provisioning " + host + " again."));
  if (site.state === "ready" || site.state === "provisioning") {
    button(actions, "Suspend", () => act("POST", path + "/suspend", "Suspending " + host + ".", "Suspend " + host + "?"));
  }
  if (site.state === "suspended") button(actions, "Resume", () => act("POST", path + "/resume", "Resuming " + host + "."));
  if (site.state !== "deleted") {
    button(actions, "New manage link", () => issueLink(path, host));
    button(actions, "Delete", () => act("DELETE", path, "Deleting " + host + ".", "Delete " + host + "? This removes the site."));
  }
}

function filtersActive() {
  return $("q").value.trim() !== "" || $("tenant").value !== "" || $("state").value !== "";
}

async function refreshSites() {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const q = $("q").value.trim();
  if (q) query.set("q", q);
  if ($("tenant").value) query.set("tenant", $("tenant").value);
  if ($("state").value) query.set("state", $("state").value);
  if (!$("deleted").checked) query.set("include_deleted", "false");
  if (cursors[pageIndex]) query.set("before", cursors[pageIndex]);
  const { sites, next } = await api("GET", "/admin/sites?" + query);
  nextCursor = next;
  const empty = filtersActive() ? "No sites match these filters."
    : pageIndex > 0 ? "No more sites." : "No sites yet: they appear here as customers sign up.";
  fill("sites", sites, empty, siteRow);
  $("newer").disabled = pageIndex === 0;
  $("older").disabled = !nextCursor;
  $("page").textContent = sites.length === 0 ? "" :
    "Sites " + (pageIndex * PAGE_SIZE + 1) + "–" + (pageIndex * PAGE_SIZE + sites.length);
}

// Asks how a rollout goes, then starts it.
function startRollout(tenant, drifted) {
  const parallel = prompt("Roll out the current configuration to " + drifted + " site(s) of " + tenant + ".\nSites deployed at once, per wave:", "1");
  if (parallel === null) return;
  const failures = prompt("Stop after how many failed sites?", "1");
  if (failures === null) return;
  act("POST", "/admin/t/" + encodeURIComponent(tenant) + "/rollout", "Rollout of " + tenant + " started.", null,
    { max_parallel: Number(parallel), max_failures: Number(failures) });
}

function rolloutRow(row, status) {
  const rollout = status.rollout;
  const tenant = status.tenant;
  cell(row, "Tenant", tenant);
  cell(row, "Ready", status.drift.ready);
  cell(row, "Drifted", status.drift.drifted + (status.drift.drifted_suspended ? " (+" + status.drift.drifted_suspended + " suspended)" : ""));
  if (rollout) {
    const p = rollout.progress;
    cell(row, "Rollout", rollout.state + ", wave " + rollout.wave + ": " + p.done + " done, " + p.failed + " failed, " +
      p.skipped + " skipped, " + rollout.remaining + " remaining" + (rollout.reason ? " — " + rollout.reason : ""));
    cell(row, "Failed or skipped", rollout.problems.map((s) => s.site_id + ": " + (s.error || s.state)).join("; "), "error");
  } else {
    cell(row, "Rollout", "none yet");
    cell(row, "Failed or skipped", "");
  }
  const actions = cell(row, "Actions", "", "actions");
  const path = "/admin/t/" + encodeURIComponent(tenant) + "/rollout";
  const active = rollout && (rollout.state === "running" || rollout.state === "paused");
  if (!active && status.drift.drifted > 0) button(actions, "Roll out", () => startRollout(tenant, status.drift.drifted));
  if (rollout && rollout.state === "running") button(actions, "Pause", () => act("POST", path + "/pause", "Rollout of " + tenant + " paused."));
  if (rollout && rollout.state === "paused") button(actions, "Resume", () => act("POST", path + "/resume", "Rollout of " + tenant + " resumed."));
  if (active) {
    button(actions, "Cancel", () => act("POST", path + "/cancel", "Rollout of " + tenant + " cancelled.",
      "Cancel the rollout of " + tenant + "? Sites already deploying finish."));
  }
}

function jobRow(row, job) {
  cell(row, "Job", job.id, "id");
  cell(row, "Kind", job.kind);
  cell(row, "Site", job.site_id || "", "id");
  cell(row, "Attempts", job.attempts + " / " + job.max_attempts);
  cell(row, "Error", job.last_error || "", "error");
  const actions = cell(row, "Actions", "", "actions");
  if (job.superseded) {
    actions.textContent = "superseded";
    actions.title = "A newer job of this site has run since; retry the site instead if it is failed";
  } else {
    button(actions, "Retry", () => act("POST", "/admin/jobs/" + encodeURIComponent(job.id) + "/retry", "Job " + job.id + " queued again."));
  }
}

function eventRow(row, event) {
  cell(row, "Event", event.stripe_event_id, "id");
  cell(row, "Tenant", event.tenant);
  cell(row, "Type", event.event_type);
  cell(row, "Outcome", event.outcome);
  cell(row, "Detail", event.detail || "", "error");
  cell(row, "Received", when(event.received_at));
  const actions = cell(row, "Actions", "", "actions");
  button(actions, "Replay", () => act("POST", "/admin/events/" + encodeURIComponent(event.id) + "/replay", "Event " + event.stripe_event_id + " replayed."));
}

function renderBacklog(backlog) {
  const kinds = backlog.by_kind.map((k) => k.kind + " " + k.queued + "/" + k.running).join(", ");
  $("backlog").textContent =
    backlog.queued + " queued, " + backlog.running + " running; the oldest due job has waited " +
    backlog.oldest_due_secs.toFixed(1) + " s" + (kinds ? " (queued/running: " + kinds + ")" : "");
}

// The tenant filter lists the tenants the token sees (it is left out when there is one).
function renderTenants(tenants) {
  const select = $("tenant");
  const names = tenants.map((t) => t.name);
  const listed = [...select.options].slice(1).map((o) => o.value);
  if (JSON.stringify(names) !== JSON.stringify(listed)) {
    const chosen = select.value;
    select.replaceChildren(select.options[0]);
    for (const tenant of tenants) {
      const option = document.createElement("option");
      option.value = tenant.name;
      option.textContent = tenant.display_name === tenant.name ? tenant.name : tenant.display_name + " (" + tenant.name + ")";
      select.appendChild(option);
    }
    select.value = names.includes(chosen) ? chosen : "";
  }
  $("tenant-filter").hidden = tenants.length < 2;
}

// Reads everything again; a call while a refresh runs makes it run once more when it ends.
async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    const { scope, tenants } = await api("GET", "/admin/tenants");
    renderTenants(tenants);
    await refreshSites();

    const statuses = await Promise.all(tenants.map((t) => api("GET", "/admin/t/" + encodeURIComponent(t.name) + "/rollout")));
    const worth = statuses.filter((s) => s.rollout || s.drift.drifted > 0 || s.drift.drifted_suspended > 0);
    fill("rollouts", worth, "", rolloutRow);
    $("rollout-section").hidden = worth.length === 0;

    // Only tenants that take Stripe's webhooks have events to look at.
    const stripe = tenants.filter((t) => t.stripe);
    if (stripe.length > 0) {
      const attention = await Promise.all(
        ["deferred", "rejected", "invalid"].map((outcome) => api("GET", "/admin/events?limit=100&outcome=" + outcome)),
      );
      fill("events", attention.flatMap((page) => page.events), "No Stripe events need a look.", eventRow);
    }
    $("stripe-section").hidden = stripe.length === 0;

    // The job queue is the global token's only.
    const global = scope === "global";
    if (global) {
      const { jobs, backlog } = await api("GET", "/admin/jobs?state=failed&limit=200");
      fill("jobs", jobs, "No failed jobs.", jobRow);
      renderBacklog(backlog);
    }
    $("jobs-section").hidden = !global;
    $("scope").textContent = global ? "global token" : "tenant token (" + tenants.map((t) => t.name).join(", ") + ")";
    $("refreshed").textContent = new Date().toLocaleTimeString();
  } catch (error) {
    if (error.status === 401) {
      showLogin("That token was not accepted.");
    } else {
      say(error.message, false);
    }
  } finally {
    refreshing = false;
  }
  if (refreshAgain && token) {
    refreshAgain = false;
    refresh();
  }
}

function showLogin(message) {
  token = "";
  sessionStorage.removeItem("berth-admin-token");
  for (const key of Object.keys(shown)) delete shown[key];
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-message").textContent = message || "";
  $("token").focus();
}

// A new filter starts again from the first page.
function filtersChanged() {
  cursors = [null];
  pageIndex = 0;
  refresh();
}

let typing = null;
$("q").addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(filtersChanged, 300);
});
for (const id of ["tenant", "state", "deleted"]) $(id).addEventListener("change", filtersChanged);
$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(typing);
  filtersChanged();
});
$("older").addEventListener("click", () => {
  if (!nextCursor) return;
  cursors[pageIndex + 1] = nextCursor;
  pageIndex += 1;
  refresh();
});
$("newer").addEventListener("click", () => {
  if (pageIndex === 0) return;
  pageIndex -= 1;
  refresh();
});

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
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
  showLogin();
}
setInterval(() => { if (token && !document.hidden) refresh(); }, 3000);
