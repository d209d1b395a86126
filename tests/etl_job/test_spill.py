"""The spill (etl_job/spill.py) gives back exactly the frames put in: values bit for bit, dtypes,
index; whole numbers travel narrowed (a smaller file), which must never change a value."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl_job import spill


def test_frames_come_back_as_they_went_in_also_values_that_do_not_narrow(tmp_path):
    rng = np.random.default_rng(4)
    rows = 1000
    frames = [
        pd.DataFrame({
            "small": rng.integers(0, 100, rows),  # int8 on the way
            "negative": rng.integers(-30_000, 30_000, rows),  # int16
            "wide": rng.integers(-2**40, 2**40, rows),  # stays int64
            "edge": np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max] * (rows // 2)),
            "float": rng.normal(size=rows) * np.array([1.0, -0.0] * (rows // 2)),
            "flag": rng.integers(0, 2, rows).astype(np.int8),
            "held_out": rng.random(rows) < 0.2,
        }, index=np.sort(rng.choice(10**9, size=rows, replace=False)) + start)
        for start in (0, 2**40)
    ]
    path = tmp_path / "frames.arrow"
    assert spill.write_frames(path, iter(frames)) == 2 * rows
    back = list(spill.read_frames(path))
    assert len(back) == 2
    for original, read in zip(frames, back):
        assert list(read.dtypes) == list(original.dtypes)
        assert read.index.tolist() == original.index.tolist() and read.index.name == spill.SOURCE_ROW
        for name in original.columns:
            assert read[name].to_numpy().tobytes() == original[name].to_numpy().tobytes(), name
    assert spill.arrow_table(frames[0]).schema.field("small").type.bit_width == 8  # narrowed on the way


def test_the_spill_gives_back_the_accepted_chunks_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    chunks = [pd.DataFrame({"age": np.arange(n, dtype=np.int64) + 20}, index=pd.RangeIndex(start, start + n))
              for start, n in ((1, 5), (6, 3))]
    with spill.Spill() as store:
        for chunk in chunks:
            store.append(chunk)
        store.finish()
        back = list(store.chunks())
    for original, read in zip(chunks, back, strict=True):
        pd.testing.assert_frame_equal(read, original.rename_axis(spill.SOURCE_ROW), check_index_type=False)
