// One response's event timeline: each event with its index, sequence number and time offset,
// and beside it the readable output (text deltas joined, tool calls with their arguments as
// they fill, reasoning dimmed, usage, the terminal event). Fed entry by entry, so a stream
// is shown as it arrives; `verdict()` marks the checker's violations at their events.
import { h } from "./dom.js";

const TERMINAL = new Set(["response.completed", "response.incomplete", "response.failed"]);

function detail(event) {
  if (typeof event.delta === "string") return JSON.stringify(event.delta);
  if (event.type === "error") return `${event.code}: ${event.message}`;
  if (event.item) return `${event.item.type} ${event.item.id ?? ""}`;
  if (event.response) return `status ${event.response.status}`;
  return "";
}

export class Timeline {
  constructor() {
    this.rows = h("tbody");
    this.output = h("div", { class: "output" });
    this.footer = h("div", { class: "terminal" });
    this.verdictBox = h("div", { class: "verdict pending", "data-testid": "verdict" },
      "checker: waiting for the end of the stream");
    this.items = new Map(); // output_index -> {box, text}
    this.rowByIndex = [];
    this.el = h("div", { class: "timeline" },
      this.verdictBox,
      h("div", { class: "split" },
        h("div", {},
          h("h3", {}, "Output"),
          h("div", { class: "readable", "data-testid": "readable" }, this.output, this.footer)),
        h("div", {},
          h("h3", {}, "Events"),
          h("div", { class: "events" },
            h("table", {},
              h("thead", {}, h("tr", {}, ["#", "seq", "+ms", "type", ""].map((c) => h("th", {}, c)))),
              this.rows)))));
  }

  add({ index, t, event }) {
    const row = h("tr", { class: event.type.endsWith(".delta") ? "delta" : "", "data-index": index },
      h("td", {}, String(index)),
      h("td", {}, String(event.sequence_number ?? "")),
      h("td", {}, t == null ? "" : t.toFixed(1)),
      h("td", { class: "type mono" }, event.type),
      h("td", { class: "mono" }, detail(event).slice(0, 160)));
    if (event.type === "error" || event.type === "response.failed") row.classList.add("error-event");
    this.rowByIndex[index] = row;
    this.rows.append(row);
    this.read(event);
  }

  item(index, type) {
    let found = this.items.get(index);
    if (!found) {
      const text = h("div", { class: "text" });
      const label = h("div", { class: "label" }, type);
      const box = h("div", { class: `item ${type}`, "data-testid": `item-${type}` }, label, text);
      found = { box, text, label };
      this.items.set(index, found);
      this.output.append(box);
    }
    return found;
  }

  read(event) {
    const at = event.output_index;
    switch (event.type) {
      case "response.output_item.added": {
        const it = event.item;
        const shown = this.item(at, it.type);
        if (it.type === "function_call") shown.label.textContent = `function_call ${it.name}(…)`;
        break;
      }
      case "response.output_text.delta":
      case "response.refusal.delta":
      case "response.reasoning_text.delta":
      case "response.reasoning.delta":
      case "response.reasoning_summary_text.delta":
      case "response.function_call_arguments.delta":
      case "response.custom_tool_call_input.delta": {
        const kind = event.type.includes("reasoning") ? "reasoning"
          : event.type.includes("refusal") ? "refusal" : null;
        const shown = this.item(at, kind ?? "message");
        if (kind) shown.box.classList.add(kind);
        shown.text.append(event.delta);
        break;
      }
      case "error":
        this.footer.append(h("div", { class: "error-box", "data-testid": "error" },
          `error ${event.code}: ${event.message}`));
        break;
      default:
        if (TERMINAL.has(event.type)) this.end(event.response);
    }
  }

  end(response) {
    const usage = response.usage;
    const tokens = usage ? ` · ${usage.input_tokens} in / ${usage.output_tokens} out tokens` : "";
    this.footer.append(h("div", { class: `status-${response.status}`, "data-testid": "terminal" },
      `${response.status}${tokens}`));
  }

  verdict(verdict) {
    const box = this.verdictBox;
    box.replaceChildren();
    if (!verdict.checked) {
      box.className = "verdict pending";
      box.append(`checker: not run (${verdict.reason})`);
      return;
    }
    const bad = verdict.violations;
    box.className = `verdict ${bad.length ? "bad" : "ok"}`;
    box.append(bad.length ? `checker: ${bad.length} violation(s)` : "checker: the stream passes every rule");
    for (const v of bad) {
      box.append(h("div", { class: "mono" }, `[${v.rule}] ${v.index >= 0 ? `#${v.index}` : "end"}: ${v.message}`));
      const row = this.rowByIndex[v.index];
      if (row) {
        row.classList.add("violation");
        row.title = `${v.rule}: ${v.message}`;
      }
    }
  }
}
