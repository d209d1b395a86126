// Example: predict absenteeism hours for one raw record from Node.js, then show how a refused
// record reads (INVALID_ARGUMENT with a google.rpc.BadRequest detail).
//
//   npm run build && node dist/examples/predict.js --address 127.0.0.1:50051
//   (or: ABSENTEEISM_SERVER_ADDRESS=127.0.0.1:50051 npm run example)
import { status } from "@grpc/grpc-js";

import { badRequest, createClient, getServingConfig, isServiceError, predict, type RawRecord } from "../src/index";

// The first record of the UCI "Absenteeism at work" data set. Every field must be set: an unset
// field is refused, never read as 0.
const RECORD: RawRecord = {
  id: 11,
  reasonForAbsence: 26,
  monthOfAbsence: 7,
  dayOfTheWeek: 3,
  seasons: 1,
  transportationExpense: 289,
  distanceFromResidenceToWork: 36,
  serviceTime: 13,
  age: 33,
  workLoadAveragePerDay: 239.554,
  hitTarget: 97,
  disciplinaryFailure: 0,
  education: 1,
  son: 2,
  socialDrinker: 1,
  socialSmoker: 0,
  pet: 1,
  weight: 90,
  height: 172,
  bodyMassIndex: 30,
};

function address(argv: string[]): string {
  const i = argv.indexOf("--address");
  if (i >= 0 && argv[i + 1]) return argv[i + 1];
  return process.env.ABSENTEEISM_SERVER_ADDRESS ?? "127.0.0.1:50051";
}

async function main(): Promise<void> {
  const client = createClient(address(process.argv.slice(2)));
  try {
    const { config } = await getServingConfig(client);
    console.log(`serving config ${config!.contentSha256.slice(0, 12)} (${config!.model!.kind}, ${config!.featureNames.length} features)`);

    const response = await predict(client, { record: RECORD, includeFeatures: true });
    console.log(`prediction: ${response.prediction.toFixed(3)} hours`);
    for (const feature of response.features) console.log(`  ${feature.name} = ${feature.value}`);

    try {
      await predict(client, { record: { ...RECORD, age: 5 }, includeFeatures: false });
      console.log("unexpected: a record with age 5 was accepted");
      process.exitCode = 1;
    } catch (err) {
      if (!isServiceError(err) || err.code !== status.INVALID_ARGUMENT) throw err;
      for (const violation of badRequest(err)?.fieldViolations ?? []) {
        console.log(`INVALID_ARGUMENT: ${violation.field}: ${violation.description}`);
      }
    }
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(isServiceError(err) ? `${status[err.code]}: ${err.details}` : err);
  process.exitCode = 1;
});
