// The generated Node client against a real server: every RPC, and the rich error details.
// The expected numbers come from the server's own config: its golden rows carry the features and
// prediction the ETL job computed for each record, so every answer is checked bit for bit.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { credentials, status } from "@grpc/grpc-js";

import {
  badRequest,
  createClient,
  getServingConfig,
  isServiceError,
  predict,
  predictBatch,
  predictStream,
  rpcStatus,
  type GoldenRow,
  type PredictionServiceClient,
  type RawRecord,
  type ServingConfig,
} from "../src/index";
import { startServer, type RunningServer } from "./server";

let server: RunningServer;
let client: PredictionServiceClient;
let config: ServingConfig;

before(async () => {
  server = await startServer();
  // straight to the loopback server: never through an http(s)_proxy from the environment
  client = createClient(server.address, credentials.createInsecure(), { "grpc.enable_http_proxy": 0 });
  config = (await getServingConfig(client, { timeoutMs: 30_000 })).config!;
});

after(async () => {
  client?.close();
  await server?.stop();
});

function golden(): GoldenRow[] {
  return config.goldenRows;
}

function withField(record: RawRecord, changes: Partial<RawRecord>): RawRecord {
  return { ...record, ...changes };
}

function without(record: RawRecord, field: keyof RawRecord): RawRecord {
  const copy = { ...record };
  delete copy[field];
  return copy;
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

describe("GetServingConfig", () => {
  test("returns the sealed config the server verified at boot", () => {
    assert.match(config.contentSha256, /^[0-9a-f]{64}$/);
    assert.ok(config.featureNames.length > 0);
    assert.equal(config.model!.coefficients.length, config.featureNames.length);
    assert.ok(config.statistics!.values["age_std_dev"].scalar! > 0);  // aggregates travel by name
    assert.ok(config.statistics!.rowCount > 0);
    assert.ok(config.goldenRows.length > 0);
    for (const row of config.goldenRows) assert.equal(row.features.length, config.featureNames.length);
    assert.ok(config.provenance!.createdAt instanceof Date);
  });
});

describe("Predict", () => {
  test("reproduces every golden row bit for bit", async () => {
    for (const row of golden()) {
      const response = await predict(client, { record: row.record, includeFeatures: true });
      assert.equal(response.configId, config.contentSha256);
      assert.ok(Object.is(response.prediction, row.prediction), `row ${row.sourceRow}: ${response.prediction} != ${row.prediction}`);
      assert.deepEqual(
        response.features.map((f) => f.name),
        config.featureNames,
      );
      assert.deepEqual(
        response.features.map((f) => f.value),
        row.features,
      );
    }
  });

  test("leaves the features out unless asked", async () => {
    const row = golden()[0];
    const response = await predict(client, { record: row.record, includeFeatures: false });
    assert.deepEqual(response.features, []);
    assert.ok(Object.is(response.prediction, row.prediction));
  });

  test("an out-of-range field is INVALID_ARGUMENT with a google.rpc.BadRequest naming it", async () => {
    const err = await rejection(predict(client, { record: withField(golden()[0].record!, { age: 5 }), includeFeatures: false }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    const detail = badRequest(err);
    assert.ok(detail, "no google.rpc.BadRequest in grpc-status-details-bin");
    assert.deepEqual(
      detail.fieldViolations.map((v) => v.field),
      ["record.age"],
    );
    assert.match(detail.fieldViolations[0].description, /in_range\(16, 100\)/);
    // the trailer's google.rpc.Status agrees with the call's own status
    const rpc = rpcStatus(err)!;
    assert.equal(rpc.code, status.INVALID_ARGUMENT);
    assert.equal(rpc.message, err.details);
  });

  test("a missing field is refused (proto3 optional: unset is not zero)", async () => {
    const err = await rejection(predict(client, { record: without(golden()[0].record!, "weight"), includeFeatures: false }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    const violations = badRequest(err)!.fieldViolations;
    assert.deepEqual(
      violations.map((v) => v.field),
      ["record.weight"],
    );
    assert.match(violations[0].description, /required/);
  });

  test("a field set to zero is a value, not a missing field", async () => {
    // reason_for_absence 0 is valid (no reason recorded); a proto3 `optional` 0 is sent on the wire
    const response = await predict(client, { record: withField(golden()[0].record!, { reasonForAbsence: 0 }), includeFeatures: true });
    const value = (name: string) => {
      const feature = response.features.find((f) => f.name === name);
      assert.ok(feature, `no feature ${name}`);
      return feature.value;
    };
    assert.equal(value("reason_unrecorded"), 1);
    assert.equal(value("reason_is_disease"), 0);
    assert.ok(Number.isFinite(response.prediction));
  });
});

describe("PredictBatch", () => {
  test("answers column-wise, in request order, bit for bit", async () => {
    const rows = golden();
    const response = await predictBatch(client, { records: rows.map((r) => r.record!), includeFeatures: true });
    assert.equal(response.configId, config.contentSha256);
    assert.deepEqual(
      response.predictions,
      rows.map((r) => r.prediction),
    );
    assert.deepEqual(response.featureNames, config.featureNames);
    assert.deepEqual(
      response.featureValues,
      rows.flatMap((r) => r.features),
    );
  });

  test("one bad record fails the call and is named by its index", async () => {
    const records = golden().map((r) => r.record!);
    records[2] = withField(records[2], { monthOfAbsence: 13 });
    const err = await rejection(predictBatch(client, { records, includeFeatures: false }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      badRequest(err)!.fieldViolations.map((v) => v.field),
      ["records[2].month_of_absence"],
    );
  });
});

describe("PredictStream", () => {
  test("one answer per record, in order; a bad record gets an error and the stream goes on", async () => {
    const rows = golden();
    const requests = rows.map((r) => ({ record: r.record, includeFeatures: true }));
    requests.splice(1, 0, { record: withField(rows[0].record!, { age: 5 }), includeFeatures: true });
    requests.splice(3, 0, { record: without(rows[0].record!, "height"), includeFeatures: true });
    const responses = await predictStream(client, requests);
    assert.equal(responses.length, requests.length);

    assert.equal(responses[1].prediction, undefined);
    assert.deepEqual(
      responses[1].error!.fieldViolations.map((v) => [v.field, v.rule]),
      [["age", "in_range(16, 100)"]],
    );
    assert.equal(responses[3].prediction, undefined);
    assert.deepEqual(
      responses[3].error!.fieldViolations.map((v) => [v.field, v.rule]),
      [["height", "required"]],
    );

    const good = responses.filter((_, i) => i !== 1 && i !== 3);
    good.forEach((response, i) => {
      assert.equal(response.error, undefined);
      assert.ok(Object.is(response.prediction!.prediction, rows[i].prediction));
      assert.deepEqual(
        response.prediction!.features.map((f) => f.value),
        rows[i].features,
      );
      assert.equal(response.prediction!.configId, config.contentSha256);
    });
  });
});

describe("example program", () => {
  test("examples/predict runs against the server", async () => {
    const script = path.join(__dirname, "..", "examples", "predict.js");
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(grpc|https?|all)_proxy$/i.test(key)));
    const { stdout } = await promisify(execFile)(process.execPath, [script, "--address", server.address], { env, timeout: 60_000 });
    assert.match(stdout, /config [0-9a-f]{12}/);
    assert.match(stdout, /prediction: -?\d+\.\d+ hours/);
    assert.match(stdout, /INVALID_ARGUMENT: record\.age: /);
  });
});
