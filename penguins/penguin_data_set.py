"""The Palmer penguins data set: its raw table, feature module and typed contract (penguins.v1)."""

from __future__ import annotations

from pathlib import Path

from absenteeism.data_sets import DataSet
from penguins import penguin_features, penguin_schema
from penguins.v1 import penguin_record_pb2, penguin_service_pb2, penguin_service_pb2_grpc

DATA_SET = DataSet(
    name="penguins",
    table=penguin_schema.TABLE,
    table_module=penguin_schema,
    features=penguin_features,
    records=penguin_record_pb2,
    service=penguin_service_pb2,
    service_grpc=penguin_service_pb2_grpc,
    sample_input=Path(__file__).resolve().parent / "data" / "penguins-raw.csv",
)
