"""deploy/systemd/ checked by systemd-analyze verify, in a root folder laid out as the README installs it.

The container runs no systemd, and the units name /opt/sofeed/... programs
that are not installed here, so verify runs with --root: a folder holding
systemd's own units (which the sofeed ones are ordered against), the sofeed
units in etc/systemd/system and an executable at each ExecStart path. Any
line it prints (an unknown key, a bad value) fails the test, not just its
exit status, which stays 0 for a mere unknown key.
"""

import configparser
import os
import shutil
import subprocess

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.check

UNITS = ROOT / "deploy" / "systemd"
SERVICES = ("sofeed-web.service", "sofeed-scheduler.service", "sofeed-ferretdb.service")
SYSTEMD_UNITS = "/usr/lib/systemd/system"


def unit(name):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS / name)
    return parser


def install_root(folder):
    """A root folder with systemd's units, sofeed's, and a stand-in for each program they start."""
    shutil.copytree(SYSTEMD_UNITS, folder / SYSTEMD_UNITS.lstrip("/"), symlinks=True)
    target = folder / "etc" / "systemd" / "system"
    target.mkdir(parents=True)
    for name in SERVICES:
        shutil.copy(UNITS / name, target / name)
        program = folder / unit(name)["Service"]["ExecStart"].split()[0].lstrip("/")
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    return target


def verify(folder, target):
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={folder}", *(str(target / n) for n in SERVICES)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"),
    )


def test_systemd_analyze_verify_accepts_every_unit_without_a_word(tmp_path):
    result = verify(tmp_path, install_root(tmp_path))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_analyze_verify_would_catch_a_mistake_in_a_unit(tmp_path):
    target = install_root(tmp_path)
    with open(target / "sofeed-web.service", "a") as broken:
        broken.write("[Service]\nRestrat=on-failure\n")
    result = verify(tmp_path, target)
    assert "Unknown key 'Restrat'" in result.stdout + result.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_each_unit_restarts_on_failure_as_the_sofeed_user_in_a_sandbox_with_the_shared_environment(name):
    service = unit(name)["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] == service["Group"] == "sofeed"
    assert service["EnvironmentFile"] == "/etc/sofeed/sofeed.env"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""


def test_only_the_database_unit_may_write_to_disk_and_the_web_app_gets_a_fresh_metrics_folder():
    web, scheduler, ferretdb = (unit(name)["Service"] for name in SERVICES)
    assert ferretdb["StateDirectory"] in ferretdb["ExecStart"].replace("/var/lib/", "")
    assert "ReadWritePaths" not in web
    assert "ReadWritePaths" not in scheduler
    assert web["RuntimeDirectory"] == "sofeed-web"
    assert web["Environment"] == "PROMETHEUS_MULTIPROC_DIR=/run/sofeed-web"


def test_systemd_sysusers_makes_the_sofeed_user_and_group_the_units_run_as(tmp_path):
    (tmp_path / "etc").mkdir()
    made = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(UNITS / "sofeed.sysusers")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    [user] = [
        line for line in (tmp_path / "etc" / "passwd").read_text().splitlines() if line.startswith("sofeed:")
    ]
    assert user.endswith(":/opt/sofeed:/usr/sbin/nologin")
    assert any(line.startswith("sofeed:") for line in (tmp_path / "etc" / "group").read_text().splitlines())
