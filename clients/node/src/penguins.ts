// penguins.v1, the Palmer penguins data set's own contract: its typed RawRecord and the
// penguins.v1.PredictionService client whose requests carry it. The answers (PredictResponse,
// ServingConfig, ...) are absenteeism.v1's, shared by every data set, and the promise helpers of
// ./index (predict, predictBatch, predictStream, getServingConfig) take this client as well.
// Use it as `import { penguins } from "absenteeism-client"`: penguins.createClient(address), ...
import { credentials, type ChannelCredentials, type ClientOptions } from "@grpc/grpc-js";

import { PredictionServiceClient } from "./generated/penguins/v1/penguin_service";

export {
  PredictBatchRequest,
  PredictionServiceClient,
  PredictionServiceService,
  PredictRequest,
  PredictStreamRequest,
} from "./generated/penguins/v1/penguin_service";
export { RawRecord } from "./generated/penguins/v1/penguin_record";

/** The gRPC service a penguins server serves (a server booted on a penguins config). */
export const SERVICE_NAME = "penguins.v1.PredictionService";

/** A penguins.v1.PredictionService client for `address` (host:port); plaintext unless `creds` says otherwise. */
export function createClient(
  address: string,
  creds: ChannelCredentials = credentials.createInsecure(),
  options: Partial<ClientOptions> = {},
): PredictionServiceClient {
  return new PredictionServiceClient(address, creds, options);
}
