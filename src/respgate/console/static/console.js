// The console: a client of respgate's documented JSON endpoints (docs/console.md).
// Views by URL hash: #/live, #/run/<id>, #/stored, #/response/<id>, #/playground, #/check.
import { ApiError, api, h, key, ms, stream, when } from "./dom.js";
import { Timeline } from "./timeline.js";

const view = document.getElementById("view");
const statusLine = document.getElementById("status");
let current = new AbortController(); // the shown view's requests, aborted when it changes

function say(text) {
  statusLine.textContent = text;
}

function failure(err) {
  if (err.name === "AbortError") return null;
  const box = h("div", { class: "error-box", "data-testid": "failure" },
    err instanceof ApiError ? `${err.status}: ${err.message}` : String(err));
  return box;
}

function statusCell(status) {
  return h("td", { class: `status-${status}` }, status ?? "");
}

function tenantQuery(tenant) {
  return tenant ? `?tenant=${encodeURIComponent(tenant)}` : "";
}

// ---------------------------------------------------------------- the live list (always on)
// One stream for the whole page: the tap records runs while someone watches, so keeping it
// open while the console is open lets every view show the runs started meanwhile.

const live = { runs: [], listeners: new Set(), controller: null };

function watchLive() {
  live.controller?.abort();
  const controller = (live.controller = new AbortController());
  stream("/console/api/live?stream=true", (name, data) => {
    if (name !== "live") return;
    live.runs = data.data;
    const running = live.runs.filter((r) => r.status === "in_progress").length;
    document.getElementById("in-flight").textContent = `${running} in flight`;
    for (const listener of live.listeners) listener(live.runs);
  }, { signal: controller.signal }).then(() => {  // the server ended it (shutting down)
    setTimeout(() => controller.signal.aborted || watchLive(), 2000);
  }, (err) => {
    if (err.name === "AbortError") return;
    document.getElementById("in-flight").textContent = `live: ${err.message}`;
    const refused = err instanceof ApiError && err.status < 500; // a wrong key: wait for another
    if (!refused) setTimeout(() => controller.signal.aborted || watchLive(), 2000);
  });
}

function liveView() {
  const body = h("tbody");
  const render = (runs) => body.replaceChildren(...(runs.length ? runs.map((r) =>
    h("tr", { class: "clickable", "data-id": r.id,
              onclick: () => { location.hash = `#/run/${r.id}${tenantQuery(r.tenant)}`; } },
      h("td", { class: "mono" }, r.id), h("td", {}, r.model), h("td", {}, r.tenant),
      statusCell(r.status), h("td", {}, r.error_code ?? ""), h("td", {}, ms(r.ttft_ms)),
      h("td", {}, ms(r.duration_ms)),
      h("td", {}, r.usage ? `${r.usage.input_tokens} / ${r.usage.output_tokens}` : ""),
      h("td", {}, r.transport))) : [h("tr", {}, h("td", { colspan: 9, class: "muted" },
        "No responses in flight or just finished (runs are recorded while the console is open)."))]));
  render(live.runs);
  live.listeners.add(render);
  current.signal.addEventListener("abort", () => live.listeners.delete(render));
  view.replaceChildren(h("h2", {}, "Live"),
    h("table", { "data-testid": "live" },
      h("thead", {}, h("tr", {}, ["response", "model", "tenant", "status", "error", "TTFT",
        "duration", "tokens in / out", "transport"].map((c) => h("th", {}, c)))), body));
}

// ---------------------------------------------------------------- one response

async function runView(id, params) {
  const timeline = new Timeline();
  const summary = h("div", { class: "muted" }, "streaming…");
  const stored = h("div");
  view.replaceChildren(h("h2", {}, "Response ", h("code", {}, id)), summary, timeline.el, stored);
  const signal = current.signal;
  try {
    const body = await stream(`/console/api/runs/${id}/events?stream=true`, (name, data) => {
      if (name === "event") timeline.add(data);
      else if (name === "run") summary.textContent = runLine(data);
      else if (name === "verdict") timeline.verdict(data);
    }, { signal });
    if (body) throw new Error("unexpected JSON");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) return view.append(failure(err) ?? "");
    summary.textContent = "Not watched live: showing what is stored.";
  }
  if (!signal.aborted) storedDetails(id, params.get("tenant"), stored, { timeline: false });
}

