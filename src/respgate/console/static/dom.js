// Small helpers: element building, the API key, JSON and SSE over fetch (EventSource cannot
// send an Authorization header).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child != null) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const key = {
  get: () => localStorage.getItem("respgate-key") || "",
  set: (value) => localStorage.setItem("respgate-key", value),
};

export function headers(extra = {}) {
  const k = key.get();
  return { ...(k ? { authorization: `Bearer ${k}` } : {}), ...extra };
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: headers(body ? { "content-type": "application/json" } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// Read an SSE body: calls onFrame(eventName, data) per frame; data is parsed JSON ("[DONE]"
// stays a string). Resolves at the end of the stream.
export async function readSSE(response, onFrame) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      const text = data.join("\n");
      onFrame(name, text === "[DONE]" ? text : JSON.parse(text));
    }
  }
}

export async function stream(path, onFrame, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: headers(body ? { "content-type": "application/json" } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  if (!(r.headers.get("content-type") || "").startsWith("text/event-stream")) return r.json();
  await readSSE(r, onFrame);
  return null;
}

export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) : "";
}

export function ms(value) {
  return value == null ? "" : `${Math.round(value)} ms`;
}
