"""The job on a Dask cluster (an Engine, engine.py): each part of the input a task on a worker
(part_tasks.py), running the same per-chunk bodies as the local engine (chunk_steps.py), so rows
never pass through this process in bulk; what comes back is small (counts, aggregates, the
profile's fixed-size sample, Z'Z of the fit, the parity rows).

1. extract + validate: each part read, parsed and validated by a worker, accepted rows spilled;
2. place: with the rows before each part known, rejects numbered and written, the profile's
   sample candidates and the split counted; rejects.csv put together; the threshold checked;
3. analyze: the aggregates' input columns put together on one worker, the module's aggregate nodes
   run there (the same arrays as the local engine: the same bits);
4. transform + fit: each part through the feature module with the aggregates injected; Z'Z in the
   fit's fixed blocks, merged pairwise between neighbouring parts, so the model has the local
   engine's bits;
5. load: each part's training set file written by a worker, held-out errors merged as Z'Z is.

Without --scheduler the engine starts a LocalCluster on 127.0.0.1 and closes it at the end.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from absenteeism import config_io, dataflow, regression_metrics
from absenteeism.dataset import partitions
from absenteeism.dataset import reader as input_reader
from absenteeism.dataset.raw_chunk import InputFormatError
from etl_job import chunk_steps, online_parity, outputs, part_tasks, profile_builder, ridge, training
from etl_job import validate as validate_step
from etl_job.engine import Engine, HeldOutEvaluation, Trained, bad_data, log_tally
from etl_job.job_errors import BadData, ClusterError
from etl_job.run_settings import RunSettings
from etl_job.step_progress import StepProgress

log = logging.getLogger(__name__)


INSTALL_HINT = "pip install 'absenteeism-serving[dask]'"


def missing() -> str | None:
    """Why this install cannot run the Dask engine (Dask is the optional [dask] extra), or None."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as error:
        return f"--engine dask needs Dask, which is not installed ({error}): {INSTALL_HINT}"
    return None


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int, timeout: float) -> Iterator[Any]:
    """A distributed.Client: to `scheduler`, or to a LocalCluster of `workers` processes on 127.0.0.1."""
    # distributed loads only for a run on a cluster
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines would drown the job's
    if scheduler is None:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s: {error}") from None
    with client:
        yield client


def _check_workers(client: Any) -> None:
    """Every worker must run the feature module this process runs: a config is sealed with its fingerprint."""
    ours = config_io.code_fingerprint().SerializeToString()
    theirs = client.run(lambda: config_io.code_fingerprint().SerializeToString())
    if not theirs:
        raise ClusterError("the Dask cluster has no worker")
    other = sorted(address for address, fingerprint in theirs.items() if fingerprint != ours)
    if other:
        raise ClusterError(f"Dask workers {other} run a different feature module than this job: "
                           "install the same version of the project on every worker")


