"""The command line shows what an SSH server says (keyboard-interactive instructions and
prompts, notices) escaped: it cannot act on the terminal."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from nbdtui.cli.parser import target_endpoint
from nbdtui.client.transport.ssh import prompts


@pytest.fixture(autouse=True)
def default_hooks():
    yield
    prompts.set_notice(None)
    prompts.set_password_prompt(prompts.terminal_password_prompt)


def test_an_ssh_endpoint_installs_the_escaping_hooks(capsys, monkeypatch):
    asked: list[tuple[str, bool]] = []

    async def fake_terminal(prompt: str, echo: bool = False) -> str:
        asked.append((prompt, echo))
        return "answer"

    monkeypatch.setattr(prompts, "terminal_password_prompt", fake_terminal)
    args = argparse.Namespace(uri="nbd+ssh://h/disk?socket=/run/nbd.sock", ssh=None)
    assert target_endpoint(args).transport == "ssh"

    prompts.notify("Welcome\x1b]0;owned\x07\x1b[2J")
    assert capsys.readouterr().err == "nbdtui: Welcome\\u001b]0;owned\\u0007\\u001b[2J\n"
    answer = asyncio.run(prompts.ask_password("\x1b[1APassword: ", False))
    assert answer == "answer"
    assert asked == [("\\u001b[1APassword: ", False)]


def test_other_endpoints_leave_the_hooks_alone(capsys):
    target_endpoint(argparse.Namespace(uri="nbd://h/disk", ssh=None))
    prompts.notify("raw")
    assert capsys.readouterr().err == "nbdtui: raw\n"
