"""``searchsage dashboard``: help, argument errors, and the streamlit command it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dashboard.cli import APP, dashboard_env, streamlit_command
from dashboard.settings import DashboardSettings
from encoders.cli.main import build_parser, main


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["dashboard", *argv])


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["dashboard", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--results", "--bundle", "--repo", "--pins", "--homefeed", "--port", "--host", "--headless"):
        assert flag in out


def test_bad_paths_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--bundle", str(tmp_path / "nope"), "--headless"]) == 2
    assert "--bundle" in capsys.readouterr().err
    assert main(["dashboard", "--repo", str(tmp_path), "--headless"]) == 2
    assert "no feature_store.yaml" in capsys.readouterr().err
    assert main(["dashboard", "--homefeed", str(tmp_path / "nope"), "--headless"]) == 2
    assert "--homefeed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dashboard", "--port", "70000"])
    assert "expected a TCP port in 1..65535" in capsys.readouterr().err


def test_settings_travel_by_env_and_command_binds_the_host(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text("project: x\n")
    args = _args("--results", str(tmp_path / "res"), "--repo", str(repo), "--port", "8765", "--headless")
    env = dashboard_env(args, base={})
    cfg = DashboardSettings.from_env(env)
    assert cfg.results == (tmp_path / "res").resolve() and cfg.repo == repo.resolve()
    assert cfg.pins == repo.resolve() / "data" / "pins.parquet" and cfg.bundle is None
    cmd = streamlit_command(args)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(APP)
    i = cmd.index("--server.address")
    assert cmd[i + 1] == "127.0.0.1" and cmd[cmd.index("--server.port") + 1] == "8765"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
