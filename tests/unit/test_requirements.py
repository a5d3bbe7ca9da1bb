"""The table of what the tests run (tests/support/requirements.py): every package in it is
installed by scripts/install-deps.sh, and a missing program fails the test naming it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import requirements
from tests.support.requirements import PROGRAMS, SYSTEM_MODULES, require

INSTALL_DEPS = Path(__file__).resolve().parents[2] / "scripts" / "install-deps.sh"


def apt_packages(script: str) -> set[str]:
    """The words of the ``APT_PACKAGES=( ... )`` array of a bash script (comments dropped)."""
    match = re.search(r"^APT_PACKAGES=\((.*?)^\)", script, re.M | re.S)
    assert match, "no APT_PACKAGES=( ... ) in scripts/install-deps.sh"
    words: set[str] = set()
    for line in match.group(1).splitlines():
        words.update(line.split("#", 1)[0].split())
    return words


def test_apt_packages_parser_drops_comments():
    script = "X=1\nAPT_PACKAGES=(\n    a b   # c d\n    e\n)\nAPT_PACKAGES_TOO=(z)\n"
    assert apt_packages(script) == {"a", "b", "e"}


def test_install_deps_installs_every_package_the_tests_need():
    installed = apt_packages(INSTALL_DEPS.read_text())
    needed = set(PROGRAMS.values()) | set(SYSTEM_MODULES.values())
    assert needed == requirements.packages()
    assert not needed - installed, f"add to APT_PACKAGES: {sorted(needed - installed)}"


def test_a_missing_program_fails_naming_its_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(requirements, "SBIN", "/nonexistent")
    message = "sfdisk is missing: apt-get install fdisk (scripts/install-deps.sh installs it)"
    with pytest.raises(pytest.fail.Exception) as failed:
        require("sfdisk")
    assert str(failed.value) == message


def test_a_program_missing_from_the_table_is_a_mistake_in_the_test():
    with pytest.raises(KeyError, match="PROGRAMS"):
        require("nbdtui-no-such-binary")


def test_a_missing_system_module_fails_naming_its_package(monkeypatch):
    monkeypatch.setattr(requirements, "SYSTEM_PYTHON", "/nonexistent/python3")
    requirements._system_module_error.cache_clear()
    try:
        with pytest.raises(pytest.fail.Exception, match="apt-get install python3-libnbd"):
            requirements.require_system_module("nbd")
    finally:
        requirements._system_module_error.cache_clear()
