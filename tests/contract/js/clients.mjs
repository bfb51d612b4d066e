// Runs the real JavaScript clients against a respgate server and prints what they saw as JSON.
// Usage: node clients.mjs <base_url>   (base_url ends in /v1)
import OpenAI from "openai";
import { createOpenAI } from "@ai-sdk/openai";
import { streamText, generateText, tool, jsonSchema } from "ai";

globalThis.AI_SDK_LOG_WARNINGS = false;

const baseURL = process.argv[2];
const out = {};

const client = new OpenAI({ baseURL, apiKey: "unused" });
const stream = client.responses.stream({ model: "echo", input: "hello from js" });
const deltas = [];
stream.on("response.output_text.delta", (e) => deltas.push(e.delta));
const final = await stream.finalResponse();
out.openai_text = { deltas, output_text: final.output_text, status: final.status, usage: final.usage };

const weather = {
  type: "function",
  name: "get_weather",
  description: "Weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  strict: true,
};
const first = await client.responses.create({ model: "echo", input: "Oslo", tools: [weather] });
const call = first.output[0];
const second = await client.responses.create({
  model: "echo",
  tools: [weather],
  input: [
    { role: "user", content: "Oslo" },
    call,
    { type: "function_call_output", call_id: call.call_id, output: "snow" },
  ],
});
out.openai_tools = { call: { type: call.type, name: call.name, arguments: call.arguments }, answer: second.output_text };

try {
  const failing = await client.responses.create({
    model: "echo", input: "a b c d e f", stream: true, metadata: { echo_scenario: "fail" },
  });
  const types = [];
  for await (const e of failing) types.push(e.type);
  out.openai_failure = { raised: false, types };
} catch (err) {
  out.openai_failure = { raised: true, message: String(err.message) };
}

const provider = createOpenAI({ baseURL, apiKey: "unused" });
const result = streamText({ model: provider.responses("echo"), prompt: "hello vercel" });
let text = "";
for await (const piece of result.textStream) text += piece;
out.vercel_text = { text, finishReason: await result.finishReason, usage: await result.usage };

const withTools = await generateText({
  model: provider.responses("echo"),
  prompt: "Lima",
  tools: {
    get_weather: tool({
      description: "Weather for a city",
      inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }),
    }),
  },
});
out.vercel_tools = {
  toolCalls: withTools.toolCalls.map((c) => ({ toolName: c.toolName, input: c.input })),
  finishReason: withTools.finishReason,
};

console.log(JSON.stringify(out));
