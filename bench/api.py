"""The HTTP API under load: 8 concurrent clients, 200 cutouts of 1 MP photos.

Starts ``nobg serve`` (one uvicorn worker, the model given) on a free localhost port,
sends a few warm-up requests, then has ``--clients`` threads POST ``--requests`` JPEGs
(1152x864, each client its own photo) to ``/v1/cutout`` as raw bodies, each waiting
for its PNG before sending the next. Reports throughput (requests/s over the whole
run), p50/p95 latency (send to last byte of the PNG), the number of errors (any status
but 200, or a PNG of the wrong size) and the server's peak RSS (VmHWM from /proc).

Run alone with ``python -m bench.api [--model PATH]``; :mod:`bench.run` includes it.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import PHOTO_SIZES, fmt_mb, jpeg_bytes, log, make_photo, proc_status

CLIENTS = 8
REQUESTS = 200
NOBG = Path(sys.executable).with_name("nobg")


@dataclass
class ApiRun:
    """What the load run saw."""

    clients: int
    requests: int
    size: tuple[int, int]
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    peak_rss: int = 0
    start_s: float = 0.0  # process start to /health answering

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else float("nan")

    def percentile(self, q: int) -> float:
        """Latency percentile in ms (statistics' 'inclusive' method)."""
        if len(self.latencies) < 2:
            return float("nan")
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[q - 1] * 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_api(model: Path, clients: int = CLIENTS, requests: int = REQUESTS) -> ApiRun:
    """Start a server, load it, stop it; the measurements."""
    import httpx

    size = PHOTO_SIZES["1 MP"]
    photos = [jpeg_bytes(make_photo(*size, seed=100 + i)) for i in range(clients)]
    run = ApiRun(clients, requests, size)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as out:
            began = time.perf_counter()
            server = subprocess.Popen(
                [str(NOBG), "serve", "--port", str(port), "--model", str(Path(model).resolve())],
                cwd=tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(server, url, log_path)
            run.start_s = time.perf_counter() - began
            with httpx.Client(base_url=url, timeout=120) as client:
                for data in photos:  # warm-up: first allocations, thread pool
                    client.post("/v1/cutout", content=data).raise_for_status()

            counter = iter(range(requests))

            def client_loop(index: int) -> None:
                with httpx.Client(base_url=url, timeout=300) as client:
                    for _ in counter:  # shared: exactly `requests` in all
                        start = time.perf_counter()
                        try:
                            response = client.post("/v1/cutout", content=photos[index])
                            body = response.content
                        except httpx.HTTPError as exc:
                            run.errors.append(f"{type(exc).__name__}: {exc}")
                            continue
                        elapsed = time.perf_counter() - start
                        if response.status_code != 200:
                            run.errors.append(f"{response.status_code}: {response.text[:200]}")
                        elif not _png_size_ok(body, size):
                            run.errors.append("a PNG of the wrong size")
                        else:
                            run.latencies.append(elapsed)

            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(client_loop, range(clients)))
            run.wall_s = time.perf_counter() - start
            run.peak_rss = proc_status(server.pid).get("VmHWM", 0)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return run


def _wait_ready(server: subprocess.Popen, url: str, log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not answer /health within 300 s")


def _png_size_ok(data: bytes, size: tuple[int, int]) -> bool:
    """Width and height from the IHDR chunk, without decoding the PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return (width, height) == size


def api_section(model: Path, clients: int = CLIENTS, requests: int = REQUESTS) -> str:
    """The markdown table for RESULTS.md."""
    log(f"bench: API, {clients} clients x {requests} requests ...")
    run = run_api(model, clients, requests)
    w, h = run.size
    errors = f"{len(run.errors)}" + (f" (first: {run.errors[0]})" if run.errors else "")
    lines = [
        f"| HTTP API (`nobg serve`, 1 worker): {run.requests} POST /v1/cutout of {w}x{h} "
        f"JPEGs from {run.clients} concurrent clients | value | target | result |",
        "|---|---|---|---|",
        f"| throughput | {run.throughput:.2f} requests/s ({run.wall_s:.1f} s in all) | | |",
        f"| latency p50 / p95 | {run.percentile(50):.0f} ms / {run.percentile(95):.0f} ms | | |",
        f"| errors | {errors} | 0 | {'PASS' if not run.errors else 'FAIL'} |",
        f"| server peak RSS (VmHWM) | {fmt_mb(run.peak_rss)} | | |",
        f"| server start to /health answering | {run.start_s:.1f} s | | |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="saved .keras model (default: trained weights)")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    args = parser.parse_args(argv)
    from bench.common import resolve_model

    print(api_section(resolve_model(args.model), args.clients, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