function runLine(r) {
  return `${r.model} · ${r.tenant || "(no tenant)"} · ${r.status} · TTFT ${ms(r.ttft_ms)} · ` +
    `${ms(r.duration_ms)} · ${r.transport}`;
}

async function storedDetails(id, tenant, into, { timeline = true } = {}) {
  let data;
  try {
    data = await api(`/console/api/responses/${id}${tenantQuery(tenant)}`, { signal: current.signal });
  } catch (err) {
    into.append(err instanceof ApiError && err.status === 404
      ? h("p", { class: "muted" }, "Not stored (store: false, or another tenant's).")
      : failure(err) ?? "");
    return;
  }
  const response = data.response;
  const del = h("button", { "data-testid": "delete", onclick: async () => {
    if (!confirm(`Delete ${id}?`)) return;
    await api(`/console/api/responses/${id}${tenantQuery(data.tenant)}`, { method: "DELETE" });
    say(`deleted ${id}`);
    location.hash = "#/stored";
  } }, "Delete");
  const chain = h("div", { "data-testid": "chain" });
  into.append(
    h("h3", {}, "Stored"),
    h("div", { class: "row" },
      h("span", { class: `status-${response.status}` }, response.status),
      h("span", {}, `model ${response.model}`), h("span", {}, `created ${when(response.created_at)}`),
      h("span", {}, `tenant ${data.tenant || "(none)"}`), del),
    chain);
  if (timeline && data.events) {
    const t = new Timeline();
    data.events.forEach((e) => t.add(e));
    t.verdict(data.verdict);
    into.append(h("h3", {}, "Event log"), t.el);
  } else if (timeline) {
    into.append(h("p", { class: "muted" },
      "No event timeline: only background responses keep their events, and live runs while watched."));
  }
  into.append(
    h("h3", {}, "Output items"), h("pre", { "data-testid": "output" }, JSON.stringify(response.output, null, 2)),
    h("h3", {}, "Request (secrets removed)"), h("pre", { "data-testid": "request" }, JSON.stringify(data.request, null, 2)));
  showChain(response.previous_response_id, data.tenant, chain);
}

async function showChain(previous, tenant, into) {
  const links = [];
  for (let id = previous; id && links.length < 20; ) {
    links.push(h("a", { href: `#/response/${id}${tenantQuery(tenant)}`, class: "mono" }, id));
    try {
      const data = await api(`/console/api/responses/${id}${tenantQuery(tenant)}`, { signal: current.signal });
      id = data.response.previous_response_id;
    } catch {
      links.push(h("span", { class: "muted" }, "(missing)"));
      break;
    }
  }
  if (links.length) into.append("chain: ", ...links.flatMap((a) => [a, " ← "]).slice(0, -1));
}

function responseView(id, params) {
  const into = h("div");
  view.replaceChildren(h("h2", {}, "Response ", h("code", {}, id)), into);
  storedDetails(id, params.get("tenant"), into);
}

// ---------------------------------------------------------------- stored

