"""``searchsage dashboard``: start the Streamlit app on the A/B results directory.

    searchsage dashboard [--results DIR] [--bundle BUNDLE] [--repo feature_repo] [--pins PINS.parquet]
                         [--homefeed EVAL_DIR] [--port 8501] [--host 127.0.0.1] [--headless]

Runs ``python -m streamlit run dashboard/app.py`` with the settings in env vars
(:mod:`dashboard.settings`); the process stays in the foreground until interrupted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from encoders.cli_support import CLIError

APP = Path(__file__).resolve().parent / "app.py"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port in 1..65535, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dashboard`` command."""
    p = subparsers.add_parser(
        "dashboard", help="start the Streamlit experiment dashboard",
        description="Serve the experiment dashboard (experiments, detail, relevance, embedding explorer, model "
        "card, homefeed) on http://HOST:PORT. Missing inputs are shown as messages on the pages, not errors.",
    )
    p.add_argument("--results", type=Path, default=Path("ab_results"),
                   help="A/B results root (the --out of `searchsage abtest analyze`; default ab_results)")
    p.add_argument("--bundle", type=Path, help="exported bundle for the explorer and model card")
    p.add_argument("--repo", type=Path, help="Feast repository whose Redis online store the explorer checks")
    p.add_argument("--pins", type=Path, help="pins parquet (pin_id, text[, embedding]) for the explorer's index "
                   "(default: REPO/data/pins.parquet)")
    p.add_argument("--homefeed", type=Path, metavar="EVAL",
                   help="homefeed evaluation for the Homefeed page: the --out directory of `searchsage homefeed "
                   "evaluate` (or its eval_report.json)")
    p.add_argument("--port", type=_port, default=8501, help="port (default 8501)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    p.set_defaults(func=_cmd_dashboard)


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The ``streamlit run`` argv for ``args``. ``showEmailPrompt false``: Streamlit's first run
    (no ``~/.streamlit/credentials.toml``) would otherwise stop at an e-mail prompt unless headless."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", args.host,
            "--server.port", str(args.port), "--server.headless", "true" if args.headless else "false",
            "--server.showEmailPrompt", "false", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none"]


def dashboard_env(args: argparse.Namespace, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the Streamlit process (validated paths as absolute env vars)."""
    from dashboard.settings import DashboardSettings

    if args.bundle is not None and not args.bundle.exists():
        raise CLIError(f"--bundle {args.bundle}: no such directory (expected the output of `searchsage export`)")
    if args.repo is not None and not (args.repo / "feature_store.yaml").is_file():
        raise CLIError(f"--repo {args.repo}: no feature_store.yaml there (expected a Feast repository)")
    if args.pins is not None and not args.pins.is_file():
        raise CLIError(f"--pins {args.pins}: no such file (expected a pins parquet: pin_id, text[, embedding])")
    if args.homefeed is not None and not args.homefeed.exists():
        raise CLIError(f"--homefeed {args.homefeed}: no such file or directory (expected the --out of "
                       "`searchsage homefeed evaluate`)")
    pins = args.pins or (args.repo / "data" / "pins.parquet" if args.repo is not None else None)
    cfg = DashboardSettings(results=args.results, bundle=args.bundle, repo=args.repo, pins=pins, homefeed=args.homefeed)
    env = dict(os.environ if base is None else base)
    env.update(cfg.to_env())
    return env


def _cmd_dashboard(args: argparse.Namespace) -> int:
    env = dashboard_env(args)
    if not args.results.is_dir():
        print(f"warning: results directory {args.results} does not exist yet; the Experiments page will say so",
              file=sys.stderr)
    print(f"SearchSage dashboard on http://{args.host}:{args.port} (results {args.results.resolve()})", flush=True)
    try:
        return subprocess.call(streamlit_command(args), env=env)
    except KeyboardInterrupt:
        return 0
