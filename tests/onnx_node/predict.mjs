// An exported revsent package on onnxruntime-node, with nothing of revsent's: the ids of its
// tokenizer.json in, probabilities out.
//   node predict.mjs PACKAGE IDS.json OUT.json
// IDS.json: {"ids": [[...], ...]}, one list of token ids per review (Hugging Face tokenizers' ids,
// unknown words as [UNK]); OUT.json gets {"probabilities": [[...], ...], "classes": [...]}.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";

const [pkg, idsPath, outPath] = process.argv.slice(2);
const { ids } = JSON.parse(readFileSync(idsPath, "utf8"));
const session = await ort.InferenceSession.create(join(pkg, "model.onnx"));
const rows = ids.length;
const width = Math.max(1, ...ids.map((row) => row.length));
const tokens = new BigInt64Array(rows * width);  // right-padded with 0
ids.forEach((row, b) => row.forEach((id, t) => { tokens[b * width + t] = BigInt(id); }));
const lengths = BigInt64Array.from(ids.map((row) => BigInt(row.length)));
const out = await session.run({
  tokens: new ort.Tensor("int64", tokens, [rows, width]),
  lengths: new ort.Tensor("int64", lengths, [rows]),
});
const proba = out.probabilities;
const classes = proba.dims[1];
const probabilities = [];
for (let b = 0; b < rows; b++) probabilities.push(Array.from(proba.data.slice(b * classes, (b + 1) * classes)));
const config = JSON.parse(readFileSync(join(pkg, "config.json"), "utf8"));
writeFileSync(outPath, JSON.stringify({ probabilities, classes: config.classes }));
