"""Pictures of the feature DAG, drawn by Hamilton from the same driver the job and the server run.

- offline: analyze (the aggregates computed from the data) and transform, as the batch job runs it;
- online: transform only, the aggregates overridden with the config's values, as the server runs it;
- all_functions: every node of the feature module.

Needs the graphviz Python package (the [viz] extra: pip install 'absenteeism-serving[viz]') and
graphviz's `dot` on PATH (Debian: `apt-get install graphviz`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from absenteeism import data_sets, dataflow

PICTURES = ("offline_dag", "online_dag", "all_functions")


class GraphvizMissing(RuntimeError):
    pass


def render(output_dir: Path) -> list[Path]:
    """Writes offline_dag, online_dag and all_functions into `output_dir`, each as a PNG and as its
    graphviz source (.dot, text to diff), each replaced atomically: rendered in a temp folder beside
    it, then renamed."""
    try:
        import graphviz  # noqa: F401 - Hamilton draws through it; imported here to say what is missing
    except ImportError:
        raise GraphvizMissing("the graphviz Python package is not installed; it draws the DAG pictures: "
                              "pip install 'absenteeism-serving[viz]'") from None
    if shutil.which("dot") is None:
        raise GraphvizMissing("graphviz's `dot` is not installed; it draws the DAG pictures: "
                              "apt-get install graphviz (Debian/Ubuntu), brew install graphviz (macOS)")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    driver = dataflow.feature_driver()
    # Empty typed columns: the picture shows the node types; no value is computed.
    inputs = {c.name: pd.Series([], dtype=c.dtype) for c in data_sets.active().table.columns}
    transform = [*dataflow.model_features(), *dataflow.feature_module().GUARDS]
    # The override values do not change the picture; the server's come from its config.
    overrides = {name: 0.0 for name in dataflow.aggregate_names()}
    png = {"format": "png", "view": False}
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".dag.") as scratch:
        scratch_dir = Path(scratch)
        graphs = {
            "offline_dag": driver.visualize_execution([*dataflow.aggregate_names(), *transform],
                                                      str(scratch_dir / "offline_dag"), render_kwargs=png,
                                                      inputs=inputs),
            "online_dag": driver.visualize_execution(transform, str(scratch_dir / "online_dag"), render_kwargs=png,
                                                     inputs=inputs, overrides=overrides),
            "all_functions": driver.display_all_functions(str(scratch_dir / "all_functions"), render_kwargs=png),
        }
        written = []
        for name in PICTURES:
            (scratch_dir / f"{name}.dot").write_text(graphs[name].source)
            for suffix in (".png", ".dot"):
                target = output_dir / f"{name}{suffix}"
                os.replace(scratch_dir / f"{name}{suffix}", target)
                written.append(target)
    return written
