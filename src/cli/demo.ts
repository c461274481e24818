/**
 * `npm start`: score a few bundled conversations with the demo model and print them ranked.
 * The demo model (fixtures/models/demo) has random weights; it exists so that the whole
 * pipeline (tokenizer, 12-layer forward pass, score head) runs on a fresh clone with no download.
 */
import { join } from "node:path";
import { RewardModel } from "../model/async-model.js";
import { bestFirst, rankKey } from "../model/rank.js";
import { defineCommand, PACKAGE_ROOT } from "./args.js";
import { MODEL_OPTION } from "./common.js";

export const demo = defineCommand({
  name: "demo",
  summary: "Score a few bundled conversations and print them ranked (the bundled demo model unless --model).",
  usage: "[--model MODEL]",
  options: { model: { ...MODEL_OPTION, default: "the bundled random-weight demo model" } },
  examples: ["gpt2-reward demo", "gpt2-reward demo --model ./reward-model"],
  async run(values) {
    return await runDemo(values.model ?? join(PACKAGE_ROOT, "fixtures", "models", "demo"), values.model === undefined);
  },
});

/** Chatbot exchanges in the format the Chai reward models were trained on. */
export const SAMPLE_CONVERSATIONS = [
  "User: Hi! How was your day?\nBot: It was lovely, thank you for asking! I spent the afternoon reading. How about yours?",
  "User: Hi! How was your day?\nBot: ok",
  "User: Can you tell me a joke?\nBot: Why did the scarecrow win an award? Because he was outstanding in his field!",
  "User: Can you tell me a joke?\nBot: No.",
  "User: I'm feeling a bit down today.\nBot: I'm sorry to hear that. Do you want to talk about what's on your mind? I'm here to listen.",
  "User: I'm feeling a bit down today.\nBot: Whatever. Let's talk about something else.",
  "User: What's your favourite food?\nBot: I'd have to say fresh pasta with basil and tomatoes 🍝 What about you?",
  "User: Où est la bibliothèque ?\nBot: Elle est juste à côté de la gare, vous ne pouvez pas la manquer !",
];

export async function runDemo(modelPath: string, isBundled: boolean): Promise<number> {
  const t0 = performance.now();
  const model = await RewardModel.load(modelPath);
  const loadMs = performance.now() - t0;
  const t1 = performance.now();
  const results = await model.score(SAMPLE_CONVERSATIONS);
  await model.close();
  const scoreMs = performance.now() - t1;
  // The one ranking rule (src/model/rank.ts): a one-label model's logit, or P(last label).
  const key = rankKey(model.labels, undefined, "rank --rank-by");
  const rewards = results.map((r) => key.value(r.logits));
  const ranked = bestFirst(rewards).map((i) => ({ i, reward: rewards[i], tokens: results[i].tokens }));

  const { n_layer, n_embd, n_head, num_labels } = model.config;
  const out: string[] = [];
  out.push(`gpt2-reward demo: ${SAMPLE_CONVERSATIONS.length} conversations scored by ${modelPath}`);
  out.push(`model: GPT-2, ${n_layer} layers, n_embd ${n_embd}, ${n_head} heads, ${num_labels} label(s); loaded in ${loadMs.toFixed(0)} ms, scored in ${scoreMs.toFixed(0)} ms`);
  if (isBundled) {
    out.push("");
    out.push("NOTE: the bundled demo model has RANDOM weights, so this ranking means nothing. It shows the");
    out.push("pipeline working end to end; its logits match Hugging Face transformers (see test/model/golden.test.ts).");
    out.push("For real scores, point --model at a real checkpoint, e.g. a folder holding config.json and");
    out.push("model.safetensors or pytorch_model.bin of ChaiML/gpt2_base_retry_and_continue_5m_reward_model:");
    out.push("  npx gpt2-reward demo --model /path/to/reward-model");
    out.push("  npx gpt2-reward score --model /path/to/reward-model $'User: hi\\nBot: hello!'");
  }
  out.push("");
  out.push(`ranked by ${key.describe}`);
  out.push("");
  out.push(` rank  ${(model.config.num_labels === 1 ? "reward" : `P(${model.config.labels[model.config.labels.length - 1]})`).slice(0, 10).padEnd(10)}  tokens  conversation`);
  ranked.forEach((r, rank) => {
    const text = SAMPLE_CONVERSATIONS[r.i].replace(/\n/g, " ⏎ ");
    out.push(`${String(rank + 1).padStart(5)}  ${r.reward.toFixed(6).padStart(10)}  ${String(r.tokens).padStart(6)}  ${text.length > 90 ? text.slice(0, 87) + "..." : text}`);
  });
  process.stdout.write(out.join("\n") + "\n");
  return 0;
}
