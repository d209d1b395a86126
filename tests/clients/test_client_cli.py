"""python -m clients predict against a real server: predictions per source row, bad rows reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from testkit.bits import assert_same_bits

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

AGE, WEIGHT, SEASONS = 8, 17, 4  # column positions in the data set's CSV


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


@pytest.fixture(scope="module")
def csv_with_bad_rows(tmp_path_factory, trained_config) -> tuple[Path, dict[int, str]]:
    """The sample's first 40 rows (the data set's format; row 15 lacks its age), four more spoiled."""
    lines = trained_config.source.read_text().splitlines()[:41]
    spoil = {5: (AGE, "5", "age"), 9: (AGE, "", "age"), 12: (WEIGHT, "heavy", "weight"),
             20: (SEASONS, "9", "seasons")}
    for row, (column, value, _) in spoil.items():
        cells = lines[row].split(";")
        cells[column] = value
        lines[row] = ";".join(cells)
    path = tmp_path_factory.mktemp("cli") / "records.csv"
    path.write_text("\r\n".join(lines) + "\r\n")
    return path, {row: field for row, (_, _, field) in spoil.items()}


def test_predict_csv_writes_predictions_per_source_row_and_reports_bad_rows(plaintext_server, csv_with_bad_rows,
                                                                         trained_config, tmp_path):
    path, spoiled = csv_with_bad_rows
    output = tmp_path / "predictions.csv"
    result = cli("predict", "--target", plaintext_server.target, "--insecure", "--input", str(path),
                 "--output", str(output), cwd=tmp_path)
    assert result.returncode == 3, result.stderr  # some rows refused
    predicted = pd.read_csv(output)
    expected_rows = [r for r in range(1, 41) if r not in spoiled and r in trained_config.accepted.index]
    assert predicted["source_row"].tolist() == expected_rows
    assert_same_bits(predicted["prediction"], trained_config.predictions.loc[expected_rows])

    rejects = pd.read_csv(tmp_path / "predictions.rejects.csv")
    assert sorted(zip(rejects["source_row"], rejects["field"])) == sorted({**spoiled, 15: "age"}.items())
    by_row = rejects.set_index("source_row")
    assert by_row.loc[5, "rule"] == "in_range(16, 100)" and by_row.loc[5, "reported_by"] == "server"
    assert by_row.loc[9, "rule"] == "required" and by_row.loc[9, "reported_by"] == "server"
    assert by_row.loc[12, "rule"] == "number" and by_row.loc[12, "reported_by"] == "client"
    assert by_row.loc[20, "rule"] == "isin([1, 2, 3, 4])"
    assert "row 5: age: value 5 breaks rule in_range(16, 100)" in result.stderr
    assert "row 9: age: required field is missing" in result.stderr
    assert "row 15: age: required field is missing" in result.stderr
    assert "40 rows: 35 predicted, 5 rejected" in result.stderr


def test_whole_sample_matches_the_etl_job_row_for_row(plaintext_server, trained_config, tmp_path):
    """Same rows refused for the same reasons as the ETL job; the same predictions and features, bit
    for bit through the CSV, for the rest."""
    result = cli("predict", "--target", plaintext_server.target, "--insecure", "--input", str(trained_config.source),
                 "--output", "out.csv", "--rejects", "rejects.csv", "--include-features", "--no-progress",
                 cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    predicted = pd.read_csv(tmp_path / "out.csv")
    assert predicted["source_row"].tolist() == trained_config.predictions.index.tolist()
    assert_same_bits(predicted["prediction"], trained_config.predictions)
    names = list(trained_config.config.feature_names)
    assert_same_bits(predicted[names], trained_config.features[names])
    ours = pd.read_csv(tmp_path / "rejects.csv")
    etl = pd.read_csv(trained_config.path.parent / "rejects.csv")
    assert sorted(zip(ours["source_row"], ours["field"], ours["rule"])) == sorted(
        zip(etl["source_row"], etl["column"], etl["rule"]))


def test_predict_parquet_with_features(plaintext_server, trained_config, tmp_path):
    source = trained_config.accepted.iloc[:15].reset_index(drop=True)
    source.to_parquet(tmp_path / "records.parquet", index=False)
    result = cli("predict", "--target", plaintext_server.target, "--insecure", "--input", "records.parquet",
                 "--output", "out.parquet", "--include-features", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    predicted = pd.read_parquet(tmp_path / "out.parquet")
    names = list(trained_config.config.feature_names)
    assert list(predicted.columns) == ["source_row", "prediction", *names]
    assert predicted["source_row"].tolist() == list(range(1, 16))
    assert_same_bits(predicted["prediction"], trained_config.predictions.iloc[:15])
    assert_same_bits(predicted[names], trained_config.features[names].iloc[:15])  # a 0.0 served as -0.0 fails
    assert not (tmp_path / "out.rejects.csv").exists()


def test_predict_to_stdout(plaintext_server, csv_with_bad_rows, tmp_path):
    path, _ = csv_with_bad_rows
    result = cli("predict", "--target", plaintext_server.target, "--insecure", "--input", str(path),
                 "--no-progress", cwd=tmp_path)
    assert result.returncode == 3
    assert result.stdout.splitlines()[0] == "source_row,prediction" and len(result.stdout.splitlines()) == 36


def test_unreachable_server_fails_with_exit_1(csv_with_bad_rows, tmp_path):
    from testkit.loopback import free_port

    path, _ = csv_with_bad_rows
    result = cli("predict", "--target", f"127.0.0.1:{free_port()}", "--insecure", "--input", str(path),
                 "--retries", "1", "--no-progress", cwd=tmp_path)
    assert result.returncode == 1 and "UNAVAILABLE" in result.stderr


def test_usage_errors(tmp_path):
    assert cli("predict", "--target", "127.0.0.1:1", "--insecure", "--input", "missing.csv", cwd=tmp_path
               ).returncode == 2
    assert cli("nope", cwd=tmp_path).returncode == 2


def test_predict_over_mutual_tls(trained_config, certificates, tmp_path):
    from testkit.server_process import ServerProcess

    trained_config.accepted.iloc[:10].to_parquet(tmp_path / "records.parquet", index=False)
    tls = ["--tls-cert", str(certificates["server.crt"]), "--tls-key", str(certificates["server.key"]),
           "--tls-client-ca", str(certificates["ca"])]
    with ServerProcess(trained_config.path, *tls, insecure=False) as server:
        base = ["predict", "--target", server.target, "--input", "records.parquet", "--no-progress", "--retries", "0",
                "--ca-cert", str(certificates["ca"])]
        ok = cli(*base, "--client-cert", str(certificates["client.crt"]), "--client-key",
                 str(certificates["client.key"]), "--output", "out.csv", cwd=tmp_path)
        refused = cli(*base, cwd=tmp_path)  # no client certificate
    assert ok.returncode == 0, ok.stderr
    served = pd.read_csv(tmp_path / "out.csv")
    assert_same_bits(served["prediction"], trained_config.predictions.iloc[:10])
    assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr


def test_predict_writes_each_rows_request_id_when_asked(plaintext_server, csv_with_bad_rows, tmp_path):
    """--request-id names the stream, --request-id-column writes what the prediction log names each
    row: `<id>/<i>`, i the row's message in the stream (rows the client could not send are not counted)."""
    path, _ = csv_with_bad_rows
    result = cli("predict", "--target", plaintext_server.target, "--insecure", "--input", str(path), "--output",
                 "out.csv", "--request-id", "run-1", "--request-id-column", "rid", "--no-progress", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    predicted = pd.read_csv(tmp_path / "out.csv")
    assert predicted.columns.tolist() == ["source_row", "prediction", "rid"]
    sent = [row for row in range(1, 41) if row != 12]  # row 12's weight is not a number: never sent
    assert predicted["rid"].tolist() == [f"run-1/{sent.index(row)}" for row in predicted["source_row"]]
    clash = cli("predict", "--target", plaintext_server.target, "--insecure", "--input", str(path),
                "--request-id-column", "prediction", cwd=tmp_path)
    assert clash.returncode == 2 and "--request-id-column prediction" in clash.stderr
