"""What answers a call: one verified config and the predictor built from it, as one immutable value.

A reload builds a whole new `Serving` and swaps the one reference in `ServingState`. A call reads
that reference once and uses only what it got, so its response never mixes two configs, and the
`config_id` it carries names the config that computed it. (Reading or rebinding an attribute is one
step under the GIL: there is no moment at which a reader sees half a swap.)
"""

from __future__ import annotations

from dataclasses import dataclass

from absenteeism.online.predictor import Predictor
from absenteeism.v1 import serving_config_pb2
from feature_service.monitoring.drift_window import Monitor


@dataclass(frozen=True)
class Serving:
    config: serving_config_pb2.ServingConfig  # never modified once here
    predictor: Predictor  # built from `config` (and verified through its golden rows)
    config_id: str
    feature_names: tuple[str, ...]
    drift: Monitor  # this config's drift window: a new config starts an empty one
    class_labels: tuple[str, ...] = ()  # a classifier's, in index order; empty for a regressor

    @classmethod
    def of(cls, config: serving_config_pb2.ServingConfig, predictor: Predictor, drift: Monitor) -> Serving:
        return cls(config, predictor, config.content_sha256, tuple(config.feature_names), drift,
                   tuple(config.onnx_model.class_labels))


class ServingState:
    """The one mutable reference: `current` is the Serving that answers new calls."""

    def __init__(self, serving: Serving):
        self.current = serving

    def swap(self, serving: Serving) -> Serving:
        """Makes `serving` current for every call that starts from now on; returns the previous one
        (calls that already read it finish with it)."""
        previous, self.current = self.current, serving
        return previous
