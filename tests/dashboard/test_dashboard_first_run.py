"""`searchsage dashboard` without --headless on a machine where Streamlit never ran (no
~/.streamlit/credentials.toml) must serve at once, not wait at Streamlit's first-run e-mail prompt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from encoders.localredis.server import free_port

pytestmark = pytest.mark.slow


def test_first_run_does_not_stop_at_the_email_prompt(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path), "BROWSER": "true"}  # fresh home; "open a browser" = /bin/true
    cli = [sys.executable, "-m", "encoders.cli.main", "dashboard", "--port", str(port), "--results", str(tmp_path)]
    # stdin stays open and silent, like a terminal nobody types into: a prompt would wait forever
    proc = subprocess.Popen(cli, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=tmp_path, start_new_session=True)
    try:
        deadline, up = time.monotonic() + 60, False
        while time.monotonic() < deadline and not up and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    up = r.status == 200
            except OSError:
                time.sleep(0.3)
        assert up, "the dashboard did not start serving"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI and the streamlit process it started (own session)
        try:
            raw = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raw = proc.communicate()[0]
        out = raw.decode(errors="replace")
    assert "Email:" not in out and "Welcome to Streamlit" not in out