class DaskEngine(Engine):
    """The Engine on a Dask cluster: reached on enter, its workers checked, released on exit."""

    def __init__(self, settings: RunSettings):
        self.settings = settings
        self._client: Any = None
        self._address = settings.dask.scheduler or "the LocalCluster's scheduler"
        self._connection: contextlib.AbstractContextManager[Any] | None = None
        self._transformed: list[Any] = []  # futures of part_tasks.Transformed, held on the workers
        self._offsets: list[part_tasks.Offsets] = []

    def __enter__(self) -> Self:
        dask = self.settings.dask
        self._connection = connect(dask.scheduler, dask.workers, dask.connect_timeout)
        self._client = self._connection.__enter__()
        self._address = self._client.scheduler.address
        try:
            log.info("dask cluster: %s, %d workers", self._address, len(self._client.scheduler_info()["workers"]))
            from etl_job.data_set_plugin import ActivateDataSet  # it imports distributed

            self._client.register_plugin(ActivateDataSet(self.settings.data_set, self.settings.delimiter))
            _check_workers(self._client)
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Releases the cluster; a failure because the scheduler was lost (its futures cancelled, its
        connection closed) is a ClusterError naming it, as one that cannot be reached."""
        lost = self._scheduler_lost(exc)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception) if lost else contextlib.nullcontext():
                connection.__exit__(exc_type, exc, traceback)
        if lost:
            first_line = (str(exc).strip().splitlines() or [""])[0]
            raise ClusterError(f"lost the Dask scheduler at {self._address} during the run "
                               f"({type(exc).__name__}: {first_line})") from exc

    def _scheduler_lost(self, exc: BaseException | None) -> bool:
        """Whether `exc` (raised inside the engine's block) came of losing the scheduler: the client
        is no longer connected to it (reconnecting, or closed after failing to)."""
        if not isinstance(exc, Exception) or isinstance(exc, (ClusterError, BadData, InputFormatError)):
            return False
        return self._client is not None and (self._client.status != "running"
                                             or "scheduler-connection-lost" in str(exc))

    # -- the steps --------------------------------------------------------------------------

    def fit(self, work: Path, steps: StepProgress) -> Trained:
        settings, client = self.settings, self._client
        work = Path(work).resolve()
        part_tasks.spill_folder(work).mkdir()
        with steps.step("extract_validate"):
            parts = partitions.plan(settings.source(), settings.dask.part_bytes)
            files = list(dict.fromkeys(part.path for part in parts))
            digest = client.submit(input_reader.input_sha256, files, pure=False)
            extracts = client.map(part_tasks.extract, parts, work=work, chunk_rows=settings.chunk_rows, pure=False)
            tallies = gather(steps, client.map(part_tasks.tally_of, extracts), "read+validate")
            rows_before = np.concatenate([[0], np.cumsum([t.rows_read for t in tallies])]).astype(int)
            placed = [client.submit(part_tasks.place, extract, int(offset), work, settings.fit, pure=False)
                      for extract, offset in zip(extracts, rows_before)]
            counts = gather(steps, client.map(part_tasks.counts_of, placed), "number")
            rejects = [path for path, _, _ in counts if path is not None]
            client.submit(part_tasks.concatenate_rejects, work, rejects, pure=False).result()
            tally = validate_step.Tally()
            for part_tally in tallies:
                tally.merge(part_tally)
            extracted = input_reader.Extracted(source_files(parts, [t.rows_read for t in tallies]), digest.result())
            log_tally(tally)
            validate_step.check_threshold(tally, settings.max_reject_fraction)
        with steps.step("analyze"):
            inputs = client.map(part_tasks.analyze_inputs_of, extracts)
            aggregates = bad_data(client.submit(part_tasks.analyze, inputs, pure=False).result)
            candidates = _pairwise(client, part_tasks.merge_candidates, client.map(part_tasks.candidates_of, placed))
            sample = client.submit(part_tasks.sample_rows, candidates).result()
            profiler = bad_data(profile_builder.ProfileBuilder, sample, aggregates)
        with steps.step("transform_fit"):
            accepted = [t.rows_accepted for t in tallies]
            offsets = _offsets(rows_before, accepted, counts)
            positions = online_parity.sample_positions(tally.rows_accepted, settings.parity_rows)
            transformed = [
                client.submit(part_tasks.transform, extract, offset, aggregates, profiler.raw, settings.fit,
                              online_parity.positions_within(positions, offset.accepted, rows), work, pure=False)
                for extract, offset, rows in zip(extracts, offsets, accepted)]
            shares = gather(steps, client.map(part_tasks.fit_share_of, transformed), "transform")
            gram = client.submit(part_tasks.gram_total, _pairwise(client, part_tasks.merge_gram_pieces,
                                                                   client.map(part_tasks.pieces_of, transformed)))
            fitted = bad_data(self._fitted, aggregates, gram.result(), shares, counts, tally.rows_accepted,
                              lambda: self._training_rows(transformed, sum(train for _, train, _ in counts)))
            profiler.add_counts(raw=[sum(column) for column in zip(*(share[0] for share in shares))],
                                rows=tally.rows_accepted)
            profiler.place_outputs(fitted.served)
        self._transformed, self._offsets = transformed, offsets
        return Trained(tally, extracted, fitted, profiler)

    def write_training_set(self, work: Path, trained: Trained, steps: StepProgress) -> dict[str, float]:
        client, fitted, profiler = self._client, trained.fitted, trained.profiler
        work = Path(work).resolve()  # as the workers reach it
        outputs.make_output_folders(work)
        model = client.scatter(chunk_steps.write_model(fitted), broadcast=True)  # an ONNX graph is sent once
        written = [client.submit(part_tasks.write, transformed, i, offset.test, model, profiler.features,
                                 profiler.outputs, work, pure=False)
                   for i, (transformed, offset) in enumerate(zip(self._transformed, self._offsets))]
        for feature_counts, output_counts in gather(steps, client.map(part_tasks.written_counts, written),
                                                           "write"):
            profiler.add_counts(features=feature_counts, outputs=output_counts)
        if fitted.class_shares is None:
            total = client.submit(part_tasks.error_total, _pairwise(client, part_tasks.merge_error_pieces,
                                                                     client.map(part_tasks.written_errors, written)))
            metrics = regression_metrics.error_metrics(total.result(), fitted.test_rows)
        else:  # a classifier's metrics read every held-out row's probabilities, in source order
            evaluation = HeldOutEvaluation(fitted)
            for part in client.map(part_tasks.written_classes, written):
                evaluation.feed_classes(*part.result())
            metrics = evaluation.metrics()
        self._transformed = []  # released: the workers drop what they held for the run
        _remove_spill(work)
        return metrics

    # -- helpers ----------------------------------------------------------------------------

    def _fitted(self, aggregates: dict, gram: np.ndarray | None, shares: list, counts: list,
                accepted_rows: int, training_rows: Callable[[], tuple[np.ndarray, np.ndarray]]) -> training.Fitted:
        return training.fit(lambda alpha: ridge.solve(gram, len(dataflow.model_features()), alpha),
                            aggregates=aggregates, settings=self.settings.fit,
                            train_rows=sum(train for _, train, _ in counts), test_rows=sum(test for _, _, test in counts),
                            label_mean=lambda: ridge.label_mean(gram, len(dataflow.model_features())),
                            parity_raw=[share[1] for share in shares], parity_features=[share[2] for share in shares],
                            accepted_rows=accepted_rows, training_rows=training_rows)

    def _training_rows(self, transformed: list, train_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Every part's training rows gathered into this process, in source order (a learner other
        than ridge fits on them all at once), each part copied into one float32 array as it comes."""
        matrix = np.empty((train_rows, len(dataflow.model_features())), dtype=np.float32)
        labels: list[np.ndarray] = []
        start = 0
        for future in self._client.map(part_tasks.training_rows_of, transformed):
            part, part_labels = future.result()
            future.release()
            matrix[start:start + len(part)] = part
            labels.append(part_labels)
            start += len(part)
        return matrix, np.concatenate(labels)

    @property
    def client(self) -> Any:
        """The distributed.Client of the cluster, inside the `with` block."""
        return self._client


def source_files(parts: list[partitions.Part], rows_read: list[int]) -> tuple[input_reader.SourceFile, ...]:
    """The input's files with their row numbering, from the rows read of each part (in order)."""
    files: dict[Path, list[int]] = {}
    first_row = 1
    for part, rows in zip(parts, rows_read):
        files.setdefault(part.path, [first_row, 0])[1] += rows
        first_row += rows
    return tuple(input_reader.SourceFile(path, first, count) for path, (first, count) in files.items())


def gather(steps: StepProgress, futures: list, desc: str) -> list:
    """The futures' results in their order, with a bar over the parts as they finish."""
    # distributed loads only for a run on a cluster
    from distributed import as_completed

    done = {}
    position = {future.key: i for i, future in enumerate(futures)}
    for future in steps.rows(as_completed(futures), f"{desc} (parts)", total=len(futures), size=lambda _: 1):
        done[position[future.key]] = future.result()
    return [done[i] for i in range(len(futures))]


def _offsets(rows_before, accepted: list[int], counts) -> list[part_tasks.Offsets]:
    offsets, accepted_before, train_before, test_before = [], 0, 0, 0
    for rows, part_accepted, (_, train, test) in zip(rows_before, accepted, counts):
        offsets.append(part_tasks.Offsets(int(rows), accepted_before, train_before, test_before))
        accepted_before, train_before, test_before = accepted_before + part_accepted, train_before + train, test_before + test
    return offsets


def _pairwise(client: Any, merge: Callable[[Any, Any], Any], futures: list) -> Any:
    """One future: `merge` folded over `futures` as a tree of neighbours (order kept)."""
    while len(futures) > 1:
        merged = [client.submit(merge, futures[i], futures[i + 1]) for i in range(0, len(futures) - 1, 2)]
        futures = merged + ([futures[-1]] if len(futures) % 2 else [])
    return futures[0]


def _remove_spill(work: Path) -> None:
    shutil.rmtree(part_tasks.spill_folder(work), ignore_errors=True)
