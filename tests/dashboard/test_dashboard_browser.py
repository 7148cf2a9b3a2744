"""Real browser: `searchsage dashboard` (streamlit run) + headless Chromium via Playwright, every page.

Screenshots go to a tmp dir (and to ``$SEARCHSAGE_SCREENSHOTS`` when set, e.g. ``docs/screenshots``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dash_fixtures import HEALTHY, SRM, DashEnv

from encoders.localredis.server import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]

CHART = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
# (url path, text that must be visible, screenshot name, has charts)
PAGES = [
    ("", "Experiments", "experiments", False),
    (f"detail?experiment={SRM}", "Sample ratio mismatch — verdict blocked", "detail_srm", True),
    (f"detail?experiment={HEALTHY}", "SRM check passed", "detail", True),
    (f"relevance?experiment={HEALTHY}", "Queries won most", "relevance", True),
    ("model-card", "Offline evaluation", "model_card", True),
    ("homefeed", "Tower minus each baseline and ablation", "homefeed", True),
    ("explorer", "Type a query", "explorer_empty", False),
]


@pytest.fixture(scope="module")
def server(dash_env: DashEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("dash-server") / "server.log"
    env = {**os.environ, "SEARCHSAGE_REDIS": ""}
    cmd = [sys.executable, "-m", "encoders.cli.main", "dashboard", "--results", str(dash_env.results),
           "--bundle", str(dash_env.bundle), "--pins", str(dash_env.pins), "--homefeed", str(dash_env.homefeed),
           "--host", "127.0.0.1",
           "--port", str(port), "--headless"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dashboard did not start (exit {proc.poll()}): {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI and its streamlit child (our own process group)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_every_page_renders_in_chromium(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            for path, text, name, has_chart in PAGES:
                page.goto(f"{server}/{path}")
                page.get_by_text(text).first.wait_for(timeout=30_000)
                if has_chart:
                    page.locator(CHART).first.wait_for(timeout=30_000)
                page.wait_for_timeout(500)  # let the remaining charts draw
                assert page.locator('[data-testid="stException"]').count() == 0, f"traceback on /{path}"
                assert page.get_by_text("Page not found").count() == 0
                page.screenshot(path=str(shots / f"{name}.png"))
            # the SRM banner is an error alert on the SRM experiment only
            page.goto(f"{server}/detail?experiment={SRM}")
            banner = page.get_by_text("Sample ratio mismatch — verdict blocked").first
            banner.wait_for(timeout=30_000)
            assert page.locator('[data-testid="stAlertContentError"]').count() >= 1
            assert page.get_by_text("Verdict —").count() == 0
            # explorer: type a query, get live nearest pins and the store status
            page.goto(f"{server}/explorer")
            box = page.get_by_label("Query")
            box.wait_for(timeout=30_000)
            box.fill("angle bracket")
            box.press("Enter")
            page.get_by_text("Nearest 10 pins").wait_for(timeout=30_000)
            page.get_by_text("Online store not configured").first.wait_for(timeout=10_000)
            page.locator(CHART).first.wait_for(timeout=30_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / "explorer.png"))
            # sidebar navigation between pages works too
            page.get_by_role("link", name="Relevance").first.click()
            page.get_by_text("Judged queries per arm").first.wait_for(timeout=30_000)
        finally:
            browser.close()
    names = sorted(f.name for f in shots.iterdir())
    assert names == sorted([f"{p[2]}.png" for p in PAGES] + ["explorer.png"])
    assert all((shots / n).stat().st_size > 10_000 for n in names)
    keep = os.environ.get("SEARCHSAGE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for n in names:
            shutil.copyfile(shots / n, Path(keep) / n)
