// src/generated/ must be exactly what `npm run generate` makes from protos/ today (every data set's
// contract: absenteeism.v1 and penguins.v1).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

const NODE_ROOT = path.resolve(__dirname, "..", "..");
const COMMITTED = path.join(NODE_ROOT, "src", "generated");

function listFiles(dir: string, prefix = ""): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      return entry.isDirectory() ? listFiles(path.join(dir, entry.name), rel) : [rel];
    })
    .sort();
}

test("the committed generated client is up to date with protos/ (else: npm run generate)", () => {
  const fresh = fs.mkdtempSync(path.join(os.tmpdir(), "absenteeism-ts-gen-"));
  try {
    execFileSync(process.execPath, [path.join(NODE_ROOT, "scripts", "generate.js"), "--out", fresh], { stdio: "pipe" });
    const files = listFiles(fresh);
    // every data set's contract (penguins.v1 imports absenteeism.v1's answers), and google.rpc
    for (const file of [
      "absenteeism/v1/prediction_service.ts",
      "absenteeism/v1/raw_record.ts",
      "penguins/v1/penguin_record.ts",
      "penguins/v1/penguin_service.ts",
      "google/rpc/error_details.ts",
    ]) {
      assert.ok(files.includes(file), `${file} was not generated`);
    }
    assert.deepEqual(listFiles(COMMITTED), files, "generated file list differs: run npm run generate");
    for (const file of files) {
      const want = fs.readFileSync(path.join(fresh, file), "utf8");
      const have = fs.readFileSync(path.join(COMMITTED, file), "utf8");
      assert.ok(have === want, `src/generated/${file} is stale: run npm run generate`);
    }
  } finally {
    fs.rmSync(fresh, { recursive: true, force: true });
  }
});
