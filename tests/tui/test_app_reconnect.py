"""The TUI rides out a dropped connection: its exports reconnect and resend."""

from __future__ import annotations

import asyncio
import os

from nbdtui.tui.app import RECONNECT_DELAY
from tests.support.pilot import wait_for

MiB = 1 << 20


async def test_an_open_export_survives_a_server_restart(
    make_app, servers, qemu_nbd, make_image, tmp_path
):
    content = os.urandom(MiB)
    server = qemu_nbd(make_image(tmp_path, MiB, content=content), unix=True)
    app = make_app(server.uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.sessions)
        (session,) = app.sessions.values()
        export = session.export
        assert export.reconnect_delay == RECONNECT_DELAY == 30.0
        server.kill()
        restarted = asyncio.create_task(asyncio.to_thread(_restart_after, servers, server))
        # Asked while the server is down: answered once it is back, with the right bytes.
        data = await asyncio.wait_for(export.read(MiB // 2, 4096), 20)
        await restarted
        assert data == content[MiB // 2 : MiB // 2 + 4096]


def _restart_after(servers, server):
    import time

    time.sleep(1.0)
    return servers.restart(server)
