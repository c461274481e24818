/**
 * The OpenAPI document, served where TEI serves its own (GET /api-doc/openapi.json): TEI's
 * request and response shapes for the routes we share, plus OpenRLHF's /get_reward and our
 * /score and /rank.
 */
const errorBody = { type: "object", required: ["error", "error_type"], properties: { error: { type: "string" }, error_type: { type: "string", enum: ["Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"] } } };
const truncation = {
  truncate: { type: "boolean", nullable: true, description: "default: the server's --auto-truncate (true)" },
  truncation_direction: { type: "string", enum: ["Left", "Right"], description: "default Left here (the model card's side; TEI's default is Right)" },
  raw_scores: { type: "boolean", default: false },
};
const prediction = { type: "object", required: ["score", "label"], properties: { score: { type: "number" }, label: { type: "string" } } };
const errors = Object.fromEntries(
  [["400", "Empty input"], ["413", "Payload too large"], ["422", "Validation or tokenizer error"], ["424", "Backend error"], ["429", "Model is overloaded"], ["503", "Loading or shutting down"]]
    .map(([code, description]) => [code, { description, content: { "application/json": { schema: errorBody } } }]),
);
const json = (schema: object) => ({ content: { "application/json": { schema } } });
const post = (summary: string, request: object, response: object) => ({
  post: { summary, requestBody: { required: true, ...json(request) }, responses: { "200": { description: "OK", ...json(response) }, ...errors } },
});

export function openApiDocument(version: string): object {
  return {
    openapi: "3.0.3",
    info: { title: "gpt2-reward", version, description: "GPT-2 reward models, Text Embeddings Inference–compatible" },
    paths: {
      "/predict": post("Scores of every label, sorted", {
        type: "object", required: ["inputs"],
        properties: { inputs: { oneOf: [{ type: "string" }, { type: "array", items: { type: "string" }, minItems: 1, maxItems: 2 }, { type: "array", items: { type: "array", items: { type: "string" }, minItems: 1, maxItems: 2 } }] }, ...truncation },
      }, { oneOf: [{ type: "array", items: prediction }, { type: "array", items: { type: "array", items: prediction } }] }),
      "/rerank": post("Texts ranked against a query (one-label models)", {
        type: "object", required: ["query", "texts"],
        properties: { query: { type: "string" }, texts: { type: "array", items: { type: "string" } }, return_text: { type: "boolean", default: false }, ...truncation },
      }, { type: "array", items: { type: "object", required: ["index", "score"], properties: { index: { type: "integer" }, text: { type: "string" }, score: { type: "number" } } } }),
      "/get_reward": post("OpenRLHF's remote reward model", {
        type: "object", required: ["query"], properties: { query: { type: "array", items: { type: "string" } } },
      }, { type: "object", properties: { rewards: { type: "array", items: { type: "number" } }, scores: { type: "array", items: { type: "number" } }, extra_logs: { type: "object" } } }),
      "/score": {
        post: {
          summary: "What `gpt2-reward score` writes, one JSON line per input",
          requestBody: { required: true, ...json({ type: "object", properties: { texts: { type: "array", items: { type: "string" } }, ids: { type: "array", items: { type: "array", items: { type: "integer" } } } } }) },
          responses: { "200": { description: "One JSON line per input, in order", content: { "application/x-ndjson": { schema: { type: "string" } } } }, ...errors },
        },
      },
      "/rank": post("Best-of-N: each reply scored as context + reply", {
        type: "object", required: ["context", "replies"],
        properties: { context: { type: "string" }, replies: { type: "array", items: { type: "string" } }, label: { oneOf: [{ type: "string" }, { type: "integer" }] }, pairwise: { type: "boolean" } },
      }, { type: "object", properties: { by: { type: "string" }, scores: { type: "array", items: { type: "number" } }, order: { type: "array", items: { type: "integer" } }, best: { type: "integer" }, results: { type: "array" }, preferences: { type: "array" } } }),
      "/health": { get: { summary: "200 when the model is loaded and the server is not shutting down", responses: { "200": { description: "Healthy" }, "503": { description: "Unhealthy", ...json(errorBody) } } } },
      "/info": { get: { summary: "Model and server settings", responses: { "200": { description: "OK", ...json({ type: "object" }) } } } },
      "/metrics": { get: { summary: "Prometheus metrics", responses: { "200": { description: "OK", content: { "text/plain": { schema: { type: "string" } } } } } } },
    },
  };
}
