"""The systemd unit files pass ``systemd-analyze verify`` and ask for what the daemon does."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UNITS = REPO / "systemd"


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing (install Debian's systemd package)")
        pytest.skip("systemd-analyze not installed")
    return exe


def _installed_copy(tmp_path: Path, name: str, as_name: str) -> Path:
    # The units name /opt/trader (the documented install path); verify them as if the
    # checkout were installed there, since verify checks that ExecStart exists.
    text = (UNITS / name).read_text().replace("/opt/trader", str(REPO))
    out = tmp_path / as_name
    out.write_text(text)
    return out


@pytest.mark.parametrize(("name", "as_name"), [("trader.service", "trader.service"),
                                               ("trader@.service", "trader@paper.service"),
                                               ("trader-retrain@.service",
                                                "trader-retrain@btc_xgb.service")])
def test_systemd_analyze_verify_accepts_the_units(tmp_path, name, as_name):
    exe = _analyze()
    assert (REPO / ".venv" / "bin" / "trader").exists() or shutil.which("trader")
    unit = _installed_copy(tmp_path, name, as_name)
    res = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    # verify reports bad settings as warnings with exit code 0: there must be none.
    assert res.stderr.strip() == "", res.stderr


def test_verify_would_catch_a_broken_unit(tmp_path):
    exe = _analyze()
    unit = _installed_copy(tmp_path, "trader.service", "trader.service")
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    res = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "notifyy" in res.stderr


@pytest.mark.parametrize("name", ["trader.service", "trader@.service"])
def test_units_ask_for_notify_watchdog_restart_and_hardening(name):
    text = (UNITS / name).read_text()
    settings = {line.split("=", 1)[0] for line in text.splitlines()
                if "=" in line and not line.startswith("#")}
    for key in ("Type", "WatchdogSec", "Restart", "NoNewPrivileges", "ProtectSystem",
                "ProtectHome", "PrivateTmp", "ReadWritePaths", "EnvironmentFile"):
        assert key in settings, key
    assert "Type=notify" in text and "Restart=on-failure" in text
    assert "ProtectSystem=strict" in text


def test_the_retrain_timer_starts_the_retrain_service_weekly(tmp_path):
    exe = _analyze()
    service = _installed_copy(tmp_path, "trader-retrain@.service",
                              "trader-retrain@btc_xgb.service")
    timer = _installed_copy(tmp_path, "trader-retrain@.timer", "trader-retrain@btc_xgb.timer")
    res = subprocess.run([exe, "verify", str(timer), str(service)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr
    text = (UNITS / "trader-retrain@.service").read_text()
    assert "trader models train /etc/trader/%i.train.yaml --walk-forward" in text
    assert "--out /var/lib/trader/artifacts/%i/" in text  # a new version, never in place
    cal = subprocess.run([exe, "calendar", "Sun *-*-* 02:00:00 UTC"], capture_output=True,
                         text=True, timeout=60)
    assert cal.returncode == 0 and "Sun" in cal.stdout
