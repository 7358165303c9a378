"""Fault injection: what a nightly job meets besides bad data.

kill -9 at random points, concurrent runs on one partition, a tracking server that
never answers or dies during `train`, a full disk and a read-only output folder. Each
fault must end in exit 2 with one line (or, for a kill, a whole previous partition) and
leave nothing behind that the next run would trip over. Run alone with `-m faults`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from tests.conftest import one_line_exit_2, write_config
from typer.testing import CliRunner

from churnkit import tracking
from churnkit.cli import app
from churnkit.errors import ConfigError
from churnkit.pipelines import run_report
from churnkit.scoring.output import list_partitions

pytestmark = pytest.mark.faults

runner = CliRunner()
AS_OF = "2025-10-01"

# `churnkit score` whose Parquet writer, after writing the new scores file, signals the
# test and hangs: a process caught in the middle of a write, for as long as the test likes.
_HANGING_SCORE = """
import sys, time
from pathlib import Path
import churnkit.scoring.output as output

real_write = output.pq.write_table

def write_then_hang(table, where, **kwargs):
    real_write(table, where, **kwargs)
    Path(sys.argv[1]).write_text("writing")
    time.sleep(600)

output.pq.write_table = write_then_hang
from churnkit.cli import app
app(["--quiet", "score", sys.argv[2], "--as-of", sys.argv[3]])
"""


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _visible(folder: Path) -> dict[str, bytes]:
    """Every file a reader of the scores folder sees (hidden working files left out)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def _nightly(folder: Path) -> dict[str, object]:
    """What a night's partition holds, less the run's duration in the manifest (the one
    thing two runs of the same night differ in)."""
    files: dict[str, object] = dict(_visible(folder))
    for name in [name for name in files if name.endswith("manifest.json")]:
        manifest = json.loads(files[name])
        manifest.pop("seconds")
        files[name] = manifest
    return files


