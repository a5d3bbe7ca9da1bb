"""What an SSH server says reaches the terminal escaped.

A keyboard-interactive login sends its own instructions and prompts, which the SSH
transport's default hooks (:mod:`nbdtui.client.transport.ssh.prompts`) print as they
are. The command line installs these instead, which show them through
:func:`nbdtui.present.terminal_text.terminal_text`: a server cannot clear the screen or
set the window title while it asks for a password.
"""

from __future__ import annotations

import sys

from nbdtui.present.terminal_text import terminal_text


def _notice(message: str) -> None:
    print(f"nbdtui: {terminal_text(message, backslash=False)}", file=sys.stderr, flush=True)


async def _password_prompt(prompt: str, echo: bool = False) -> str | None:
    from nbdtui.client.transport.ssh.prompts import terminal_password_prompt

    return await terminal_password_prompt(terminal_text(prompt, backslash=False), echo)


def install() -> None:
    """Use the escaping notice and password prompt for this process's SSH logins."""
    from nbdtui.client.transport.ssh import prompts

    prompts.set_notice(_notice)
    prompts.set_password_prompt(_password_prompt)
