// Thin, hand-written helpers over the generated client in ./generated (never edit that by hand:
// `npm run generate` rewrites it from protos/). Everything here is plain @grpc/grpc-js.
import {
  credentials,
  Metadata,
  status as Status,
  type CallOptions,
  type ChannelCredentials,
  type ClientDuplexStream,
  type ClientOptions,
  type ClientUnaryCall,
  type ServiceError,
} from "@grpc/grpc-js";

import {
  PredictionServiceClient,
  type GetServingConfigRequest,
  type PredictBatchResponse,
  type PredictResponse,
  type PredictStreamResponse,
  type GetServingConfigResponse,
} from "./generated/absenteeism/v1/prediction_service";
import { BadRequest } from "./generated/google/rpc/error_details";
import { Status as RpcStatus } from "./generated/google/rpc/status";

export {
  FeatureValue,
  FieldViolation,
  GetServingConfigRequest,
  GetServingConfigResponse,
  PredictBatchRequest,
  PredictBatchResponse,
  PredictionServiceClient,
  PredictionServiceService,
  PredictRequest,
  PredictResponse,
  PredictStreamRequest,
  PredictStreamResponse,
  RecordError,
} from "./generated/absenteeism/v1/prediction_service";
export { RawRecord } from "./generated/absenteeism/v1/raw_record";
export {
  AggregateStatistics,
  CodeFingerprint,
  EvaluationMetrics,
  GoldenRow,
  LinearModel,
  Provenance,
  RowCounts,
  ServingConfig,
} from "./generated/absenteeism/v1/serving_config";
export { BadRequest, BadRequest_FieldViolation } from "./generated/google/rpc/error_details";
export { Status as RpcStatus } from "./generated/google/rpc/status";
// Other data sets' typed contracts, one namespace per proto package: penguins.RawRecord,
// penguins.PredictRequest, penguins.createClient(...). The answers are the messages above.
export * as penguins from "./penguins";

/** The trailer in which gRPC servers send a serialized google.rpc.Status with error details. */
export const STATUS_DETAILS_TRAILER = "grpc-status-details-bin";
export const BAD_REQUEST_TYPE_URL = "type.googleapis.com/google.rpc.BadRequest";

/** A client for `address` (host:port); plaintext unless `creds` says otherwise. */
export function createClient(
  address: string,
  creds: ChannelCredentials = credentials.createInsecure(),
  options: Partial<ClientOptions> = {},
): PredictionServiceClient {
  return new PredictionServiceClient(address, creds, options);
}

/** Options shared by the promise helpers: a deadline in milliseconds from now. */
export interface CallSettings {
  timeoutMs?: number;
}

function deadline(settings: CallSettings): { deadline: Date } {
  return { deadline: new Date(Date.now() + (settings.timeoutMs ?? 10_000)) };
}

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

// The promise helpers take any data set's generated PredictionServiceClient (absenteeism.v1's,
// penguins.v1's, ...): the RPCs are the same, only the request messages (their RawRecord) differ,
// and the request type is the one of the client passed.

export function predict<Req>(
  client: { predict: Unary<Req, PredictResponse> },
  request: NoInfer<Req>,
  settings: CallSettings = {},
): Promise<PredictResponse> {
  return new Promise((resolve, reject) =>
    client.predict(request, new Metadata(), deadline(settings), (err, res) => (err ? reject(err) : resolve(res))),
  );
}

export function predictBatch<Req>(
  client: { predictBatch: Unary<Req, PredictBatchResponse> },
  request: NoInfer<Req>,
  settings: CallSettings = {},
): Promise<PredictBatchResponse> {
  return new Promise((resolve, reject) =>
    client.predictBatch(request, new Metadata(), deadline(settings), (err, res) => (err ? reject(err) : resolve(res))),
  );
}

export function getServingConfig(
  client: { getServingConfig: Unary<GetServingConfigRequest, GetServingConfigResponse> },
  settings: CallSettings = {},
): Promise<GetServingConfigResponse> {
  return new Promise((resolve, reject) =>
    client.getServingConfig({}, new Metadata(), deadline(settings), (err, res) => (err ? reject(err) : resolve(res))),
  );
}

/** Sends every request on one PredictStream call and collects the responses (one per request, in order). */
export function predictStream<Req>(
  client: { predictStream(metadata: Metadata, options?: Partial<CallOptions>): ClientDuplexStream<Req, PredictStreamResponse> },
  requests: Iterable<NoInfer<Req>>,
  settings: CallSettings = {},
): Promise<PredictStreamResponse[]> {
  return new Promise((resolve, reject) => {
    const call = client.predictStream(new Metadata(), deadline(settings));
    const responses: PredictStreamResponse[] = [];
    call.on("data", (response: PredictStreamResponse) => responses.push(response));
    call.on("error", reject);
    call.on("end", () => resolve(responses));
    for (const request of requests) call.write(request);
    call.end();
  });
}

/** True when `err` is a gRPC error (a ServiceError) rather than some other failure. */
export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === "object" && err !== null && "code" in err && "metadata" in err;
}

/** The google.rpc.Status an error carried in its `grpc-status-details-bin` trailer, if any. */
export function rpcStatus(err: ServiceError): RpcStatus | undefined {
  const [raw] = err.metadata?.get(STATUS_DETAILS_TRAILER) ?? [];
  if (raw === undefined) return undefined;
  return RpcStatus.decode(typeof raw === "string" ? Buffer.from(raw, "base64") : raw);
}

/** The google.rpc.BadRequest detail of an INVALID_ARGUMENT error (field violations), if it has one. */
export function badRequest(err: ServiceError): BadRequest | undefined {
  if (err.code !== Status.INVALID_ARGUMENT) return undefined;
  const detail = rpcStatus(err)?.details.find((any) => any.typeUrl === BAD_REQUEST_TYPE_URL);
  return detail === undefined ? undefined : BadRequest.decode(detail.value);
}
