// The generated penguins.v1 client against a real server booted on a penguins config: typed
// records (int64, text categories, a bool, a date string, doubles, missing nullable fields) in,
// the framework's answers out. Expected numbers come from the config's golden rows (whose records
// travel as penguins.v1.RawRecord bytes) and from the Python client for the same record.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { credentials, status } from "@grpc/grpc-js";

import {
  badRequest,
  getServingConfig,
  isServiceError,
  penguins,
  predict,
  predictBatch,
  predictStream,
  type ServingConfig,
} from "../src/index";
import { python, REPO_ROOT, startServer, type RunningServer } from "./server";

let server: RunningServer;
let client: penguins.PredictionServiceClient;
let config: ServingConfig;

before(async () => {
  server = await startServer("penguins");
  // straight to the loopback server: never through an http(s)_proxy from the environment
  client = penguins.createClient(server.address, credentials.createInsecure(), { "grpc.enable_http_proxy": 0 });
  config = (await getServingConfig(client, { timeoutMs: 30_000 })).config!;
});

after(async () => {
  client?.close();
  await server?.stop();
});

/** The golden rows with their records decoded as penguins.v1.RawRecord (record_bytes). */
function golden(): { record: penguins.RawRecord; features: number[]; prediction: number }[] {
  return config.goldenRows.map((row) => ({
    record: penguins.RawRecord.decode(row.recordBytes),
    features: row.features,
    prediction: row.prediction,
  }));
}

// A typed record as a caller writes it: a 64-bit sample number, text categories, a bool, a date
// as "YYYY-MM-DD", free Unicode text; culmen length, flipper length and delta 13C are missing
// (nullable: not set, never 0), so the server flags and imputes them.
const RECORD: penguins.RawRecord = {
  sampleNumber: 1_000_000,
  island: "Dream",
  clutchCompletion: false,
  dateEgg: "2009-11-13",
  culmenDepthMm: 17.9,
  sex: "FEMALE",
  delta15N: 9.1,
  comments: "Nest never observed with full clutch — ñ",
};

/** What the Python client (clients.PredictionClient, data_set="penguins") answers for `record`. */
async function pythonPredict(record: penguins.RawRecord): Promise<{ prediction: number; features: Record<string, number> }> {
  const script = [
    "import json, sys",
    "from google.protobuf import json_format",
    "from absenteeism import data_sets",
    "from clients import PredictionClient",
    "record = json_format.Parse(sys.argv[2], data_sets.named('penguins').records.RawRecord())",
    "with PredictionClient(sys.argv[1], insecure=True, data_set='penguins') as client:",
    "    answer = client.predict(record, include_features=True)",
    "print(json.dumps({'prediction': answer.prediction, 'features': answer.features}))",  // repr: exact doubles
  ].join("\n");
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(grpc|https?|all)_proxy$/i.test(key)));
  const json = JSON.stringify(penguins.RawRecord.toJSON(record));
  const { stdout } = await promisify(execFile)(python(), ["-c", script, server.address, json], { cwd: REPO_ROOT, env, timeout: 120_000 });
  return JSON.parse(stdout);
}

async function rejection(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (err) {
    assert.ok(isServiceError(err), `expected a gRPC error, got ${err}`);
    return err;
  }
  assert.fail("the call succeeded; expected INVALID_ARGUMENT");
}

describe("penguins GetServingConfig", () => {
  test("a penguins server serves a penguins config whose golden records are penguins records", () => {
    assert.equal(config.dataset, "penguins");
    assert.ok(config.goldenRows.length > 0);
    for (const row of config.goldenRows) {
      assert.equal(row.record, undefined);
      assert.ok(row.recordBytes.length > 0);
    }
  });
});

describe("penguins Predict", () => {
  test("reproduces every penguins golden row bit for bit from typed records", async () => {
    const rows = golden();
    // the golden records include ones with missing nullable fields
    assert.ok(rows.some((row) => row.record.sex === undefined && row.record.culmenLengthMm === undefined));
    for (const [i, row] of rows.entries()) {
      const response = await predict(client, { record: row.record, includeFeatures: true });
      assert.equal(response.configId, config.contentSha256);
      assert.ok(Object.is(response.prediction, row.prediction), `golden row ${i}: ${response.prediction} != ${row.prediction}`);
      assert.deepEqual(response.features.map((f) => f.name), config.featureNames);
      assert.deepEqual(response.features.map((f) => f.value), row.features);
    }
  });

  test("a typed record with missing nullable fields and a text category gives the Python client's bits", async () => {
    const response = await predict(client, { record: RECORD, includeFeatures: true });
    const features = Object.fromEntries(response.features.map((f) => [f.name, f.value]));
    assert.equal(features["island_dream"], 1);
    assert.equal(features["culmen_length_missing"], 1);
    assert.equal(features["sex_missing"], 0);
    const expected = await pythonPredict(RECORD);
    assert.ok(Object.is(response.prediction, expected.prediction), `${response.prediction} != Python's ${expected.prediction}`);
    assert.deepEqual(features, expected.features);
  });

  test("an unknown island is INVALID_ARGUMENT with a google.rpc.BadRequest naming record.island", async () => {
    const err = await rejection(predict(client, { record: { ...RECORD, island: "Atlantis" }, includeFeatures: false }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    const violations = badRequest(err)!.fieldViolations;
    assert.deepEqual(violations.map((v) => v.field), ["record.island"]);
    assert.match(violations[0].description, /isin\(\['Biscoe', 'Dream', 'Torgersen'\]\)/);
  });
});

describe("penguins PredictBatch", () => {
  test("typed penguins records answer column-wise, in request order, bit for bit", async () => {
    const rows = golden();
    const response = await predictBatch(client, { records: rows.map((r) => r.record), includeFeatures: true });
    assert.equal(response.configId, config.contentSha256);
    assert.deepEqual(response.predictions, rows.map((r) => r.prediction));
    assert.deepEqual(response.featureNames, config.featureNames);
    assert.deepEqual(response.featureValues, rows.flatMap((r) => r.features));
  });

  test("a record with an unknown island fails the batch and is named by its index", async () => {
    const records = golden().map((r) => r.record);
    records[1] = { ...records[1], island: "Atlantis" };
    const err = await rejection(predictBatch(client, { records, includeFeatures: false }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.deepEqual(badRequest(err)!.fieldViolations.map((v) => v.field), ["records[1].island"]);
  });
});

describe("penguins PredictStream", () => {
  test("one answer per typed record, in order; an unknown island gets an error and the stream goes on", async () => {
    const rows = golden();
    const requests: penguins.PredictStreamRequest[] = rows.map((r) => ({ record: r.record, includeFeatures: false }));
    requests.splice(1, 0, { record: { ...RECORD, island: "Atlantis" }, includeFeatures: false });
    const responses = await predictStream(client, requests);
    assert.equal(responses.length, requests.length);
    assert.deepEqual(responses[1].error!.fieldViolations.map((v) => v.field), ["island"]);
    const good = responses.filter((_, i) => i !== 1);
    good.forEach((response, i) => assert.ok(Object.is(response.prediction!.prediction, rows[i].prediction)));
  });
});
