"""``nobg batch --engine ray --address`` on a cluster started the ordinary way, and actor death.

The head node is ``ray start --head --block`` in a HOME of its own, with the token where
Ray puts it (``ray get-auth-token --generate`` writes ~/.ray/auth_token; ``ray start`` then
turns token authentication on), on free ports, with 2 CPUs and a 100 MB object store. The
CLI runs in a subprocess with that HOME and no Ray variables, as a user types it. The node
is stopped by ending its process group, not with ``ray stop``: that stops every Ray on the
machine, other tests' included.

The actors run the shipped model (LiteRT: starts in a fraction of a second, which the
restarts of the actor-death test need); the unit tests at the end need no cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from segmentation.batch import Job, ray_engine, read_manifest
from segmentation.batch.ray_engine import MAX_TRIES

REPO = Path(__file__).resolve().parent.parent
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")
#: The actor-death test's hook reads its folder from here (set for the workers only).
DEATHS_ENV = "NOBG_TEST_DEATHS"
VICTIM, POISON = "victim.jpg", "poison.jpg"
DIED = f"not processed: its Ray worker died on each of {MAX_TRIES} tries"


@dataclass(frozen=True)
class Head:
    """A running head node: where to connect, and the HOME that holds its token."""

    address: str
    home: Path


def ray_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment with ``home`` as HOME and none of Ray's auth or address variables."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARIABLES}
    return {**env, "HOME": str(home), **extra}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def stop_group(process: subprocess.Popen) -> None:
    """Stop ``ray start --block`` (it stops its node), then SIGKILL what is left of its group."""

    def group_alive() -> bool:
        process.poll()  # reap it, or its zombie keeps the group alive
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while group_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Head]:
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    # Short: Ray's socket paths under --temp-dir must fit in 107 bytes (tmp_path does not).
    root = Path(tempfile.mkdtemp(prefix="nobg-ray-"))
    home = root / "home"
    home.mkdir()
    env = ray_env(home)
    subprocess.run(
        [*ray_cli, "get-auth-token", "--generate"], env=env, capture_output=True, check=True
    )
    port, client, dashboard, agent = free_ports(4)
    log = root / "head.log"
    # SIGTERM first drains the node for up to 30 s (for Ray Serve's traffic): none here.
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    with log.open("wb") as out:
        head = subprocess.Popen(
            [
                *ray_cli,
                "start",
                "--head",
                "--block",
                f"--port={port}",
                "--num-cpus=2",
                "--object-store-memory=100000000",
                "--disable-usage-stats",
                "--include-dashboard=false",
                f"--ray-client-server-port={client}",
                f"--dashboard-port={dashboard}",
                f"--dashboard-agent-listen-port={agent}",
                f"--temp-dir={root / 'ray'}",
            ],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as a whole
        )
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head failed:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        assert "Token authentication is enabled" in log.read_text(errors="replace")
        yield Head(f"127.0.0.1:{port}", home)
    finally:
        stop_group(head)
        shutil.rmtree(root, ignore_errors=True)


def write_photos(folder: Path, names: list[str]) -> None:
    for seed, name in enumerate(names):
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small).resize((60 + 10 * seed, 50), Image.Resampling.BICUBIC).save(
            folder / name
        )


def nobg(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "segmentation", *map(str, args)]


def by_name(rows: list[dict], root: Path) -> dict[str, dict]:
    return {Path(row["input"]).relative_to(root).as_posix(): row for row in rows}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_batch_connects_to_a_ray_start_cluster_with_its_token(
    ray_head: Head, tmp_path: Path
) -> None:
    from segmentation.segmenter import load_segmenter

    photos, out = tmp_path / "photos", tmp_path / "out"
    good = ["a.jpg", "sub/b.png", "sub/deeper/c.webp"]
    write_photos(photos, good)
    (photos / "broken.jpg").write_text("not a photo\n")
    assert (ray_head.home / ".ray" / "auth_token").is_file()  # where Ray put it, not set here
    args = ["batch", photos, out, "--engine", "ray", "--address", ray_head.address]
    run = subprocess.run(
        nobg(*args), env=ray_env(ray_head.home), cwd=tmp_path, capture_output=True, text=True
    )
    print(run.stderr[-3000:])  # the measured run, for the closing note (pytest -s)
    assert run.returncode == 1, run.stderr[-3000:]  # broken.jpg
    assert "3 written, 0 already done, 1 failed" in run.stderr
    rows = by_name(read_manifest(out / "manifest.csv"), photos)
    print({name: (row["status"], row["error"][:40]) for name, row in rows.items()})
    assert set(rows) == {*good, "broken.jpg"}
    assert rows["broken.jpg"]["status"] == "error" and rows["broken.jpg"]["output"] == ""
    segmenter = load_segmenter(None)  # what the actors loaded: the shipped model
    for name in good:
        target = (out / name).with_suffix(".png")
        assert rows[name]["status"] == "ok" and rows[name]["output"] == str(target)
        with Image.open(photos / name) as source:
            size = source.size
        got = np.asarray(Image.open(target))
        assert (got.shape[1], got.shape[0], got.shape[2]) == (*size, 4)
        expected = segmenter.predict(photos / name).alpha.astype(int)
        assert np.abs(got[:, :, 3].astype(int) - expected).max() <= 1, name

    # The same cluster refuses a client without its token: one line says what to set.
    # (Ray tries 20 times a second apart; RAY_gcs_server_port_wait_time_s=1 tries once.)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    env = ray_env(stranger, RAY_gcs_server_port_wait_time_s="1")
    refused = subprocess.run(
        nobg("batch", photos, tmp_path / "out2", "--engine", "ray", "--address", ray_head.address),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    print(refused.stderr[-2000:])
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {ray_head.address}: the Ray cluster refused the connection for "
        "authentication: set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN, "
        "or in a file named by RAY_AUTH_TOKEN_PATH (`ray get-auth-token` on the head node "
        "prints it)"
    ]


def actor_death_hook() -> None:
    """Ray worker set-up for the actor-death test (``worker_process_setup_hook``).

    victim.jpg: the first actor to get it writes its pid and waits for the test to kill
    it. poison.jpg: kills its actor every time, as an image that crashes the decoder or
    draws the OOM killer would. Each try is logged with the pid that made it.
    """
    from segmentation.batch import worker

    folder = Path(os.environ[DEATHS_ENV])
    process = worker.Worker.process

    def dying_process(
        self: worker.Worker, job: Job, data: bytes | None, in_fs: Any, out_fs: Any
    ) -> dict[str, Any]:
        name = posixpath.basename(job.source)
        with (folder / "tries.log").open("a") as log:
            log.write(f"{name} {os.getpid()}\n")
        if name == POISON:
            os.kill(os.getpid(), signal.SIGKILL)
        pid_file = folder / "victim.pid"
        if name == VICTIM and not pid_file.exists():
            (folder / "victim.tmp").write_text(str(os.getpid()))
            (folder / "victim.tmp").rename(pid_file)
            time.sleep(120)  # killed by the test long before
            raise RuntimeError("the test did not kill this actor")
        return process(self, job, data, in_fs, out_fs)

    worker.Worker.process = dying_process


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_actor_loses_no_input(ray_head: Head, tmp_path: Path) -> None:
    photos, out, deaths = tmp_path / "photos", tmp_path / "out", tmp_path / "deaths"
    names = ["a.jpg", "b.jpg", "c.jpg", VICTIM, POISON]
    write_photos(photos, names)
    deaths.mkdir()
    runtime_env = {
        "env_vars": {"PYTHONPATH": str(REPO), DEATHS_ENV: str(deaths)},
        "worker_process_setup_hook": f"tests.{Path(__file__).stem}.actor_death_hook",
    }
    args = ["batch", photos, out, "--engine", "ray", "--address", ray_head.address]
    args += ["--runtime-env", json.dumps(runtime_env)]
    with (tmp_path / "stderr.txt").open("w") as stderr:
        run = subprocess.Popen(nobg(*args), env=ray_env(ray_head.home), cwd=tmp_path, stderr=stderr)
    try:
        pid_file = deaths / "victim.pid"
        deadline = time.monotonic() + 180
        while not pid_file.exists():
            assert run.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
            assert time.monotonic() < deadline, "no actor got victim.jpg"
            time.sleep(0.1)
        killed = int(pid_file.read_text())
        os.kill(killed, signal.SIGKILL)  # mid-run: the actor holds victim.jpg
        code = run.wait(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    stderr_text = (tmp_path / "stderr.txt").read_text()
    print(stderr_text[-3000:])
    assert code == 1, stderr_text[-3000:]  # poison.jpg
    assert "4 written, 0 already done, 1 failed" in stderr_text

    rows = by_name(read_manifest(out / "manifest.csv"), photos)
    print({name: (row["status"], row["error"][:60]) for name, row in rows.items()})
    assert set(rows) == set(names)
    for name in names[:-1]:
        assert rows[name]["status"] == "ok", rows[name]
        assert (out / name).with_suffix(".png").is_file()
    assert rows[POISON]["status"] == "error" and rows[POISON]["output"] == ""
    assert rows[POISON]["error"].startswith(DIED)
    assert not (out / POISON).with_suffix(".png").exists()

    tries = [line.split() for line in (deaths / "tries.log").read_text().splitlines()]
    victim = [int(pid) for name, pid in tries if name == VICTIM]
    poison = [int(pid) for name, pid in tries if name == POISON]
    assert victim[0] == killed and len(victim) == 2 and victim[1] != killed  # a new actor
    assert len(poison) == MAX_TRIES and len(set(poison)) == MAX_TRIES  # a new actor each try
    print({"killed": killed, "victim tries": victim, "poison tries": poison})


def job(name: str) -> Job:
    return Job(f"/in/{name}", f"/out/{name}.png", 1)


def row_of(item: Job) -> dict:
    return {"input": item.source, "status": "ok", "output": item.target}


class PipelineDied(Exception):
    """Stands in for ray.exceptions.RayError."""


def test_a_failed_pipeline_runs_the_rest_again_and_then_gives_up() -> None:
    jobs = [job(n) for n in "abcd"]
    calls: list[list[str]] = []

    def dies_after_one(pending: list[Job]) -> Iterator[dict]:
        calls.append([j.source for j in pending])
        yield row_of(pending[0])
        if len(calls) == 1:
            raise PipelineDied("actor killed for good")
        yield from (row_of(j) for j in pending[1:])

    rows = list(ray_engine._in_rounds(jobs, dies_after_one, PipelineDied))
    assert [r["input"] for r in rows] == [j.source for j in jobs]  # each once
    assert calls == [[j.source for j in jobs], [j.source for j in jobs[1:]]]

    calls.clear()

    def always_dies(pending: list[Job]) -> Iterator[dict]:
        calls.append([j.source for j in pending])
        raise PipelineDied("node lost")
        yield  # a generator, like the real one

    rows = list(ray_engine._in_rounds(jobs, always_dies, PipelineDied))
    assert len(calls) == MAX_TRIES
    assert [(r["input"], r["status"], r["output"]) for r in rows] == [
        (j.source, "error", "") for j in jobs
    ]
    assert {r["error"] for r in rows} == {"not processed: PipelineDied: node lost"}


def test_token_lookup_follows_ray(monkeypatch, tmp_path: Path) -> None:
    for variable in AUTH_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ray_engine.token_source() is None
    assert ray_engine._use_token_if_found() is None
    assert "RAY_AUTH_MODE" not in os.environ  # nothing found: nothing set

    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("   \n")
    assert ray_engine.token_source() is None  # empty: Ray ignores it too
    (tmp_path / ".ray" / "auth_token").write_text("abc123")
    assert ray_engine.token_source() == str(tmp_path / ".ray" / "auth_token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "elsewhere"))
    assert ray_engine.token_source() == f"RAY_AUTH_TOKEN_PATH ({tmp_path / 'elsewhere'})"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "xyz")
    assert ray_engine.token_source() == "RAY_AUTH_TOKEN"  # Ray's first choice

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user's choice is kept
    assert ray_engine._use_token_if_found() is None
    assert os.environ["RAY_AUTH_MODE"] == "disabled"


def test_an_authentication_refusal_is_told_apart(monkeypatch) -> None:
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    for variable in AUTH_VARIABLES:
        monkeypatch.delenv(variable, raising=False)

    def failed(cause: str) -> ConnectionError:
        try:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from (
                RuntimeError(cause)
            )
        except ConnectionError as exc:
            return exc

    refused = failed("ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: ...")
    assert ray_engine._refused_for_authentication(refused)
    assert not ray_engine._refused_for_authentication(failed("TimedOut: GCS not available"))
    assert "set RAY_AUTH_MODE=token and" in ray_engine._auth_advice(None)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "set the cluster's token in RAY_AUTH_TOKEN" in ray_engine._auth_advice(None)
    wrong = ray_engine._auth_advice("RAY_AUTH_TOKEN")
    assert "the token from RAY_AUTH_TOKEN is not this cluster's" in wrong
