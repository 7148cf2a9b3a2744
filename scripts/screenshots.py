"""Take the README's dashboard screenshots from a real demo run (not the tests' 32-d model).

    .venv/bin/searchsage demo                       # writes runs/demo, prints SEARCHSAGE_REDIS=...
    SEARCHSAGE_REDIS=127.0.0.1:PORT .venv/bin/python scripts/screenshots.py --workdir runs/demo --out docs/screenshots

Starts ``searchsage dashboard`` on the demo's results, bundle, feature repository, pins and homefeed
evaluation (when the demo ran homefeed), opens every
page in headless Debian Chromium (Playwright), types ``--query`` into the embedding explorer with the
online store connected, and writes one PNG per page. Exits non-zero when a page shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]
CHART = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    raise SystemExit(f"the dashboard did not start (exit {proc.poll()})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("runs/demo"), help="a finished `searchsage demo` directory")
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="where the PNGs go")
    p.add_argument("--query", default="navy blue exterior paint", help="query typed into the explorer")
    p.add_argument("--port", type=int, default=8599, help="dashboard port on 127.0.0.1")
    args = p.parse_args(argv)
    summary = json.loads((args.workdir / "summary.json").read_text())
    results = Path(summary["results"])
    experiments = sorted(d.name for d in results.iterdir() if (d / "summary.json").is_file())
    if not experiments:
        raise SystemExit(f"no experiment under {results}")
    exp = experiments[0]
    env = dict(os.environ)
    if summary.get("redis") and not env.get("SEARCHSAGE_REDIS"):
        env["SEARCHSAGE_REDIS"] = summary["redis"]
    cmd = [sys.executable, "-m", "encoders.cli.main", "dashboard", "--results", str(results), "--bundle",
           summary["bundle"], "--repo", summary["feature_repo"], "--pins", str(Path(summary["dataset"]) / "pins.parquet"),
           "--host", "127.0.0.1", "--port", str(args.port), "--headless"]
    homefeed = (summary.get("homefeed") or {}).get("eval_report")
    if homefeed:
        cmd += ["--homefeed", str(Path(homefeed).parent)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{args.port}"
    pages = [("", "experiments", "Experiments"), (f"detail?experiment={exp}", "detail", "Verdict"),
             (f"relevance?experiment={exp}", "relevance", "Relevance"), ("model-card", "model_card", "Offline evaluation")]
    if homefeed:
        pages.append(("homefeed", "homefeed", "Tower minus each baseline and ablation"))
    try:
        _wait_healthy(url, proc)
        from playwright.sync_api import sync_playwright

        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            for path, name, text in pages:
                page.goto(f"{url}/{path}")
                page.get_by_text(text).first.wait_for(timeout=60_000)
                page.wait_for_timeout(2500)
                if page.locator('[data-testid="stException"]').count():
                    raise SystemExit(f"a traceback on /{path}")
                page.screenshot(path=str(args.out / f"{name}.png"))
                print(f"wrote {args.out / (name + '.png')}")
            page.goto(f"{url}/explorer")
            box = page.get_by_label("Query")
            box.wait_for(timeout=60_000)
            box.fill(args.query)
            box.press("Enter")
            page.get_by_text("Nearest 10 pins").wait_for(timeout=60_000)
            page.wait_for_timeout(3000)
            if page.locator('[data-testid="stException"]').count():
                raise SystemExit("a traceback on /explorer")
            page.screenshot(path=str(args.out / "explorer.png"))
            print(f"wrote {args.out / 'explorer.png'}")
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
