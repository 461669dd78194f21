// The manage page: reads the manage token from the URL fragment (which browsers never send to a
// server), keeps it in this tab's session storage, and calls the site's JSON API with it.
(function () {
  "use strict";
  const base = location.pathname.replace(/\/manage$/, "");
  const key = "berth-manage:" + base;
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    sessionStorage.setItem(key, fromLink);
    history.replaceState(null, "", location.pathname);
  }
  const token = sessionStorage.getItem(key);
  const $ = (id) => document.getElementById(id);
  if (!token) {
    $("missing").hidden = false;
    return;
  }
  $("status").href = base;

  async function call(method, path, body) {
    const response = await fetch(base + path, {
      method,
      headers: Object.assign(
        { Authorization: "Bearer " + token, Accept: "application/json" },
        body === undefined ? {} : { "Content-Type": "application/json" }
      ),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = answer.error || {};
      const details = (error.fields || []).map((f) => f.message)
        .concat((error.reasons || []).map((r) => r.message));
      throw new Error([error.message || "Request failed (" + response.status + ")"].concat(details).join(" — "));
    }
    return answer;
  }

  function say(notice, message) {
    $("notice").textContent = notice || "";
    $("message").textContent = message || "";
  }

  function cell(row, label, text, className) {
    const td = row.insertCell();
    td.dataset.label = label;
    if (className) {
      const span = document.createElement("span");
      span.className = className;
      span.textContent = text;
      td.appendChild(span);
    } else {
      td.textContent = text;
    }
    return td;
  }

  let polling = null;
  async function refresh() {
    const answer = await call("GET", "/versions");
    $("live").textContent = answer.live_version === null ? "none yet" : answer.live_version;
    const waiting = answer.target_version !== null && answer.target_version !== answer.live_version;
    $("pending").hidden = !waiting;
    $("target").textContent = answer.target_version;
    const body = $("versions");
    body.textContent = "";
    for (const v of answer.versions) {
      const row = body.insertRow();
      cell(row, "Version", v.version);
      const state = cell(row, "State", v.state, "state " + v.state);
      if (v.error) {
        const error = document.createElement("div");
        error.className = "error";
        error.textContent = v.error;
        state.appendChild(error);
      }
      cell(row, "By", v.by);
      cell(row, "Made", new Date(v.created_at).toLocaleString());
      cell(row, "Size", v.size + " bytes");
      const actions = row.insertCell();
      if (v.state === "superseded") {
        const button = document.createElement("button");
        button.textContent = "Serve this again";
        button.addEventListener("click", () => act(() => call("POST", "/rollback", { version: v.version }), "Rolling back to version " + v.version + "…"));
        actions.appendChild(button);
      }
    }
    clearTimeout(polling);
    if (waiting) polling = setTimeout(() => refresh().catch((e) => say("", e.message)), 1500);
  }

  async function act(request, notice) {
    say(notice, "");
    try {
      await request();
      await refresh();
    } catch (e) {
      say("", e.message);
    }
  }

  $("edit").addEventListener("submit", (event) => {
    event.preventDefault();
    act(() => call("PUT", "/content", { html: $("html").value }), "Publishing…");
  });

  $("name-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("rename-message").textContent = "";
    call("PUT", "/name", { name: $("name").value.trim() })
      .then((renamed) => { location.href = renamed.status_url; })
      .catch((e) => { $("rename-message").textContent = e.message; });
  });

  // A paid site whose name was refused first needs another name; any other site is managed.
  fetch(base, { headers: { Accept: "application/json" } })
    .then((response) => response.json())
    .then((site) => {
      if (site.state === "rejected") {
        $("reason").textContent = site.reason || "it was taken or not allowed.";
        $("rename").hidden = false;
        return;
      }
      $("main").hidden = false;
      return call("GET", "/content")
        .then((content) => { $("html").value = content.html; })
        .then(refresh);
    })
    .catch((e) => say("", e.message));
})();
