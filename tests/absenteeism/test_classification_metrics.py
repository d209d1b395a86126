"""HeldOutClassification against scikit-learn (log_loss, accuracy_score, roc_auc_score) on random and
tied scores, binary and 3-class; the same bits whatever the chunking; the baseline by hand; the
undefined AUC; the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from absenteeism.classification_metrics import HeldOutClassification
from testkit.bits import assert_same_bits

REL = 1e-12
KEYS = ["log_loss", "accuracy", "roc_auc", "baseline_log_loss", "baseline_accuracy", "baseline_roc_auc"]


def measured(labels, probabilities, shares, chunk: int | None = None) -> dict[str, float]:
    held_out = HeldOutClassification(np.asarray(shares))
    step = chunk or max(len(labels), 1)
    for start in range(0, len(labels), step):
        held_out.feed(labels[start:start + step], probabilities[start:start + step])
    return held_out.metrics()


def random_rows(classes: int, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, classes, rows), rng.dirichlet(np.ones(classes), rows)


def tied_rows(classes: int, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Few distinct probability rows, so scores tie within every class and argmax ties too."""
    rng = np.random.default_rng(seed)
    if classes == 2:
        positive = rng.choice([0.1, 0.25, 0.5, 0.75, 0.9], rows)  # no 0 or 1: see the clipping test
        return rng.integers(0, 2, rows), np.column_stack([1 - positive, positive])
    distinct = np.array([[0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [0.5, 0.25, 0.25], [0.25, 0.5, 0.25],
                         [0.25, 0.25, 0.5], [0.4, 0.2, 0.4]])
    return rng.integers(0, 3, rows), distinct[rng.integers(0, len(distinct), rows)]


def sklearn_metrics(labels, probabilities) -> dict[str, float]:
    classes = probabilities.shape[1]
    auc = (roc_auc_score(labels, probabilities[:, 1]) if classes == 2
           else roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))
    return {"log_loss": log_loss(labels, probabilities, labels=list(range(classes))),
            "accuracy": accuracy_score(labels, np.argmax(probabilities, axis=1)),
            "roc_auc": auc}


@pytest.mark.parametrize("rows", [random_rows, tied_rows])
@pytest.mark.parametrize("classes", [2, 3])
def test_the_model_metrics_are_scikit_learns(rows, classes):
    labels, probabilities = rows(classes, 2000, seed=classes)
    got = measured(labels, probabilities, np.full(classes, 1 / classes))
    expected = sklearn_metrics(labels, probabilities)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=REL, abs=0), key
    assert 0.4 < got["roc_auc"] < 0.6 and got["log_loss"] > 0  # random scores: nothing degenerate


def test_the_auc_counts_ties_half_and_the_accuracy_takes_the_lowest_tied_class():
    labels = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
    got = measured(labels, probabilities, [0.5, 0.5])
    # positives score 0.5 and 0.8, negatives 0.5 and 0.4: pairs won 1 + 1 + 1, tied 1 -> 3.5 of 4
    assert got["roc_auc"] == 3.5 / 4
    # argmax: 0 (tie), 0 (tie), 1, 0 -> right on rows 0, 2, 3
    assert got["accuracy"] == 3 / 4


def test_a_separating_classifier_has_auc_1_and_an_inverted_one_0():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.eye(3)[labels] * 0.8 + 0.2 / 3
    assert measured(labels, probabilities, [1 / 3] * 3)["roc_auc"] == 1.0
    # columns reversed: class 1 keeps its column (AUC 1); classes 0 and 2 score low, tied with class 1's
    # rows and below the other's (AUC 0.25 each)
    assert measured(labels, probabilities[:, ::-1].copy(), [1 / 3] * 3)["roc_auc"] == 0.5
    binary = np.array([0, 0, 1, 1])
    assert measured(binary, np.eye(2)[1 - binary], [0.5, 0.5])["roc_auc"] == 0.0


def test_the_binary_auc_reads_the_positive_class_column_alone():
    """As scikit-learn's roc_auc_score(labels, probabilities[:, 1]): column 0 need not be 1 - column 1
    (float32 model outputs rarely are, to the bit), and does not count."""
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.1, 0.1], [0.1, 0.2], [0.1, 0.3], [0.1, 0.4]])
    assert measured(labels, probabilities, [0.5, 0.5])["roc_auc"] == 1.0 == roc_auc_score(labels, probabilities[:, 1])


@pytest.mark.parametrize("classes", [2, 3])
def test_the_same_bits_whatever_the_chunking(classes):
    labels, probabilities = random_rows(classes, 500, seed=7)
    probabilities[::5] = tied_rows(classes, 100, seed=8)[1]
    shares = np.arange(1, classes + 1) / (classes * (classes + 1) / 2)
    whole = measured(labels, probabilities, shares)
    for chunk in (1, 7, 64):
        got = measured(labels, probabilities, shares, chunk)
        assert list(got) == KEYS and all(type(value) is float for value in got.values())  # no numpy scalars
        assert_same_bits([got[key] for key in KEYS], [whole[key] for key in KEYS])


def test_the_binary_baseline_by_hand():
    labels = np.array([0, 0, 1, 1])
    got = measured(labels, np.full((4, 2), 0.5), [0.7, 0.3])
    assert got["baseline_log_loss"] == pytest.approx(0.780324, abs=1e-6)  # (-ln 0.7 - ln 0.3) / 2
    assert got["baseline_accuracy"] == 0.5  # class 0, the majority, every row
    assert got["baseline_roc_auc"] == 0.5


