"""Take the README's screenshot of the web demo (docs/images/demo.png) with headless Chromium.

    python docs/screenshot_demo.py CKPT [--scene 0] [--out docs/images/demo.png] [--chromium /usr/bin/chromium]

Serves ``python -m amodal_lightning.demo ckpt_path=CKPT open_scene=N`` on a free local port (the page opens on test
scene N, its objects marked by their true visible masks and completed), waits for the page, lets Chromium render it
(``--headless --screenshot``) and stops the demo. The PNG is reduced to a 256-colour palette to stay small. Needs
the ``[demo]`` extra and Chromium (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
DEFAULT_OUT = REPO_ROOT / "docs" / "images" / "demo.png"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# The page is laid out for a wide window; this height shows the inputs, the overlay, the masks, the samples and, for
# a whole-object model, the whole samples of a scene with four objects.
WINDOW = (1400, 2350)
# Loading the checkpoint, completing the opening scene and starting the server take seconds on a CPU; the page then
# holds the scene's results as it loads, and Chromium renders it within this (virtual) time.
STARTUP_TIMEOUT_S = 300
POLL_S = 0.5
RENDER_BUDGET_MS = 10000
CHROMIUM_TIMEOUT_S = 120
# A palette keeps a page of flat colours small (the README image stays under a few hundred KB).
PALETTE_COLOURS = 256


def free_port() -> int:
    """A port no one listens on now (the system's pick)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_for(url: str, server: subprocess.Popen) -> None:
    """Return once ``url`` answers; fail if the server exits first or takes too long."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: the demo exited with status {server.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=POLL_S):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(POLL_S)
    raise SystemExit(f"error: the demo did not answer at {url} within {STARTUP_TIMEOUT_S} s")


def screenshot(url: str, out: Path, chromium: str) -> None:
    """Chromium's headless screenshot of ``url``, saved as a palette PNG at ``out``."""
    with tempfile.TemporaryDirectory() as profile:
        raw = Path(profile) / "page.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",  # Chromium refuses to run as root with its sandbox
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--virtual-time-budget={RENDER_BUDGET_MS}",
                f"--screenshot={raw}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=CHROMIUM_TIMEOUT_S,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(raw).convert("RGB").quantize(PALETTE_COLOURS).save(out, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", help="the checkpoint to show (ckpt_path of the demo)")
    parser.add_argument("--scene", type=int, default=0, help="the test scene the page opens on")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--chromium", default=DEFAULT_CHROMIUM)
    parser.add_argument("overrides", nargs="*", help="more demo overrides (inference.steps=10 ...)")
    args = parser.parse_intermixed_args(argv)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "amodal_lightning.demo",
        f"ckpt_path={Path(args.ckpt).resolve()}",
        f"open_scene={args.scene}",
        f"port={port}",
        "port_search=0",
        "hydra.run.dir=" + tempfile.mkdtemp(prefix="demo_screenshot_"),
        *args.overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    server = subprocess.Popen(command, env=env)
    try:
        url = f"http://{HOST}:{port}/"
        wait_for(url, server)
        screenshot(url, args.out, args.chromium)
    finally:
        server.terminate()
        server.wait()
    print(f"{args.out}: {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
