"""A config is served only once verified through the very predictor that will serve it: the boot,
every reload and the supervisor's check before its children start all go through here."""

from __future__ import annotations

from absenteeism import config_io, data_sets
from absenteeism.online.predictor import Predictor
from absenteeism.v1 import serving_config_pb2
from feature_service import predictor_registry
from feature_service.settings import Settings


def load_verified(settings: Settings, data: bytes | None = None
                  ) -> tuple[serving_config_pb2.ServingConfig, Predictor]:
    """Raises config_io.ConfigError unless the config is intact and reproduces its golden rows
    through the very predictor that will serve. `data`: the bytes of --config when already read."""
    config = (config_io.read_config(settings.config) if data is None  # their messages name the file
              else config_io.parse_config(data, settings.config))
    try:
        return config, verified_predictor(config, settings.predictor)
    except config_io.ConfigError as error:
        raise config_io.ConfigError(f"config file {settings.config}: {error}") from None


def activate_data_set_of(settings: Settings, data: bytes) -> data_sets.DataSet:
    """Makes the data set the config in `data` names the one this process serves (every later
    config must be built for it too: config_io.verify_config refuses another)."""
    config = config_io.parse_config(data, settings.config)
    try:
        return data_sets.activate(data_sets.of_config_name(config.dataset))
    except data_sets.UnknownDataSet as error:
        raise config_io.ConfigError(f"config file {settings.config}: {error}: this release cannot serve it") from None


def verified_predictor(config: serving_config_pb2.ServingConfig, name: str) -> Predictor:
    """The `name` predictor built from `config`, once the config has passed every check through it."""
    try:
        predictor = predictor_registry.create(name, config)
    except Exception as error:  # noqa: BLE001 - a config too broken to even build a predictor from
        config_io.verify_config(config)  # gives the precise reason when there is one
        raise config_io.ConfigError(f"cannot build the {name} predictor from the config ({error}): "
                                    "rerun the ETL job") from None
    config_io.verify_config(config, predictor)
    return predictor
