"""The absenteeism data set: its raw table, feature module and typed contract (absenteeism.v1)."""

from __future__ import annotations

from pathlib import Path

from absenteeism import absenteeism_schema, features
from absenteeism.data_sets import DataSet
from absenteeism.v1 import prediction_service_pb2, prediction_service_pb2_grpc, raw_record_pb2

DATA_SET = DataSet(
    name="absenteeism",
    table=absenteeism_schema.TABLE,
    table_module=absenteeism_schema,
    features=features,
    records=raw_record_pb2,
    service=prediction_service_pb2,
    service_grpc=prediction_service_pb2_grpc,
    sample_input=Path(__file__).resolve().parent.parent / "etl_job" / "sample_data" / "absenteeism_sample.csv",
)
