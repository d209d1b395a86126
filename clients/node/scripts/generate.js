#!/usr/bin/env node
// Generates the TypeScript client in src/generated/ from the repo's protos/ with ts-proto.
//
// The one documented command:  npm run generate      (from clients/node/)
// `node scripts/generate.js --out DIR` writes the same files elsewhere (the staleness test uses it).
//
// protoc is grpcio-tools' (python -m grpc_tools.protoc): the npm `grpc-tools` package needs a
// binary download that is not available everywhere. The Python interpreter is $PYTHON, else the
// repo's .venv/bin/python, else python3. It generates every data set's contract under protos/
// (CONTRACT_PACKAGES: absenteeism/v1, whose answers every data set shares, and penguins/v1, whose
// typed RawRecord and PredictionService import them), and also google/rpc/status.proto and google/rpc/error_details.proto (from the googleapis-common-protos
// Python package, not copied into protos/) so that callers can decode the google.rpc.BadRequest
// detail of an INVALID_ARGUMENT answer. Never edit src/generated/ by hand.
"use strict";

const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const NODE_ROOT = path.resolve(__dirname, "..");
const REPO_ROOT = path.resolve(NODE_ROOT, "..", "..");
const PROTO_ROOT = path.join(REPO_ROOT, "protos");
const DEFAULT_OUT = path.join(NODE_ROOT, "src", "generated");
const GOOGLE_RPC_PROTOS = ["google/rpc/status.proto", "google/rpc/error_details.proto"];
// One folder per data set's proto package (its own RawRecord and PredictionService), under protos/.
const CONTRACT_PACKAGES = ["absenteeism/v1", "penguins/v1"];

// ts-proto options: grpc-js service clients; CommonJS-friendly imports; plain numbers for 64-bit
// integers (every uint64 in the contract is a row count, far below 2^53); Timestamp as Date.
const TS_PROTO_OPTIONS = [
  "outputServices=grpc-js",
  "env=node",
  "esModuleInterop=true",
  "forceLong=number",
  "useDate=true",
];

function python() {
  if (process.env.PYTHON) return process.env.PYTHON;
  const venv = path.join(REPO_ROOT, ".venv", "bin", "python");
  return fs.existsSync(venv) ? venv : "python3";
}

function includeDirs(py) {
  // grpc_tools' well-known types (google/protobuf/*.proto) and the folder that holds google/rpc/.
  const script = [
    "import os, grpc_tools, google.rpc.status_pb2 as s",
    "print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))",
    "print(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(s.__file__)))))",
  ].join("\n");
  const [wellKnown, googleapis] = execFileSync(py, ["-c", script], { encoding: "utf8" }).trim().split("\n");
  for (const rel of GOOGLE_RPC_PROTOS) {
    if (!fs.existsSync(path.join(googleapis, rel))) {
      throw new Error(`${rel} not found under ${googleapis}: pip install googleapis-common-protos`);
    }
  }
  return { wellKnown, googleapis };
}

function contractProtos() {
  return CONTRACT_PACKAGES.flatMap((pkg) =>
    fs
      .readdirSync(path.join(PROTO_ROOT, ...pkg.split("/")))
      .filter((name) => name.endsWith(".proto"))
      .sort()
      .map((name) => `${pkg}/${name}`),
  );
}

function listFiles(dir, prefix = "") {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(path.join(dir, entry.name), rel));
    else out.push(rel);
  }
  return out;
}

function generate(outDir) {
  const plugin = path.join(NODE_ROOT, "node_modules", ".bin", "protoc-gen-ts_proto");
  if (!fs.existsSync(plugin)) throw new Error(`${plugin} not found: run npm ci in ${NODE_ROOT}`);
  const py = python();
  const { wellKnown, googleapis } = includeDirs(py);
  // Start from an empty folder so that a removed .proto leaves no stale .ts behind.
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const args = [
    "-m",
    "grpc_tools.protoc",
    `--plugin=protoc-gen-ts_proto=${plugin}`,
    `--ts_proto_out=${outDir}`,
    `--ts_proto_opt=${TS_PROTO_OPTIONS.join(",")}`,
    `-I${PROTO_ROOT}`,
    `-I${wellKnown}`,
    `-I${googleapis}`,
    ...contractProtos(),
    ...GOOGLE_RPC_PROTOS,
  ];
  execFileSync(py, args, { stdio: "inherit" });
  return listFiles(outDir);
}

function main() {
  const argv = process.argv.slice(2);
  let outDir = DEFAULT_OUT;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && argv[i + 1]) outDir = path.resolve(argv[++i]);
    else {
      console.error("usage: node scripts/generate.js [--out DIR]");
      process.exit(2);
    }
  }
  for (const file of generate(outDir)) console.log(path.relative(process.cwd(), path.join(outDir, file)));
}

module.exports = { generate, listFiles, CONTRACT_PACKAGES, DEFAULT_OUT };

if (require.main === module) main();
