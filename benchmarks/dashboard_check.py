"""Check, in a real browser, that optuna-dashboard shows what a metapeft study writes.

Runs a short ``metapeft tune`` study (the tiny model; artifacts and notes on), serves it
with ``optuna-dashboard --artifact-dir``, renders the study's note page and its trials page
in headless Chromium, asserts that the notes' text (the zero-shot baseline, the
recommendation, a trial's phase, its predicted-against-measured table and settings) and
the adapter artifacts are on the rendered pages, and saves screenshots of both.

    python benchmarks/dashboard_check.py [--out docs/dashboard] [--trials 3]

Needs Chromium (Debian: ``apt-get install chromium``); exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# What must be on the rendered pages (the study's note page, then its trials page).
STUDY_PAGE_TEXT = ("Zero-shot baseline", "Meta-model recommendation", "Most similar past tasks")
TRIALS_PAGE_TEXT = ("Phase:", "predicted", "measured", "Settings", "adapter_config.json")


def find_browser() -> str | None:
    """The path of a Chromium-family browser, or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(storage: str, artifacts: Path, port: int) -> subprocess.Popen:
    """optuna-dashboard on ``port``, once it answers."""
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    process = subprocess.Popen(
        [str(dashboard), storage, "--port", str(port), "--artifact-dir", str(artifacts)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2)
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"optuna-dashboard did not answer on port {port} within 60 s")


def _browse(browser: str, *options: str) -> str:
    # --virtual-time-budget lets the page's own requests finish before the DOM is read.
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1400,1500",
        "--virtual-time-budget=20000",
        *options,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def rendered_text(browser: str, url: str) -> str:
    """The page's DOM after its scripts ran."""
    return _browse(browser, "--dump-dom", url)


def screenshot(browser: str, url: str, path: Path) -> Path:
    _browse(browser, f"--screenshot={path}", url)
    return path


def run_study(workdir: Path, trials: int) -> tuple[str, Path]:
    """A short study of the tiny model with artifacts; returns (storage URL, artifacts)."""
    from metapeft_optuna.cli import main

    storage = f"sqlite:///{workdir / 'dashboard.db'}"
    code = main(
        [
            "tune",
            "--task",
            "parity@64",
            "--model",
            "tiny",
            "--trials",
            str(trials),
            "--eval-examples",
            "16",
            "--storage",
            storage,
            "--quiet",
        ]
    )
    if code != 0:
        raise RuntimeError(f"metapeft tune exited with {code}")
    return storage, workdir / "artifacts"


def check(browser: str, storage: str, artifacts: Path, out: Path | None) -> list[str]:
    """Render the study's note and trials pages; returns the texts that are missing."""
    port = free_port()
    process = serve(storage, artifacts, port)
    try:
        base = f"http://127.0.0.1:{port}/dashboard/studies/1"
        pages = {
            "note": (STUDY_PAGE_TEXT, f"{base}/note"),
            "trials": (TRIALS_PAGE_TEXT, f"{base}/trials"),
        }
        missing = []
        for name, (texts, url) in pages.items():
            dom = rendered_text(browser, url)
            missing += [f"{name} page: {t!r}" for t in texts if t not in dom]
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                screenshot(browser, url, out / f"{name}.png")
        return missing
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/dashboard", help="folder for the screenshots")
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    browser = find_browser()
    if browser is None:
        sys.exit(f"no browser found ({', '.join(BROWSERS)}); on Debian: apt-get install chromium")
    with tempfile.TemporaryDirectory() as workdir:
        storage, artifacts = run_study(Path(workdir), args.trials)
        missing = check(browser, storage, artifacts, Path(args.out))
    if missing:
        sys.exit("missing from the rendered pages: " + "; ".join(missing))
    print(f"every check passed; screenshots in {args.out}/")


if __name__ == "__main__":
    main()
