"""ServingConfig sealing, atomic writing, reading and verification; the model math."""

from __future__ import annotations

import os

import numpy as np
import pytest

from absenteeism import config_io
from absenteeism.dataset import atomic
from absenteeism.model import predict_linear
from absenteeism.online.reference import ReferencePredictor


def copy(config):
    clone = config_io.ServingConfig()
    clone.CopyFrom(config)
    return clone


def test_a_sealed_config_verifies_with_its_golden_rows(config):
    assert len(config.golden_rows) >= 5
    config_io.verify_config(config, ReferencePredictor(config))


def test_write_then_read_round_trips(config, tmp_path):
    path = config_io.write_config(config, tmp_path)
    assert config_io.read_config(path) == config
    assert '"age_std_dev"' in (tmp_path / config_io.CONFIG_JSON_FILE).read_text()


@pytest.mark.parametrize("mutate,message", [
    (lambda c: setattr(c.statistics.values["age_mean"], "scalar", 1.0), "does not match its recorded digest"),
    (lambda c: c.ClearField("content_sha256"), "does not match its recorded digest"),
])
def test_tampering_is_detected(config, mutate, message):
    tampered = copy(config)
    mutate(tampered)
    with pytest.raises(config_io.ConfigError, match=message):
        config_io.verify_config(tampered)


def _changed(message, field) -> None:
    """Changes `field` of `message` so that its serialization changes, whatever the field's kind."""
    value = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_type = field.message_type.fields_by_name["key"].type
        key = "added_by_the_test" if key_type == field.TYPE_STRING else 987654
        entry_value = field.message_type.fields_by_name["value"]
        if entry_value.message_type is not None:
            value[key].SetInParent()
        else:
            value[key] = value.get(key, 0) + 1 if entry_value.type != field.TYPE_STRING else "x"
    elif field.is_repeated:
        if len(value):
            del value[-1]
        elif field.message_type is not None:
            value.add()
        else:
            value.append(b"x" if field.type == field.TYPE_BYTES else "x" if field.type == field.TYPE_STRING else 1)
    elif field.message_type is not None:
        if message.HasField(field.name):
            message.ClearField(field.name)
        else:
            value.SetInParent()
    elif field.type == field.TYPE_STRING:
        setattr(message, field.name, value + "x")
    elif field.type == field.TYPE_BYTES:
        setattr(message, field.name, value + b"x")
    elif field.type == field.TYPE_BOOL:
        setattr(message, field.name, not value)
    else:
        setattr(message, field.name, value + 1)


TOP_LEVEL_FIELDS = [f for f in config_io.ServingConfig.DESCRIPTOR.fields if f.name != "content_sha256"]


@pytest.mark.parametrize("field", TOP_LEVEL_FIELDS, ids=[f.name for f in TOP_LEVEL_FIELDS])
def test_the_digest_covers_every_field(config, field):
    """Generated from the descriptor, so that a field added to ServingConfig is covered too: any
    edit of it without resealing changes the digest and the config is refused."""
    edited = copy(config)
    _changed(edited, field)
    assert edited.SerializeToString(deterministic=True) != config.SerializeToString(deterministic=True)
    assert config_io.content_digest(edited) != config.content_sha256
    with pytest.raises(config_io.ConfigError):
        config_io.verify_config(edited)
    if field.name != "format_version":  # checked first: its own message
        with pytest.raises(config_io.ConfigError, match="does not match its recorded digest"):
            config_io.verify_config(edited)


@pytest.mark.parametrize("mutate,message", [
    (lambda c: setattr(c, "format_version", 99), "format version 99"),
    (lambda c: setattr(c.provenance.code, "feature_module_sha256", "0" * 64), "different feature module"),
    (lambda c: setattr(c.provenance.code, "raw_schema_sha256", "0" * 64), "different raw schema"),
    (lambda c: c.feature_names.pop(), "feature list"),
    (lambda c: setattr(c.statistics.values["age_std_dev"], "scalar", 0.0), "golden rows cannot be computed"),
    (lambda c: setattr(c.statistics.values["age_mean"], "scalar", float("nan")), "aggregate age_mean is not finite"),
    (lambda c: c.statistics.values["age_mean"].vector.values.extend([1.0, float("inf")]),
     "aggregate age_mean is not finite"),
    (lambda c: c.statistics.values.pop("age_std_dev"), r"lacks the aggregates \['age_std_dev'\]"),
    (lambda c: c.model.coefficients.__setitem__(3, float("nan")), "not finite"),
    (lambda c: setattr(c.model, "intercept", float("inf")), "not finite"),
    (lambda c: c.model.coefficients.pop(), "coefficients"),
    (lambda c: setattr(c.golden_rows[0], "prediction", c.golden_rows[0].prediction + 1e-9), "golden row 0"),
    (lambda c: c.golden_rows[1].features.__setitem__(8, 0.5), "golden row 1"),
    (lambda c: c.ClearField("golden_rows"), "no golden rows"),
])
def test_a_resealed_but_inconsistent_config_is_refused(config, mutate, message):
    bad = copy(config)
    mutate(bad)
    config_io.seal(bad)
    with pytest.raises(config_io.ConfigError, match=message):
        config_io.verify_config(bad)  # what can be checked before a predictor is built from it
        config_io.verify_config(bad, ReferencePredictor(bad))


def test_a_config_from_before_named_aggregates_is_refused_with_rebuild(config):
    legacy = copy(config)
    legacy.statistics.ClearField("values")
    legacy.statistics.age_mean, legacy.statistics.age_std_dev = 36.4, 6.4  # how earlier releases carried them
    config_io.seal(legacy)
    with pytest.raises(config_io.ConfigError, match="earlier release .*rebuild the config"):
        config_io.verify_config(legacy)


def test_missing_empty_and_truncated_files_are_refused(config, tmp_path):
    with pytest.raises(config_io.ConfigError, match="does not exist"):
        config_io.read_config(tmp_path / "nope.pb")
    (tmp_path / "empty.pb").write_bytes(b"")
    with pytest.raises(config_io.ConfigError, match="empty"):
        config_io.read_config(tmp_path / "empty.pb")
    data = config.SerializeToString(deterministic=True)
    (tmp_path / "cut.pb").write_bytes(data[: len(data) // 2])
    with pytest.raises(config_io.ConfigError):
        config_io.verify_config(config_io.read_config(tmp_path / "cut.pb"))


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    atomic.write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_writes_make_files_others_can_read(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic.write_bytes(tmp_path / "config.pb", b"data")
    finally:
        os.umask(previous)
    assert (tmp_path / "config.pb").stat().st_mode & 0o777 == 0o644


def test_prediction_bits_do_not_depend_on_batch_size():
    rng = np.random.default_rng(11)
    plain = rng.normal(size=(1000, 17))
    odd = plain * rng.choice([0.0, -0.0, 1.0, 1e-300, 1e300], size=(1000, 17))  # signed zeros, tiny, huge
    coefficients = rng.normal(size=17).tolist()
    for matrix in (plain, odd, np.asfortranarray(odd)):
        together = predict_linear(0.25, coefficients, matrix)  # many rows: added a column at a time
        alone = np.concatenate([predict_linear(0.25, coefficients, matrix[i:i + 1]) for i in range(1000)])
        assert np.array_equal(together.view(np.uint64), alone.view(np.uint64))
    assert np.allclose(predict_linear(0.25, coefficients, plain), 0.25 + plain @ np.array(coefficients))