def _churnkit(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "churnkit", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def _hanging_score(config: Path, marker: Path) -> subprocess.Popen:
    """A `score` process stopped right after it wrote the new scores file."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HANGING_SCORE, str(marker), str(config), AS_OF],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the scoring process never started writing"
        time.sleep(0.1)
    return process


def test_kill_9_mid_write_leaves_the_previous_partition_intact(bundle_config, tmp_path):
    assert invoke("--quiet", "score", bundle_config, "--as-of", AS_OF).exit_code == 0
    scores = bundle_config.parent / "scores"
    before = _visible(scores)
    assert f"as_of={AS_OF}/scores.parquet" in before

    process = _hanging_score(bundle_config, tmp_path / "writing")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    assert _visible(scores) == before  # old partition byte for byte, nothing new visible
    assert list_partitions(scores) == [pd.Timestamp(AS_OF).date()]
    hidden = sorted(p.name for p in scores.iterdir() if p.name.startswith("."))
    assert hidden and all(name.startswith(f".as_of={AS_OF}") for name in hidden)

    # the next night takes over the dead process's lock and cleans up after it
    assert invoke("--quiet", "score", bundle_config, "--as-of", AS_OF).exit_code == 0
    assert [p.name for p in scores.iterdir()] == [f"as_of={AS_OF}"]
    after = _visible(scores)
    for name in (f"as_of={AS_OF}/scores.parquet", f"as_of={AS_OF}/at_risk.csv"):
        assert after[name] == before[name]


def test_kill_9_at_random_moments_never_shows_half_a_partition(bundle_config):
    """Killed anywhere from start-up to the rename, a rerun of a night shows either the
    old partition or the new one (the same bytes), never a part; the next run cleans up."""
    assert invoke("--quiet", "score", bundle_config, "--as-of", AS_OF).exit_code == 0
    scores = bundle_config.parent / "scores"
    before = _nightly(scores)
    started = time.monotonic()
    whole = _churnkit("--quiet", "score", bundle_config, "--as-of", AS_OF)
    assert whole.wait(timeout=300) == 0, whole.stderr.read().decode()
    duration = time.monotonic() - started
    for delay in sorted(random.Random(19).uniform(0.3, duration) for _ in range(3)):
        process = _churnkit("--quiet", "score", bundle_config, "--as-of", AS_OF)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert _nightly(scores) == before, f"killed after {delay:.1f} s of {duration:.1f} s"
    assert invoke("--quiet", "score", bundle_config, "--as-of", AS_OF).exit_code == 0
    assert sorted(p.name for p in scores.iterdir()) == [f"as_of={AS_OF}"]
    assert _nightly(scores) == before


def test_a_second_run_on_a_partition_being_written_exits_2_naming_the_first(
    bundle_config, tmp_path
):
    first = _hanging_score(bundle_config, tmp_path / "writing")
    try:
        second = invoke("--quiet", "score", bundle_config, "--as-of", AS_OF)
        one_line_exit_2(second, "is being written by process", str(first.pid))
        assert first.poll() is None  # the first run was not disturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    scores = bundle_config.parent / "scores"
    assert _visible(scores) == {}
    assert invoke("--quiet", "score", bundle_config, "--as-of", AS_OF).exit_code == 0
    assert list_partitions(scores) == [pd.Timestamp(AS_OF).date()]


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers, like a hung tracking server."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_nightly_steps_give_up_on_a_silent_tracking_server_in_seconds(
    trained, tmp_path, generated_dir, silent_server
):
    """A scheduler's night must not hang: score stops with exit 2 naming the server;
    the report renders without its model section and says why."""
    config = write_config(tmp_path / "p", generated_dir, mlflow={"tracking_uri": silent_server})
    started = time.perf_counter()
    scored = runner.invoke(app, ["--quiet", "score", str(config)])
    assert time.perf_counter() - started < 15
    one_line_exit_2(scored, f"cannot reach the MLflow tracking server {silent_server}")
    assert not (config.parent / "scores").exists()

    cfg, _, _ = trained  # a night scored already, read through the silent server
    hung = cfg.model_copy(
        update={"mlflow": cfg.mlflow.model_copy(update={"tracking_uri": silent_server})}
    )
    started = time.perf_counter()
    report = run_report(hung, out=tmp_path / "report.html")
    assert time.perf_counter() - started < 30  # KPIs and charts included
    assert "Model section unavailable: cannot reach the MLflow tracking server" in (
        report.read_text(encoding="utf-8")
    )


class _Proxy:
    """A loopback TCP proxy in front of a tracking server that fails on requests whose
    first bytes contain ``trigger``: ``dies`` closes everything and refuses all later
    connections (a server that died); otherwise only those requests are cut (a broken
    endpoint, while the rest of the server answers)."""

    def __init__(self, upstream: int, trigger: bytes, *, dies: bool) -> None:
        self.upstream, self.trigger, self.dies = upstream, trigger, dies
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[socket.socket] = []
        self.dead = threading.Event()
        self.triggered = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.dead.is_set():
            try:
                client = self.listener.accept()[0]
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            self.open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, request: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if request and self.trigger in chunk:
                    self.triggered.set()
                    if self.dies:
                        self.close()
                    break
                sink.sendall(chunk)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.dead.set()
        for end in [self.listener, *self.open]:
            with contextlib.suppress(OSError):
                end.close()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A real `mlflow server` on loopback with its own SQLite store and artifacts."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow_cli), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--workers", "1"]
    command += ["--artifacts-destination", str(folder / "artifacts")]
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(command, cwd=folder, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    import requests

    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/health", timeout=2).ok:
                break
        assert server.poll() is None, (folder / "server.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "mlflow server did not start"
        time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(timeout=30)


def _log_through(proxy: _Proxy, trained, name: str, tmp_path: Path) -> ConfigError:
    cfg, outcome, _ = trained
    settings = cfg.mlflow.model_copy(
        update={"tracking_uri": proxy.url, "registered_model_name": name}
    )
    store = tracking.Tracker(settings, tmp_path)
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        store.log_training_run(
            outcome.result,
            config={"model": {"seed": 11}},
            config_text="",
            data_summary={"last_order_at": "2025-12-31"},
            model_card="card",
            source="orders.parquet",
        )
    assert time.perf_counter() - started < 60
    assert proxy.triggered.is_set()
    return caught.value


@pytest.mark.filterwarnings("ignore:.*An input example was not provided")
def test_a_tracking_server_dying_at_registration_leaves_no_version(
    trained, mlflow_server, tmp_path
):
    proxy = _Proxy(int(mlflow_server.rsplit(":", 1)[1]), b"model-versions/create", dies=True)
    error = _log_through(proxy, trained, "dies-at-registration", tmp_path)
    message = str(error)
    assert f"the MLflow tracking store {proxy.url} failed while logging the training run" in message
    assert "could not be told to mark run" in message and "FAILED" in message

    client = MlflowClient(
        mlflow_server, registry_uri=mlflow_server
    )  # the store itself, not the proxy
    assert client.search_model_versions("name='dies-at-registration'") == []


@pytest.mark.filterwarnings("ignore:.*An input example was not provided")
def test_a_failed_alias_withdraws_the_version_and_fails_the_run(trained, mlflow_server, tmp_path):
    proxy = _Proxy(int(mlflow_server.rsplit(":", 1)[1]), b"registered-models/alias", dies=False)
    try:
        message = str(_log_through(proxy, trained, "alias-fails", tmp_path))
    finally:
        proxy.close()
    assert "failed while logging the training run (/api/2.0/mlflow/registered-models/alias: " in (
        message
    )
    assert "version 1 was deleted again; no model version was kept" in message

    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert client.search_model_versions("name='alias-fails'") == []
    run_id = re.search(r"run ([0-9a-f]{32}) was marked FAILED", message).group(1)
    assert client.get_run(run_id).info.status == "FAILED"


def test_a_failed_promotion_keeps_the_champion_and_no_half_version(project, monkeypatch):
    from churnkit.pipelines import run_training

    first = run_training(project, config_text="")
    assert first.promoted

    real = MlflowClient.set_registered_model_alias

    def broken(self, name, alias, version):
        if alias == "champion":
            raise MlflowException("connection reset by peer")
        return real(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", broken)
    monkeypatch.setattr(  # the decision is tested elsewhere; here it is forced
        "churnkit.training.decide_promotion", lambda *a, **k: (True, "forced by the test")
    )
    with pytest.raises(ConfigError, match="failed while completing version 2"):
        run_training(project, config_text="")
    monkeypatch.undo()
    store = tracking.Tracker(project.mlflow, project.project_dir)
    assert store.champion_version() == "1"
    assert [str(v.version) for v in store.client.search_model_versions("name='churn-test'")] == [
        "1"
    ]
    assert sorted(p.name for p in (project.models_dir / "churn-test").iterdir()) == ["v1"]


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; run the fault suite as root (CI does)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_full_disk_exits_2_and_keeps_the_previous_partition(bundle_config, tmp_path):
    with _tmpfs(tmp_path / "disk", "4m") as disk:
        raw = yaml.safe_load(bundle_config.read_text())
        raw["scoring"]["output_dir"] = str(disk)
        bundle_config.write_text(yaml.safe_dump(raw))
        assert invoke("--quiet", "score", bundle_config, "--as-of", AS_OF).exit_code == 0
        before = _visible(disk)
        used = sum(len(data) for data in before.values())
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / ".filler").write_bytes(b"\0" * max(free - used // 3, 0))
        result = invoke("--quiet", "score", bundle_config, "--as-of", "2025-11-01")
        one_line_exit_2(result, "No space left on device")
        (disk / ".filler").unlink()
        assert _visible(disk) == before
        assert sorted(p.name for p in disk.iterdir()) == [f"as_of={AS_OF}"]


def test_a_read_only_output_folder_exits_2_naming_it(bundle_config, tmp_path):
    with _tmpfs(tmp_path / "readonly", "1m") as folder:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        raw = yaml.safe_load(bundle_config.read_text())
        raw["scoring"]["output_dir"] = str(folder)
        bundle_config.write_text(yaml.safe_dump(raw))
        result = invoke("--quiet", "score", bundle_config, "--as-of", AS_OF)
        one_line_exit_2(result, str(folder))
        report = invoke("report", bundle_config, "--out", folder / "report.html")
        one_line_exit_2(report, str(folder))
        assert list(folder.iterdir()) == []
