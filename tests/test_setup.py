"""`make setup` before it builds FerretDB: Go must be there and new enough, or one line says so.

Each test runs the Makefile's real FerretDB rule with a stand-in `go` on
PATH (a two-line shell script that prints a version), building into the
test's own folder, so nothing of the checkout is rebuilt.
"""

import re
import subprocess

import pytest

from tests.helpers import ROOT

# What the rule needs besides go: make itself, sh and sed.
SYSTEM_PATH = "/usr/bin:/bin"


def make_ferretdb(tmp_path, go_version=None):
    """`make` of the FerretDB binary into tmp_path, with PATH holding only a go that prints go_version."""
    fake = tmp_path / "fake-go"
    fake.mkdir()
    if go_version is not None:
        go = fake / "go"
        go.write_text(f'#!/bin/sh\necho "go version {go_version} linux/amd64"\n')
        go.chmod(0o755)
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "--always-make",
            f"FERRETDB={tmp_path / 'ferretdb'}",
            "-C",
            ROOT,
            str(tmp_path / "ferretdb"),
        ],
        env={"PATH": f"{fake}:{SYSTEM_PATH}", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def said_by_the_check(result):
    """The lines the Makefile printed itself, not make's own "make: *** ... Error 1"."""
    return [line for line in result.stderr.splitlines() if not line.startswith("make: ")]


@pytest.mark.parametrize("version", ["go1.19.8", "go1.23.12", "go1.9"])
def test_setup_with_a_go_older_than_its_go_mod_says_so_in_one_line_and_builds_nothing(tmp_path, version):
    result = make_ferretdb(tmp_path, version)
    assert result.returncode != 0
    [line] = said_by_the_check(result)
    assert f"is {version.removeprefix('go')}" in line
    assert "Go 1.24 or newer" in line
    assert "https://go.dev/dl/" in line
    assert "go build" not in result.stdout


def test_setup_without_go_says_so_in_one_line(tmp_path):
    result = make_ferretdb(tmp_path, go_version=None)
    assert result.returncode != 0
    [line] = said_by_the_check(result)
    assert "there is no go on PATH" in line
    assert "install Go 1.24 or newer from https://go.dev/dl/" in line


@pytest.mark.parametrize("version", ["go1.24.0", "go1.26.8", "go1.100.1", "go2.0"])
def test_setup_with_a_new_enough_go_goes_on_to_build(tmp_path, version):
    result = make_ferretdb(tmp_path, version)
    assert result.returncode == 0, result.stderr
    assert said_by_the_check(result) == []
    assert "go build -trimpath" in result.stdout


def pins(path):
    """{normalised name: version} of a requirements file's `name==version` lines."""
    found = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#")[0].strip().rstrip("\\").strip()
        if "==" in requirement:
            name, version = requirement.split("==")
            found[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return found


def test_the_lock_holds_every_direct_requirement_at_its_pinned_version():
    locked = pins(ROOT / "requirements.lock")
    direct = pins(ROOT / "requirements.txt") | pins(ROOT / "requirements-dev.txt")
    differ = {
        name: (version, locked.get(name)) for name, version in direct.items() if locked.get(name) != version
    }
    assert differ == {}, "a requirements file changed after the lock: run `make lock`"
    # And the rest of the tree besides, Scrapy's own dependencies among them.
    assert {"cryptography", "pyopenssl", "w3lib", "protego", "zope-interface"} <= set(locked)
