// The llmbus console's only script: a confirmation before revoking a key, and the live
// view's table, polled every second. Everything from the server is written as text.
"use strict";

document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (button && button.dataset.action === "revoke" && !window.confirm("Revoke this key? Its clients stop at once.")) {
    event.preventDefault();
  }
});

function row(cells) {
  const tr = document.createElement("tr");
  for (const [value, numeric] of cells) {
    const td = document.createElement("td");
    td.textContent = String(value);
    if (numeric) td.className = "num";
    tr.appendChild(td);
  }
  return tr;
}

async function refresh(table) {
  const status = document.getElementById("live-status");
  try {
    const response = await fetch(table.dataset.source, { cache: "no-store", credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign("/console/login");
      return;
    }
    const live = await response.json();
    table.tBodies[0].replaceChildren(
      ...live.providers.map((p) => {
        const tr = row([[p.provider], [p.in_flight, true], [p.workers, true], [p.requests, true], [p.errors, true]]);
        tr.dataset.provider = p.provider;
        tr.dataset.inFlight = String(p.in_flight);
        return tr;
      }),
    );
    document.getElementById("live-edge-total").textContent = String(live.edge_in_flight);
    const keys = document.getElementById("live-keys");
    const names = JSON.parse(keys.dataset.names || "{}");
    keys.tBodies[0].replaceChildren(
      ...live.keys.map((k) => {
        const tr = row([[names[k.key] ? names[k.key] + " (" + k.key + ")" : k.key], [k.in_flight, true]]);
        tr.dataset.key = k.key;
        return tr;
      }),
    );
    document.getElementById("live-requests").tBodies[0].replaceChildren(
      ...live.requests.map((r) => {
        const tr = row([
          [r.request_id],
          [names[r.key] || r.key],
          [r.model],
          [r.provider || "(not started)"],
          [r.stream ? "yes" : "no"],
          [r.seconds.toFixed(1), true],
        ]);
        tr.dataset.requestId = r.request_id;
        return tr;
      }),
    );
    status.textContent = live.error ? "routers: " + live.error : "updated " + new Date(live.at * 1000).toLocaleTimeString();
  } catch (error) {
    status.textContent = "not updated: " + error.message;
  }
}

const live = document.getElementById("live-providers");
if (live) {
  refresh(live);
  window.setInterval(() => refresh(live), 1000);
}