def test_the_multiclass_baseline_by_hand_and_by_scikit_learn():
    labels = np.array([1, 2, 2, 0, 1])
    shares = np.array([0.2, 0.5, 0.3])
    got = measured(labels, np.full((5, 3), 1 / 3), shares)
    assert got["baseline_log_loss"] == pytest.approx(1.080736, abs=1e-6)  # -(2 ln .5 + 2 ln .3 + ln .2) / 5
    assert got["baseline_accuracy"] == 0.4  # class 1 every row: right on 2 of 5
    assert got["baseline_roc_auc"] == 0.5
    constant = np.tile(shares, (5, 1))
    assert got["baseline_log_loss"] == pytest.approx(log_loss(labels, constant), rel=REL)
    assert roc_auc_score(labels, constant, multi_class="ovr") == 0.5


def test_the_baseline_takes_the_lowest_of_tied_majority_classes():
    labels = np.array([0, 1, 1])
    assert measured(labels, np.full((3, 2), 0.5), [0.5, 0.5])["baseline_accuracy"] == 1 / 3


def test_log_loss_clips_at_1e_15():
    wrong = measured(np.array([0, 1]), np.array([[0.0, 1.0], [1.0, 0.0]]), [0.5, 0.5])
    assert wrong["log_loss"] == pytest.approx(-math.log(1e-15), rel=REL)  # 34.54, not inf
    right = measured(np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]]), [0.5, 0.5])
    assert right["log_loss"] == pytest.approx(1e-15, rel=1e-3)  # -ln(1 - 1e-15), not 0
    baseline = measured(np.array([0, 1]), np.full((2, 2), 0.5), [1.0, 0.0])
    assert baseline["baseline_log_loss"] == pytest.approx((-math.log(1e-15) + 1e-15) / 2, rel=1e-12)


@pytest.mark.parametrize("labels, probabilities", [
    (np.zeros(4, dtype=int), np.full((4, 2), 0.5)),  # binary, one class alone
    (np.array([0, 1, 0, 1]), np.full((4, 3), 1 / 3)),  # 3 classes, class 2 absent
])
def test_the_auc_is_nan_when_a_class_is_absent(labels, probabilities):
    got = measured(labels, probabilities, np.full(probabilities.shape[1], 1 / probabilities.shape[1]))
    assert math.isnan(got["roc_auc"]) and math.isnan(got["baseline_roc_auc"])
    assert got["accuracy"] == accuracy_score(labels, np.argmax(probabilities, axis=1))
    assert got["log_loss"] == pytest.approx(log_loss(labels, probabilities, labels=[0, 1, 2][:probabilities.shape[1]]),
                                            rel=REL)


@pytest.mark.parametrize("labels, probabilities, message", [
    (np.array([0, 1]), np.full((2, 3), 1 / 3), r"probabilities must be rows x 2 \(one column per class\)"),
    (np.array([0, 1]), np.full(2, 0.5), r"probabilities must be rows x 2"),
    (np.array([0, 2]), np.full((2, 2), 0.5), r"labels must be class indices in 0\.\.1, got 2 at row 1"),
    (np.array([-1, 0]), np.full((2, 2), 0.5), r"labels must be class indices in 0\.\.1, got -1 at row 0"),
    (np.array([0.0, 1.0]), np.full((2, 2), 0.5), r"labels must be integer class indices, got dtype float64"),
    (np.array([0, 1, 1]), np.full((2, 2), 0.5), r"labels must be one per row of probabilities \(2 rows\)"),
    (np.array([0, 1]), np.array([[0.5, 0.5], [np.nan, 0.5]]), r"probabilities must be in \[0, 1\], got \[nan, 0\.5\]"),
    (np.array([0, 1]), np.array([[1.5, -0.5], [0.5, 0.5]]), r"probabilities must be in \[0, 1\].* at row 0"),
])
def test_bad_chunks_are_refused_and_leave_nothing_behind(labels, probabilities, message):
    held_out = HeldOutClassification(np.array([0.5, 0.5]))
    held_out.feed(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    before = held_out.metrics()
    with pytest.raises(ValueError, match=message):
        held_out.feed(labels, probabilities)
    assert held_out.rows == 2 and held_out.metrics() == before


def test_metrics_without_rows_are_refused():
    held_out = HeldOutClassification(np.array([0.5, 0.5]))
    held_out.feed(np.array([], dtype=int), np.empty((0, 2)))
    with pytest.raises(ValueError, match="no held-out rows were fed"):
        held_out.metrics()


@pytest.mark.parametrize("shares, message", [
    ([1.0], r"at least 2, got shape \(1,\)"),
    ([[0.5, 0.5]], r"one share per class, at least 2, got shape \(1, 2\)"),
    ([0.5, 0.6], r"must be in \[0, 1\] and sum to 1, got \[0\.5, 0\.6\]"),
    ([1.5, -0.5], r"must be in \[0, 1\] and sum to 1"),
])
def test_bad_class_shares_are_refused(shares, message):
    with pytest.raises(ValueError, match=message):
        HeldOutClassification(np.array(shares))


def test_fed_rows_are_copied():
    labels, probabilities = np.array([0, 1, 1]), np.array([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    held_out = HeldOutClassification(np.array([0.5, 0.5]))
    held_out.feed(labels, probabilities)
    expected = held_out.metrics()
    held_out = HeldOutClassification(np.array([0.5, 0.5]))
    held_out.feed(labels, probabilities)
    labels[:], probabilities[:] = 0, 0.5  # the caller reuses its buffers
    assert held_out.metrics() == expected