function storedView(params) {
  const field = (name, attrs = {}) => h("input", { name, value: params.get(name) ?? "", ...attrs });
  const status = h("select", { name: "status" }, ["", "completed", "incomplete", "failed",
    "cancelled", "in_progress", "queued"].map((s) => h("option", { value: s, selected: params.get("status") === s }, s || "any")));
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const query = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) query.set(k, v);
    location.hash = `#/stored?${query}`;
  } },
    h("label", {}, "id (resp_… or conv_…)", field("id", { size: 36 })),
    h("label", {}, "model", field("model")), h("label", {}, "status", status),
    h("label", {}, "from", field("from", { type: "date" })),
    h("label", {}, "to", field("to", { type: "date" })),
    h("button", { type: "submit" }, "Search"));
  const kind = h("select", { name: "kind", "data-testid": "kind" }, ["responses", "conversations"].map(
    (k) => h("option", { value: k, selected: params.get("kind") === k }, k)));
  form.prepend(h("label", {}, "list", kind));
  const body = h("tbody");
  const more = h("button", { hidden: true }, "More");
  const results = h("div");
  view.replaceChildren(h("h2", {}, "Stored"), form, results);
  const id = params.get("id");
  if (id?.startsWith("conv_")) return conversation(id, results);
  if (id) {
    location.hash = `#/response/${id}`;
    return;
  }
  const conversations = params.get("kind") === "conversations";
  const columns = conversations ? ["conversation", "created", "metadata", "tenant"]
    : ["response", "model", "status", "created", "tokens in / out", "tenant"];
  results.append(h("table", { "data-testid": "stored" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))), body), more);
  const query = new URLSearchParams({ limit: "50" });
  if (!conversations) for (const k of ["model", "status"]) if (params.get(k)) query.set(k, params.get(k));
  const day = (v) => Math.floor(Date.parse(v) / 1000);
  if (params.get("from")) query.set("created_after", day(params.get("from")));
  if (params.get("to")) query.set("created_before", day(params.get("to")) + 86400);
  const row = (r) => conversations
    ? h("tr", { class: "clickable", "data-id": r.id, onclick: () => { location.hash = `#/stored?id=${r.id}`; } },
      h("td", { class: "mono" }, r.id), h("td", {}, when(r.created_at)),
      h("td", { class: "mono" }, JSON.stringify(r.metadata)), h("td", {}, r.tenant ?? ""))
    : h("tr", { class: "clickable", "data-id": r.id,
                onclick: () => { location.hash = `#/response/${r.id}${tenantQuery(r.tenant)}`; } },
      h("td", { class: "mono" }, r.id), h("td", {}, r.model), statusCell(r.status),
      h("td", {}, when(r.created_at)),
      h("td", {}, r.usage ? `${r.usage.input_tokens} / ${r.usage.output_tokens}` : ""),
      h("td", {}, r.tenant ?? ""));
  const load = async (after) => {
    if (after) query.set("after", after);
    try {
      const page = await api(`/v1/${params.get("kind") || "responses"}?${query}`, { signal: current.signal });
      body.append(...page.data.map(row));
      if (!page.data.length && !after) {
        body.append(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "Nothing stored matches.")));
      }
      more.hidden = !page.has_more;
      more.onclick = () => load(page.last_id);
    } catch (err) {
      results.append(failure(err) ?? "");
    }
  };
  load(null);
}

async function conversation(id, into) {
  try {
    const conv = await api(`/v1/conversations/${id}`, { signal: current.signal });
    const items = await api(`/v1/conversations/${id}/items?order=asc&limit=100`, { signal: current.signal });
    const del = h("button", { onclick: async () => {
      if (!confirm(`Delete ${id}?`)) return;
      await api(`/v1/conversations/${id}`, { method: "DELETE" });
      location.hash = "#/stored";
    } }, "Delete");
    into.append(h("h3", {}, "Conversation ", h("code", {}, id), " ", del),
      h("div", { class: "muted" }, `created ${when(conv.created_at)}`),
      h("pre", {}, JSON.stringify(items.data, null, 2)));
  } catch (err) {
    into.append(failure(err) ?? "");
  }
}

// ---------------------------------------------------------------- playground

