"""The penguins.v1 contract and the framework fields it needs in absenteeism.v1: what the
generated descriptors say (field presence, numbers and types; the service's request and response
types), not what the .proto text looks like."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

from absenteeism.v1 import prediction_service_pb2, serving_config_pb2
from penguins.v1 import penguin_record_pb2, penguin_service_pb2, penguin_service_pb2_grpc
from testkit.contract_docs import proto_field_comments

T = FieldDescriptor
# name, number, type: the Palmer penguins request columns (labels body_mass_g and species are not)
RAW_FIELDS = [
    ("sample_number", 1, T.TYPE_INT64),
    ("island", 2, T.TYPE_STRING),
    ("clutch_completion", 3, T.TYPE_BOOL),
    ("date_egg", 4, T.TYPE_STRING),
    ("culmen_length_mm", 5, T.TYPE_DOUBLE),
    ("culmen_depth_mm", 6, T.TYPE_DOUBLE),
    ("flipper_length_mm", 7, T.TYPE_INT32),
    ("sex", 8, T.TYPE_STRING),
    ("delta_15_n", 9, T.TYPE_DOUBLE),
    ("delta_13_c", 10, T.TYPE_DOUBLE),
    ("comments", 11, T.TYPE_STRING),
]
REQUIRED = {"sample_number", "island", "clutch_completion", "date_egg"}
SERVICE = penguin_service_pb2.DESCRIPTOR.services_by_name["PredictionService"]
FRAMEWORK_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"]


def test_raw_record_fields_in_order_with_their_numbers_and_types():
    fields = penguin_record_pb2.RawRecord.DESCRIPTOR.fields
    assert [(f.name, f.number, f.type) for f in fields] == RAW_FIELDS
    assert penguin_record_pb2.RawRecord.DESCRIPTOR.full_name == "penguins.v1.RawRecord"
    assert not {"body_mass_g", "species"} & {f.name for f in fields}


def test_every_raw_record_field_tracks_presence():
    # a nullable field may be absent, a required one absent is refused: neither reads as 0 or ""
    fields = penguin_record_pb2.RawRecord.DESCRIPTOR.fields
    assert all(f.has_presence for f in fields)
    record = penguin_record_pb2.RawRecord(sample_number=0, island="", clutch_completion=False, delta_13_c=0.0)
    assert [f.name for f, _ in record.ListFields()] == ["sample_number", "island", "clutch_completion", "delta_13_c"]
    assert not record.HasField("culmen_length_mm") and not record.HasField("sex")


def test_raw_record_comments_say_which_fields_are_required():
    comments = proto_field_comments("penguins/v1/penguin_record.proto")
    assert list(comments) == [name for name, _, _ in RAW_FIELDS]
    for name, text in comments.items():
        assert ("required" in text) == (name in REQUIRED) and ("nullable" in text) == (name not in REQUIRED), text


def test_the_service_has_the_framework_services_rpcs_and_streaming():
    assert SERVICE.full_name == "penguins.v1.PredictionService"
    shape = {m.name: (m.client_streaming, m.server_streaming) for m in SERVICE.methods}
    assert shape == {m.name: (m.client_streaming, m.server_streaming) for m in FRAMEWORK_SERVICE.methods}
    assert shape["PredictStream"] == (True, True)


def test_requests_are_penguins_and_answers_are_the_frameworks():
    methods = SERVICE.methods_by_name
    for name in ("Predict", "PredictBatch", "PredictStream"):
        assert methods[name].input_type.full_name == f"penguins.v1.{name}Request"
        assert methods[name].output_type is FRAMEWORK_SERVICE.methods_by_name[name].output_type
    for name in ("GetServingConfig", "GetDriftReport"):
        assert methods[name].input_type is FRAMEWORK_SERVICE.methods_by_name[name].input_type
        assert methods[name].output_type is FRAMEWORK_SERVICE.methods_by_name[name].output_type
    assert all(m.output_type.full_name.startswith("absenteeism.v1.") for m in SERVICE.methods)


def test_requests_carry_penguins_records_at_the_framework_requests_field_numbers():
    for name in ("PredictRequest", "PredictBatchRequest", "PredictStreamRequest"):
        ours = penguin_service_pb2.DESCRIPTOR.message_types_by_name[name]
        theirs = prediction_service_pb2.DESCRIPTOR.message_types_by_name[name]
        assert [(f.name, f.number, f.type, f.is_repeated) for f in ours.fields] == \
            [(f.name, f.number, f.type, f.is_repeated) for f in theirs.fields]
        record = ours.fields_by_number[1]
        assert record.message_type is penguin_record_pb2.RawRecord.DESCRIPTOR


def test_the_grpc_stubs_serve_the_penguins_service():
    assert penguin_service_pb2_grpc.PredictionServiceStub and penguin_service_pb2_grpc.PredictionServiceServicer
    assert callable(penguin_service_pb2_grpc.add_PredictionServiceServicer_to_server)


def test_serving_config_names_its_data_set():
    field = serving_config_pb2.ServingConfig.DESCRIPTOR.fields_by_name["dataset"]
    assert (field.number, field.type, field.has_presence) == (12, T.TYPE_STRING, False)
    assert serving_config_pb2.ServingConfig().dataset == ""  # a config from before data sets: absenteeism


def test_a_golden_row_carries_another_data_sets_record_as_bytes():
    field = serving_config_pb2.GoldenRow.DESCRIPTOR.fields_by_name["record_bytes"]
    assert (field.number, field.type) == (6, T.TYPE_BYTES)
    record = penguin_record_pb2.RawRecord(sample_number=3, island="Dream", clutch_completion=True,
                                          date_egg="2007-11-09", flipper_length_mm=181, comments="Nest ☃")
    row = serving_config_pb2.GoldenRow(record_bytes=record.SerializeToString(deterministic=True), prediction=3750.0)
    parsed = serving_config_pb2.GoldenRow.FromString(row.SerializeToString(deterministic=True))
    assert not parsed.HasField("record")
    assert penguin_record_pb2.RawRecord.FromString(parsed.record_bytes) == record
