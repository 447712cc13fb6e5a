"""What background blur would cost a citizen's browser: MediaPipe's selfie
segmentation (npm ``@mediapipe/selfie_segmentation``, Apache-2.0, model files
shipped in the package) on Chromium's fake camera, against the same page
without it.

The package is not a dependency of Beeldbel: unpack it first and name it::

    npm pack @mediapipe/selfie_segmentation
    tar xzf mediapipe-selfie_segmentation-*.tgz
    .venv/bin/python bench/blur_bench.py --package ./package --seconds 10

The page is served on loopback with Beeldbel's own CSP (plus ``'wasm-unsafe-eval'``
where the run says so). Each mode runs in a fresh Chromium for a warm-up, then
``--seconds``; printed per mode: frames segmented per second, milliseconds per
frame (mean, p95) and the CPU time of all the browser's processes per second of
wall time (1.0 = one core, from ``/proc``). Modes:

- ``camera``: the preview alone (a <video> of the fake camera): the baseline;
- ``canvas``: each frame drawn to a canvas and captured (``captureStream``), the
  pipeline blur needs, without segmentation;
- ``blur``: segmentation and a blurred background drawn under the person;
- ``blur-strict-csp``: ``blur`` under Beeldbel's CSP as it is (no
  ``'wasm-unsafe-eval'``): says whether it starts at all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from aiohttp import web
from playwright.async_api import async_playwright

from controlplane.app.middlewares import CSP

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream=fps=30",
    "--no-sandbox",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
]
WASM_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'")
MODES = ("camera", "canvas", "blur", "blur-strict-csp")
TICKS = os.sysconf("SC_CLK_TCK")

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>blur bench</title><link rel="icon" href="data:,"></head><body>
<video id="v" autoplay muted playsinline width="640" height="480"></video>
<canvas id="c" width="640" height="480"></canvas>
<script src="/mp/selfie_segmentation.js"></script>
<script src="/bench.js"></script></body></html>"""

SCRIPT = """
const mode = new URLSearchParams(location.search).get('mode');
const stats = window.benchStats = {frames: 0, ms: [], error: null, ready: false};
const video = document.getElementById('v');
const canvas = document.getElementById('c');
const ctx = canvas.getContext('2d');
function paint(image, mask) {
  ctx.save();
  ctx.clearRect(0, 0, 640, 480);
  if (mask) {
    ctx.drawImage(mask, 0, 0, 640, 480);
    ctx.globalCompositeOperation = 'source-in';
    ctx.drawImage(image, 0, 0, 640, 480);
    ctx.globalCompositeOperation = 'destination-over';
    ctx.filter = 'blur(12px)';
  }
  ctx.drawImage(image, 0, 0, 640, 480);
  ctx.restore();
}
async function start() {
  video.srcObject = await navigator.mediaDevices.getUserMedia(
    {video: {width: 640, height: 480}, audio: false});
  await video.play();
  let segment = null;
  if (mode !== 'camera') canvas.captureStream(30);
  if (mode.startsWith('blur')) {
    const seg = new SelfieSegmentation({locateFile: (file) => `/mp/${file}`});
    seg.setOptions({modelSelection: 1});
    seg.onResults((r) => paint(r.image, r.segmentationMask));
    await seg.initialize();
    segment = () => seg.send({image: video});
  }
  stats.ready = true;
  const frame = async () => {
    const t0 = performance.now();
    if (segment) await segment();
    else if (mode !== 'camera') paint(video, null);
    stats.ms.push(performance.now() - t0);
    stats.frames += 1;
    video.requestVideoFrameCallback(frame);
  };
  video.requestVideoFrameCallback(frame);
}
start().catch((e) => { stats.error = String(e && e.message || e); });
window.addEventListener('error', (e) => { stats.error = String(e.message); });
"""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def cpu_seconds() -> float:
    """CPU time (user + system) of every process below this one."""
    tree, total, todo = _children(), 0, list(_children().get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def serve(package: Path, csp: str) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text=PAGE,
            content_type="text/html",
            headers={"Content-Security-Policy": csp},
        )

    async def script(request: web.Request) -> web.Response:
        return web.Response(text=SCRIPT, content_type="text/javascript")

    app = web.Application()
    app.router.add_get("/bench.html", page)
    app.router.add_get("/bench.js", script)
    app.router.add_static("/mp/", package)
    return app


async def run_mode(package: Path, mode: str, seconds: float) -> dict[str, object]:
    csp = CSP if mode == "blur-strict-csp" else WASM_CSP
    runner = web.AppRunner(serve(package, csp))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page()
            csp_errors: list[str] = []
            page.on(
                "console",
                lambda m: csp_errors.append(m.text) if m.type == "error" else None,
            )
            await page.goto(f"http://127.0.0.1:{port}/bench.html?mode={mode}")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                state = await page.evaluate(
                    "({r: benchStats.ready, e: benchStats.error})"
                )
                if state["r"] or state["e"]:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # warm-up
            frames0 = await page.evaluate("benchStats.frames")
            cpu0, wall0 = cpu_seconds(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, wall1 = cpu_seconds(), time.monotonic()
            stats = await page.evaluate(
                "({frames: benchStats.frames, ms: benchStats.ms.slice(-300),"
                " error: benchStats.error})"
            )
            await browser.close()
    finally:
        await runner.cleanup()
    ms = sorted(stats["ms"]) or [0.0]
    return {
        "mode": mode,
        "fps": (stats["frames"] - frames0) / (wall1 - wall0),
        "ms_mean": sum(ms) / len(ms),
        "ms_p95": ms[int(len(ms) * 0.95) - 1 if len(ms) > 1 else 0],
        "cores": (cpu1 - cpu0) / (wall1 - wall0),
        "error": stats["error"] or (csp_errors[0][:120] if csp_errors else ""),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument(
        "--disable-gpu", action="store_true", help="as the e2e tests run Chromium"
    )
    args = parser.parse_args()
    if args.disable_gpu:
        ARGS.append("--disable-gpu")
    print(f"{'mode':16} {'fps':>6} {'ms mean':>8} {'ms p95':>8} {'cores':>6}  error")
    for mode in args.modes:
        r = await run_mode(args.package.resolve(), mode, args.seconds)
        print(
            f"{r['mode']:16} {r['fps']:6.1f} {r['ms_mean']:8.1f} {r['ms_p95']:8.1f}"
            f" {r['cores']:6.2f}  {r['error']}"
        )


if __name__ == "__main__":
    asyncio.run(main())