async function playgroundView() {
  const model = h("select", { name: "model", "data-testid": "model" });
  const input = h("textarea", { name: "input", rows: 4, "data-testid": "input" }, "Hello from the playground");
  const tools = h("textarea", { name: "tools", rows: 3, placeholder: '[{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]' });
  const effort = h("select", { name: "effort" }, ["", "minimal", "low", "medium", "high"].map((e) => h("option", { value: e }, e || "default")));
  const streamOn = h("input", { type: "checkbox", name: "stream", checked: true });
  const metadata = h("input", { name: "metadata", placeholder: '{"echo_delay_ms": "20"}', size: 40 });
  const out = h("div");
  const form = h("form", { class: "compose", onsubmit: (e) => { e.preventDefault(); send(); } },
    h("div", { class: "row" }, h("label", {}, "model", model), h("label", {}, "reasoning effort", effort),
      h("label", {}, "stream", streamOn), h("label", {}, "metadata (JSON)", metadata)),
    h("label", {}, "input", input), h("label", {}, "tools (JSON array)", tools),
    h("div", {}, h("button", { type: "submit", "data-testid": "send" }, "Send")));
  view.replaceChildren(h("h2", {}, "Playground"), form, out);
  try {
    const models = await api("/v1/models", { signal: current.signal });
    model.replaceChildren(...models.data.map((m) => h("option", { value: m.id }, m.id)));
  } catch (err) {
    out.append(failure(err) ?? "");
  }

  async function send() {
    out.replaceChildren();
    const body = { model: model.value, input: input.value, stream: streamOn.checked };
    try {
      if (tools.value.trim()) body.tools = JSON.parse(tools.value);
      if (metadata.value.trim()) body.metadata = JSON.parse(metadata.value);
    } catch (err) {
      return out.append(h("div", { class: "error-box" }, `JSON: ${err.message}`));
    }
    if (effort.value) body.reasoning = { effort: effort.value };
    const timeline = new Timeline();
    const line = h("div", { class: "muted" }, "sending…");
    out.append(line, timeline.el);
    const started = performance.now();
    let index = 0;
    let id = null;
    try {
      const whole = await stream("/v1/responses", (name, event) => {
        if (event === "[DONE]") return;
        id ??= event.response?.id;
        timeline.add({ index: index++, t: performance.now() - started, event });
      }, { method: "POST", body, signal: current.signal });
      id ??= whole?.id;
      line.replaceChildren("response ", h("a", { href: `#/run/${id}` }, id));
      // the server's own record of the run: its timeline when not streamed, and the verdict
      const tapped = await api(`/console/api/runs/${id}/events`, { signal: current.signal });
      if (whole) tapped.events.forEach((e) => timeline.add(e));
      timeline.verdict(tapped.verdict);
    } catch (err) {
      out.append(failure(err) ?? "");
    }
  }
}

// ---------------------------------------------------------------- check

function checkView() {
  const url = h("input", { name: "url", size: 40, placeholder: "empty: this server (with your key)" });
  const model = h("input", { name: "model", value: "echo" });
  const remoteKey = h("input", { name: "key", type: "password", placeholder: "that server's key" });
  const out = h("div");
  const form = h("form", { class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    out.replaceChildren(h("p", { class: "muted" }, "running the battery…"));
    try {
      const report = await api("/console/api/check", { method: "POST", signal: current.signal,
        body: { url: url.value || null, model: model.value, key: remoteKey.value || null } });
      out.replaceChildren(checkReport(report));
    } catch (err) {
      out.replaceChildren(failure(err) ?? "");
    }
  } },
    h("label", {}, "URL (…/v1)", url), h("label", {}, "model", model), h("label", {}, "key", remoteKey),
    h("button", { type: "submit" }, "Run check"));
  view.replaceChildren(h("h2", {}, "Check"), form, out);
}

function checkReport(report) {
  return h("div", {},
    h("div", { class: `verdict ${report.passed ? "ok" : "bad"}` },
      `${report.target}: ${report.passed ? "every rule passes" : "some rules fail"}`),
    h("table", { "data-testid": "rules" },
      h("thead", {}, h("tr", {}, ["rule", "", "what it checks", "findings"].map((c) => h("th", {}, c)))),
      h("tbody", {}, report.rules.map((r) => h("tr", {},
        h("td", { class: "mono" }, r.rule), h("td", { class: r.passed ? "pass" : "fail" }, r.passed ? "pass" : "FAIL"),
        h("td", {}, r.description),
        h("td", { class: "mono" }, r.findings.map((f) => h("div", {}, `${f.case} #${f.index}: ${f.message}`))))))),
    h("h3", {}, "Cases"),
    h("ul", {}, report.cases.map((c) => h("li", {},
      h("span", { class: c.skipped ? "muted" : c.passed ? "pass" : "fail" }, c.skipped ? "skipped" : c.passed ? "pass" : "FAIL"),
      ` ${c.name}: ${c.description}`))));
}

// ---------------------------------------------------------------- routing

function route() {
  current.abort();
  current = new AbortController();
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const [, name = "live", id] = path.split("/");
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.view === name);
  }
  say("");
  if (name === "run") return runView(id, params);
  if (name === "response") return responseView(id, params);
  if (name === "stored") return storedView(params);
  if (name === "playground") return playgroundView();
  if (name === "check") return checkView();
  return liveView();
}

document.getElementById("key").value = key.get();
document.getElementById("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  key.set(document.getElementById("key").value.trim());
  watchLive();
  route();
});
window.addEventListener("hashchange", route);
window.addEventListener("pagehide", () => {  // leaving: close the streams (the tap stops)
  live.controller?.abort();
  current.abort();
});
watchLive();
route();
