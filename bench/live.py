"""Live camera benchmark: frames/s and capture-to-display latency in a real browser.

A streamlit server runs the app with the trained model; headless Chromium plays a
640 x 480, 30 frames/s fake camera clip (tests/live_clip.py: the example's person in
front of stripes, each frame's index stamped on the person's chest) and streams it
through the Live camera tab. In each page the benchmark watches two <video>s with
requestVideoFrameCallback: the camera's own stream (the capture time of each index)
and the component's processed stream (when each index is shown). From them:

* processed frames/s: how often the page shows a frame it had not shown before (the
  server resends its last result while it works on the next; those repeats are not
  counted);
* latency: from the camera's capture of a frame to the page's display of its processed
  version (median and 90th percentile; first and second half of the window, to show
  that it does not grow: frames are dropped, not queued);
* CPU: the server's and Chromium's CPU time over the window (% of one core), and how
  busy the whole machine was (anything else running shows there).

With one session and with two at once (two browser contexts, each its own stream).
Also the processor alone (no WebRTC): CPU ms a frame on this thread.

Run: ``python -m bench.live [--model PATH] [--seconds 10]``; writes bench/LIVE.md
(keeping its "## Notes" section).
Not part of ``make bench`` (it needs Chromium). Never run it in a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, git_revision, log, machine_line, resolve_model
from tests import live_clip

CHROMIUM = "/usr/bin/chromium"
OUT = ROOT / "bench" / "LIVE.md"
TARGET_FPS = 20.0
TARGET_LATENCY_MS = 150.0
#: The heading in the report under which hand-written notes are kept on a rerun.
NOTES = "## Notes"
CLIP_FRAMES = 1 << live_clip.CODE_BITS  # every index once: 2.1 s at 30 frames/s

#: In every frame: keep the camera's stream where the benchmark can read it, and ask
#: Chromium to keep its resolution when it thinks its CPU is overused (contentHint
#: "detail"), so the figures stay at 640 x 480 instead of a quietly smaller frame.
INIT_JS = """(() => {
    const md = navigator.mediaDevices;
    if (!md || !md.getUserMedia) return;
    const original = md.getUserMedia.bind(md);
    md.getUserMedia = async (constraints) => {
        const stream = await original(constraints);
        for (const track of stream.getVideoTracks()) track.contentHint = 'detail';
        window.__nobgLocal = stream;
        return stream;
    };
})();"""

#: Started in the component's frame; leaves its result in window.__nobgResult.
MEASURE_JS = """(remote, [ms, layout]) => {
    window.__nobgResult = null;
    const {x0, y0, cell, bits, w0, h0} = layout;
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    const read = (v) => {
        const sx = v.videoWidth / w0, sy = v.videoHeight / h0;
        canvas.width = Math.ceil(bits * cell * sx); canvas.height = Math.ceil(cell * sy);
        ctx.drawImage(v, x0 * sx, y0 * sy, bits * cell * sx, cell * sy,
                      0, 0, bits * cell * sx, cell * sy);
        let value = 0;
        for (let b = 0; b < bits; b++) {
            const cx = Math.round((b * cell + cell / 2) * sx), cy = Math.round(cell / 2 * sy);
            const d = ctx.getImageData(cx - 2, cy - 2, 4, 4).data;
            let sum = 0;
            for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
            value = (value << 1) | (sum / (d.length / 4 * 3) > 110 ? 1 : 0);
        }
        return value;
    };
    const local = document.createElement('video');
    local.muted = true;
    local.srcObject = window.__nobgLocal;
    const captured = new Map();
    const samples = [];
    let presented = 0, fresh = 0, last = -1, done = false, captureClock = 'captureTime';
    const t0 = performance.now();
    const onLocal = (now, meta) => {
        if (done) return;
        let t = meta.captureTime;
        if (t === undefined) { t = meta.presentationTime; captureClock = 'presentationTime'; }
        captured.set(read(local), t);
        local.requestVideoFrameCallback(onLocal);
    };
    const onRemote = (now, meta) => {
        if (done) return;
        presented++;
        const code = read(remote);
        if (code !== last) {
            fresh++;
            last = code;
            const shown = meta.expectedDisplayTime || now;
            const t = captured.get(code);
            if (t !== undefined) samples.push([shown - t0, shown - t]);
        }
        remote.requestVideoFrameCallback(onRemote);
    };
    local.play().then(() => {
        local.requestVideoFrameCallback(onLocal);
        remote.requestVideoFrameCallback(onRemote);
    });
    setTimeout(() => {
        done = true;
        local.pause();
        local.srcObject = null;
        window.__nobgResult = {presented, fresh, samples, captureClock,
                               seconds: (performance.now() - t0) / 1000,
                               width: remote.videoWidth, height: remote.videoHeight};
    }, ms);
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def app_server(model: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run app.py`` on a free port, as the browser tests start it."""
    port = free_port()
    env = {**os.environ, "SEGMENTATION_MODEL": str(model), "PYTHONUNBUFFERED": "1"}
    log_path = Path(tempfile.gettempdir()) / f"nobg-live-bench-{port}.log"
    command = [
        *(sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)),
        *("--server.address", "127.0.0.1", "--server.headless", "true"),
        *("--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"),
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=log_file)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"streamlit did not start; see {log_path}")
            time.sleep(0.5)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().strip() == b"ok"
    except OSError:
        return False


# CPU accounting from /proc -----------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``root`` and every process below it, by pid."""
    tree, out, todo = _children(), {}, [root]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def cpu_share(before: dict[int, float], after: dict[int, float], seconds: float) -> float:
    """% of one core used between two :func:`tree_cpu` readings (processes in either)."""
    used = sum(after[p] - before.get(p, 0.0) for p in after)
    return 100 * used / seconds


# The browser side ---------------------------------------------------------------------


def open_stream(browser: Any, url: str) -> tuple[Any, Any]:
    """A new context and page on the app, streaming; (page, the component's <video>)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1300})
    context.add_init_script(INIT_JS)
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Live camera").click()
    page.locator(".st-key-live_on label").click()
    frame = page.frame_locator('iframe[title*="webrtc"]')
    frame.get_by_role("button", name="START").click()
    video = frame.locator("video")
    video.wait_for()
    video.evaluate(
        "(v) => new Promise((ok) => { const t = () => v.videoWidth > 0 && v.currentTime > 0"
        " ? ok() : setTimeout(t, 100); t(); })"
    )
    return page, video


def measure(streams: list[tuple[Any, Any]], seconds: float, server_pid: int) -> dict[str, Any]:
    """Measure every stream at once for ``seconds``; one row of results."""
    layout = {"x0": live_clip.CODE_ORIGIN[0], "y0": live_clip.CODE_ORIGIN[1],
              "cell": live_clip.CODE_CELL, "bits": live_clip.CODE_BITS,
              "w0": live_clip.WIDTH, "h0": live_clip.HEIGHT}  # fmt: skip
    me = os.getpid()
    server0, browser0, busy0 = tree_cpu(server_pid), tree_cpu(me), machine_busy()
    start = time.time()
    for _, video in streams:
        video.evaluate(MEASURE_JS, [int(seconds * 1000), layout])
    time.sleep(seconds)
    results = []
    for page, video in streams:
        result = None
        while result is None:
            result = video.evaluate("() => window.__nobgResult")
            if result is None:
                page.wait_for_timeout(200)
        readout = page.locator(".st-key-live-readout").inner_text()
        results.append((result, readout))
    wall = time.time() - start
    server1, browser1, busy1 = tree_cpu(server_pid), tree_cpu(me), machine_busy()
    browser_share = cpu_share(browser0, browser1, wall) - cpu_share(
        {me: browser0.get(me, 0.0)}, {me: browser1.get(me, 0.0)}, wall
    )
    rows = []
    for result, readout in results:
        samples = [(t, lat) for t, lat in result["samples"] if 0 < lat < 1500]
        latencies = [lat for _, lat in samples]
        half = result["seconds"] * 500
        first = [lat for t, lat in samples if t < half]
        second = [lat for t, lat in samples if t >= half]
        rows.append({
            "fps": result["fresh"] / result["seconds"],
            "presented": result["presented"] / result["seconds"],
            "latency": statistics.median(latencies) if latencies else float("nan"),
            "p90": float(np.percentile(latencies, 90)) if latencies else float("nan"),
            "first": statistics.median(first) if first else float("nan"),
            "second": statistics.median(second) if second else float("nan"),
            "size": f"{result['width']} × {result['height']}",
            "readout": " ".join(readout.split()),
            "clock": result["captureClock"],
            "discarded": len(result["samples"]) - len(samples),
        })  # fmt: skip
    return {
        "rows": rows,
        "server_cpu": cpu_share(server0, server1, wall),
        "browser_cpu": browser_share,
        "machine_busy": 100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
        "load": os.getloadavg(),
    }


def processor_alone(model: Path, frames: int = 60) -> dict[str, float]:
    """CPU ms a frame of LiveProcessor.process on this thread, per background (no WebRTC)."""
    from segmentation import Segmenter
    from segmentation.live import LiveProcessor

    segmenter = Segmenter(model)
    rgb, alpha = live_clip.person(segmenter)
    clip = [live_clip.frame(rgb, alpha, i) for i in range(8)]
    out = {}
    for name, background in (("transparent", None), ("colour", (255, 255, 255)),
                             ("blur", "blur"), ("image", clip[0])):  # fmt: skip
        processor = LiveProcessor(segmenter, background=background)
        processor.process(clip[0])
        t0 = time.thread_time()
        for i in range(frames):
            processor.process(clip[i % len(clip)])
        out[name] = 1000 * (time.thread_time() - t0) / frames
    return out


def report(runs: dict[int, dict[str, Any]], alone: dict[str, float], seconds: float) -> str:
    lines = [
        "# Live camera benchmark",
        "",
        f"Machine: {machine_line()}; code {git_revision()}.",
        "",
        "`python -m bench.live` (see its docstring): the app's Live camera tab in headless "
        "Chromium, fake camera 640 × 480 at 30 frames/s, the trained model, the sidebar's "
        f"defaults (main subject, refinement on, transparent over a checkerboard), "
        f"{seconds:.0f} s per measurement after a few seconds' warm-up. Browser and server "
        "on this machine, no STUN or TURN. *frames/s*: new processed frames the page "
        "showed a second; *shown/s*: frames the page showed a second, repeats included (the "
        "server sends one per camera frame: below 30 its sending falls behind the camera); "
        "*latency*: camera capture to display of that frame, through the "
        "server (median, 90th percentile, and the medians of the window's first and second "
        "half). CPU as % of one core (the machine has "
        f"{os.cpu_count()}); *machine busy* is all CPUs together, whatever runs.",
        "",
        "| sessions | stream | frames/s | shown/s | latency | p90 | 1st / 2nd half | received | "
        "page readout | server CPU | Chromium CPU | machine busy | load (1 min) | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sessions, run in runs.items():
        for i, row in enumerate(run["rows"]):
            ok = row["fps"] >= TARGET_FPS and row["latency"] < TARGET_LATENCY_MS
            lines.append(
                f"| {sessions} | {i + 1} | {row['fps']:.1f} | {row['presented']:.1f} | "
                f"{row['latency']:.0f} ms | "
                f"{row['p90']:.0f} ms | {row['first']:.0f} / {row['second']:.0f} ms | "
                f"{row['size']} | {row['readout']} | {run['server_cpu']:.0f} % | "
                f"{run['browser_cpu']:.0f} % | {run['machine_busy']:.0f} % | "
                f"{run['load'][0]:.1f} | ≥ {TARGET_FPS:.0f} frames/s, < "
                f"{TARGET_LATENCY_MS:.0f} ms: {'PASS' if ok else 'FAIL'} |"
            )
    lines += [
        "",
        "The processor alone (`LiveProcessor.process` on the clip's 640 × 480 frames, CPU ms "
        "a frame on its thread, one-thread interpreter): "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in alone.items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the trained weights")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds before measuring")
    parser.add_argument("--out", type=Path, default=OUT, help="markdown report to write")
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    from playwright.sync_api import sync_playwright

    from segmentation import Segmenter

    log("processor alone…")
    alone = processor_alone(model)
    runs: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="nobg-live-bench-") as tmp:
        clip, _, _ = live_clip.stripes_clip(
            Path(tmp) / "camera.y4m", Segmenter(model), frames=CLIP_FRAMES, stamped=True
        )
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-video-capture={clip}",
                 "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
        with app_server(model) as (url, server), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
            streams = []
            for sessions in (1, 2):
                while len(streams) < sessions:
                    log(f"opening stream {len(streams) + 1}…")
                    streams.append(open_stream(browser, url))
                time.sleep(args.warmup)
                log(f"measuring {sessions} session(s) for {args.seconds:.0f} s…")
                runs[sessions] = measure(streams, args.seconds, server.pid)
            browser.close()
    text = report(runs, alone, args.seconds)
    print(text)
    # Hand-written notes on the figures (under NOTES) survive a rerun.
    old = args.out.read_text() if args.out.exists() else ""
    if NOTES in old:
        text += "\n" + old[old.index(NOTES) :]
    args.out.write_text(text)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
