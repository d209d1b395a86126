"""`python -m etl_job dag` draws the offline and online feature DAGs with Hamilton and graphviz."""

from __future__ import annotations

import shutil

import pytest

from etl_job import cli, dag

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed (Debian: apt-get install graphviz)")
def test_dag_command_writes_the_pictures(tmp_path):
    out = tmp_path / "pictures"
    assert cli.main(["dag", "--output-dir", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{name}{suffix}" for name in dag.PICTURES for suffix in (".png", ".dot"))  # no scratch
    assert "age_mean" in (out / "offline_dag.dot").read_text()
    for name in dag.PICTURES:
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG_MAGIC), name
    # The offline picture has the aggregate computations the online one takes as overrides: not the same image.
    assert (out / "offline_dag.png").read_bytes() != (out / "online_dag.png").read_bytes()

