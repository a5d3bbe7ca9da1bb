"""Real NBD (and SSH) servers for the test suite.

Every server runs in the foreground as a child of pytest, in its own process group, on an
ephemeral TCP port of 127.0.0.1 or on a Unix socket inside the test's ``tmp_path``. A server
counts as ready only once *its own* process tree holds a listening socket on that port or
path (read from ``/proc``), so a foreign process that grabbed the port in between is never
mistaken for it, and no probe connection shows up in a server's log. A port lost to a race
(EADDRINUSE) is retried with another one. Servers die with pytest even when teardown never
runs (``--exit-with-parent`` for nbdkit, ``PR_SET_PDEATHSIG`` for the others).

The fixtures in ``conftest.py`` are thin wrappers around :class:`ServerFactory`.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import itertools
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.support.images import make_image
from tests.support.processes import (
    SUPERVISOR,
    free_port,
    is_alive,
    is_listening,
    pdeathsig_prefix,
    process_tree,
    tail_of,
)
from tests.support.requirements import require
from tests.support.tls_material import TlsCerts, make_tls_certs, tls_directory

READY_TIMEOUT = float(os.environ.get("NBDTUI_TEST_SERVER_TIMEOUT", "20"))
# How long stop() waits after SIGTERM before SIGKILL. nbdkit 1.32 does not act on SIGTERM
# while an idle client stays connected, so its grace is short (it has nothing to flush).
STOP_TIMEOUT = 3.0
NBDKIT_STOP_TIMEOUT = 0.5
PORT_ATTEMPTS = 8
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_UNIX_PATH = 107

KINDS = ("nbdkit", "qemu-nbd", "nbd-server", "sshd")

# nbdkit 1.32 can abort (connections.c: raw_send_socket: Assertion `sock >= 0') when a
# client closes a connection while several of its threads serve requests of it, as
# nbdtui does on a timeout: tests that make nbdtui close connections serve each with one.
ONE_THREAD = ("--threads=1",)


def make_ssh_key(path: Path) -> Path:
    """A new ed25519 key pair without passphrase at ``path`` (and ``path``.pub)."""
    subprocess.run(
        [require("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def only_exports(*names: str, listing: str = "explicit") -> tuple[str, ...]:
    """Options of nbdkit's exportname filter: the server lists ``names`` (``listing``:
    explicit, or error / empty to list nothing) and refuses any other name."""
    return (
        *(f"exportname={name}" for name in names),
        f"exportname-list={listing}",
        "exportname-strict=true",
    )


# Names the test modules import from here.
__all__ = [
    "ONE_THREAD",
    "Server",
    "ServerFactory",
    "ServerStartError",
    "SshServer",
    "TlsCerts",
    "is_alive",
    "is_listening",
    "make_image",
    "make_ssh_key",
    "make_tls_certs",
    "only_exports",
    "require",
]


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries its command line and output."""


# --------------------------------------------------------------------------- servers

_LIVE: set[Server] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        server.stop()


def _quote_export(export: str) -> str:
    return quote(export, safe="")


@dataclass(eq=False)
class Server:
    """A running server. ``uri`` names its default export in libnbd's URI syntax."""

    uri: str
    kind: str
    host: str | None
    port: int | None
    socket: str | None
    export: str
    process: subprocess.Popen
    log_path: Path | None
    #: the server's own stderr/stdout (differs from ``log_path`` for nbdkit with ``log=True``)
    stderr_path: Path | None = None
    #: True when clients must use TLS (the URI scheme is then nbds / nbds+unix)
    tls: bool = False
    #: the certificates directory a TLS client should use (libnbd ``?tls-certificates=``)
    tls_dir: Path | None = None
    #: export name -> backing file, where the server serves files
    files: dict[str, Path] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    #: seconds stop() waits after SIGTERM before it uses SIGKILL
    stop_timeout: float = STOP_TIMEOUT
    _stopped: bool = field(default=False, init=False, repr=False)

    def uri_for(self, export: str) -> str:
        """The URI of another export of this same server (the name is percent-encoded)."""
        scheme = "nbds" if self.tls else "nbd"
        if self.socket is not None:
            return f"{scheme}+unix:///{_quote_export(export)}?socket={quote(self.socket, safe='/')}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{_quote_export(export)}"

    def tls_uri_for(self, export: str | None = None) -> str:
        """``uri_for`` plus libnbd's ``tls-certificates=`` query, for nbdinfo/nbdcopy."""
        uri = self.uri_for(self.export if export is None else export)
        if self.tls_dir is None:
            return uri
        sep = "&" if "?" in uri else "?"
        return f"{uri}{sep}tls-certificates={quote(str(self.tls_dir), safe='/')}"

    @property
    def pid(self) -> int:
        """The pid of the process started (for nbd-server: its supervisor)."""
        return self.process.pid

    def pids(self) -> list[int]:
        """Every living process of this server (the started one and its descendants)."""
        return [pid for pid in process_tree(self.process.pid) if is_alive(pid)]

    @property
    def running(self) -> bool:
        return not self._stopped and self.process.poll() is None

    def output(self) -> str:
        """What the server wrote to stderr so far (handy in assertion messages)."""
        return tail_of(self.stderr_path or self.log_path, 20000)

    def stop(self) -> None:
        """Terminate the server and everything it started; wait; SIGKILL if needed. Idempotent."""
        self._shutdown(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the server and its descendants at once (simulates a crash). Idempotent."""
        self._shutdown(signal.SIGKILL)

    def _shutdown(self, sig: int) -> None:
        if self._stopped:
            return
        self._stopped = True
        _LIVE.discard(self)
        tree = process_tree(self.process.pid) if self.process.poll() is None else []
        tree = tree or [self.process.pid]
        self._signal(tree, sig)
        try:
            self.process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self._signal(tree, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)
        # Descendants that left the process group (sshd sessions call setsid) or outlived it.
        deadline = time.monotonic() + STOP_TIMEOUT
        while (alive := [pid for pid in tree[1:] if is_alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.02)
        if alive:
            self._signal(alive, signal.SIGKILL)

    def _signal(self, pids: Sequence[int], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


@dataclass(eq=False, kw_only=True)
class SshServer(Server):
    """OpenSSH's sshd on 127.0.0.1 plus a client HOME that reaches it without prompts.

    ``home/.ssh/`` holds ``config`` (``Host <alias>`` -> 127.0.0.1:port, user, identity,
    known hosts), ``id_ed25519`` and ``known_hosts``, so both ``ssh -F home/.ssh/config alias``
    and asyncssh with ``HOME=home`` (it reads ``~/.ssh/config``) connect with no questions.
    """

    user: str
    client_key: Path
    home: Path
    known_hosts: Path
    alias: str
    config_path: Path
    host_key: Path
    sshd_config: Path

    def uri_for(self, export: str) -> str:
        return self.nbd_ssh_uri(export)

    def use_encrypted_key(self, passphrase: str = "s3cret", *, pem: bool = False) -> Path:
        """Make a passphrase-protected key the client's identity (and authorize it).

        ``pem=True``: ECDSA in legacy PEM form, decryptable without bcrypt; otherwise
        ed25519 in OpenSSH form (bcrypt KDF), ssh-keygen's default.
        """
        key = self.home / ".ssh" / "id_encrypted"
        kind = ["-t", "ecdsa", "-m", "PEM"] if pem else ["-t", "ed25519"]
        subprocess.run(
            [require("ssh-keygen"), "-q", *kind, "-N", passphrase, "-f", str(key)],
            check=True,
            capture_output=True,
        )
        with open(f"{self.client_key}.pub", "a") as authorized:  # sshd's AuthorizedKeysFile
            authorized.write(Path(f"{key}.pub").read_text())
        config = self.config_path.read_text()
        self.config_path.write_text(config.replace(str(self.client_key), str(key)))
        return key

    def expect_other_host_key(self) -> None:
        """Make known_hosts list a fresh key for this server, not its own: the host key
        has "changed", and a client must refuse it."""
        key = make_ssh_key(self.home / ".ssh" / "other_ed25519")
        alg, blob = Path(f"{key}.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {alg} {blob}\n")

    def nbd_ssh_uri(
        self, export: str = "", socket: str | None = None, *, use_alias: bool = False
    ) -> str:
        """``nbd+ssh://user@127.0.0.1:PORT/EXPORT[?socket=REMOTE_SOCKET]`` (libnbd's form)."""
        where = self.alias if use_alias else f"{self.user}@{self.host}:{self.port}"
        uri = f"nbd+ssh://{where}/{_quote_export(export)}"
        if socket is not None:
            uri += f"?socket={quote(socket, safe='/')}"
        return uri

    def env(self) -> dict[str, str]:
        """os.environ with HOME pointing at the prepared client home."""
        return {**os.environ, "HOME": str(self.home)}

    def ssh_args(self, *command: str, options: Sequence[str] = ()) -> list[str]:
        """``ssh -F CONFIG [OPTIONS...] ALIAS COMMAND...`` as an argv list."""
        return [require("ssh"), "-F", str(self.config_path), *options, self.alias, *command]

    def run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on the server via the real ssh client; it must succeed."""
        proc = subprocess.run(
            self.ssh_args(*command),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert proc.returncode == 0, (
            f"ssh {' '.join(command)} failed ({proc.returncode}): {proc.stderr}\n"
            f"--- sshd log ---\n{self.output()}"
        )
        return proc


# --------------------------------------------------------------------------- factory

# nbdkit options that take their value as the next argument.
_NBDKIT_ARG_OPTIONS = frozenset(
    {
        *("-D", "--debug", "-e", "--export", "--export-name", "--exportname", "-g", "--group"),
        *("-i", "--ipaddr", "--ip-addr", "-P", "--pidfile", "-p", "--port", "-t", "--threads"),
        *("-u", "--user", "-U", "--unix", "--filter", "--log", "--mask-handshake", "--run"),
        *("--selinux-label", "--tls", "--tls-certificates", "--tls-psk"),
    }
)


def _split_nbdkit_options(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``extra_options`` into options (before the plugin) and key=value parameters."""
    options: list[str] = []
    params: list[str] = []
    it = iter(items)
    for item in it:
        if item.startswith("-"):
            options.append(item)
            if item in _NBDKIT_ARG_OPTIONS:
                options.append(next(it))
        else:
            params.append(item)
    return options, params


class ServerFactory:
    """Starts servers for one test, with all files under ``tmp_path/servers``."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.dir = tmp_path / "servers"
        self.started: list[Server] = []
        self._counter = itertools.count(1)

    # ------------------------------------------------------------------ plumbing

    def _workdir(self, kind: str) -> tuple[str, Path]:
        name = f"{kind}-{next(self._counter)}"
        path = self.dir / name
        path.mkdir(parents=True, exist_ok=True)
        return name, path

    @staticmethod
    def _unix_path(path: Path) -> str:
        text = str(path)
        if len(text.encode()) > MAX_UNIX_PATH:
            raise ServerStartError(
                f"Unix socket path too long ({len(text)} > {MAX_UNIX_PATH} bytes): {text}; "
                "use a shorter --basetemp"
            )
        return text

    def _launch(
        self,
        kind: str,
        argv_for_port,
        *,
        unix_path: str | None,
        output: Path,
        cwd: Path,
        retry_always: bool = False,
    ) -> tuple[subprocess.Popen, int | None, list[str]]:
        """Start ``argv_for_port(port)`` until it listens; return (process, port, argv)."""
        last_error = ""
        for _attempt in range(1 if unix_path else PORT_ATTEMPTS):
            port = None if unix_path else free_port()
            argv = argv_for_port(port)
            with output.open("wb") as out:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    start_new_session=True,
                )
            deadline = time.monotonic() + READY_TIMEOUT
            delay = 0.005
            while True:
                if process.poll() is not None:
                    text = tail_of(output)
                    last_error = (
                        f"{kind} exited with status {process.returncode} before listening\n"
                        f"command: {' '.join(argv)}\noutput:\n{text}"
                    )
                    break
                if is_listening(process.pid, port=port, unix_path=unix_path):
                    return process, port, argv
                if time.monotonic() > deadline:
                    _kill_tree(process)
                    raise ServerStartError(
                        f"{kind} did not listen on {unix_path or f'127.0.0.1:{port}'} within "
                        f"{READY_TIMEOUT:.0f}s\ncommand: {' '.join(argv)}\n"
                        f"output:\n{tail_of(output)}"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            _kill_tree(process)
            in_use = "in use" in text.lower() or "eaddrinuse" in text.lower()
            if unix_path or not (in_use or retry_always):
                break
        raise ServerStartError(last_error)

    def _register(self, server: Server) -> Server:
        self.started.append(server)
        _LIVE.add(server)
        return server

    def stop_all(self) -> None:
        """Stop every server this factory started (in reverse order)."""
        for server in reversed(self.started):
            server.stop()

    # ------------------------------------------------------------------ nbdkit

    def nbdkit(
        self,
        plugin: str,
        *args: str,
        filters: Sequence[str] = (),
        unix: bool = False,
        export: str = "",
        extra_options: Sequence[str] = (),
        log: bool = False,
        tls: TlsCerts | Path | str | None = None,
        tls_verify_peer: bool = False,
        readonly: bool = False,
    ) -> Server:
        """``nbdkit -f --exit-with-parent [--filter=F...] PLUGIN ARGS... [EXTRA...]``.

        - ``args``: plugin arguments (``"1M"``, ``"size=1M"``, a script path ...).
        - ``filters``: filter names, outermost (closest to the client) first.
        - ``extra_options``: items starting with ``-`` are nbdkit options (``"-r"``,
          ``"--tls=require"``, ``"--filter=cow"``); everything else is a ``key=value``
          parameter for the plugin or a filter (``"minblock=4096"``).
        - ``export``: only names the export in ``uri``; most plugins serve any name.
        - ``log=True`` puts the ``log`` filter outermost, writing to ``log_path``, so a test
          can read which requests reached the server (``Read``, ``Write``, ``Zero``...).
        - ``tls``: a :class:`TlsCerts` (or certificates dir) -> ``--tls=require
          --tls-certificates=DIR``; the URI becomes ``nbds://``.

        Several exports: the ``exportname`` filter names them (same content); with
        ``exportname-strict=true`` any other name, even the default "", is refused::

            nbdkit("memory", "1M", filters=("exportname",), export="a",
                   extra_options=("exportname=a", "exportname=b", "exportname-list=explicit",
                                  "exportname-strict=true"))

        and the ``eval`` plugin gives each export its own size/content (shell snippets; the
        export name is ``$3`` of ``open``, whose output is the handle ``$2`` of the others)::

            nbdkit("eval",
                   "list_exports=printf 'small\\nbig\\n'",
                   "open=echo $3",
                   "get_size=case $2 in small) echo 4096;; big) echo 1048576;; "
                   "*) exit 1;; esac",
                   "pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none")
        """
        binary = require("nbdkit")
        _, work = self._workdir("nbdkit")
        stderr_path = work / "stderr.log"
        log_path = work / "requests.log" if log else None
        unix_path = self._unix_path(work / "nbd.sock") if unix else None
        options, params = _split_nbdkit_options(extra_options)
        filter_args = (["--filter=log"] if log else []) + [f"--filter={f}" for f in filters]
        if log_path is not None:
            params.append(f"logfile={log_path}")
        tls_args: list[str] = []
        tls_dir = None
        if tls is not None:
            tls_dir = tls_directory(tls)
            tls_args = ["--tls=require", f"--tls-certificates={tls_dir}"]
            if tls_verify_peer:
                tls_args.append("--tls-verify-peer")
        if readonly:
            options.append("-r")

        def argv(port: int | None) -> list[str]:
            where = ["-U", unix_path] if unix_path else ["-i", "127.0.0.1", "-p", str(port)]
            return [
                binary,
                "-f",
                "--exit-with-parent",
                *where,
                *tls_args,
                *options,
                *filter_args,
                plugin,
                *args,
                *params,
            ]

        process, port, used = self._launch(
            "nbdkit", argv, unix_path=unix_path, output=stderr_path, cwd=work
        )
        server = Server(
            uri="",
            kind="nbdkit",
            host=None if unix else "127.0.0.1",
            port=port,
            socket=unix_path,
            export=export,
            process=process,
            log_path=log_path or stderr_path,
            stderr_path=stderr_path,
            tls=tls is not None,
            tls_dir=tls_dir,
            argv=used,
            stop_timeout=NBDKIT_STOP_TIMEOUT,
        )
        server.uri = server.uri_for(export)
        return self._register(server)

    # ------------------------------------------------------------------ qemu-nbd

    def qemu_nbd(
        self,
        image: Path | str,
        fmt: str = "raw",
        export: str = "disk",
        unix: bool = False,
        readonly: bool = False,
        extra: Sequence[str] = (),
        tls: TlsCerts | Path | str | None = None,
        tls_verify_peer: bool = False,
    ) -> Server:
        """``qemu-nbd --persistent --shared=8 -x EXPORT -f FMT (-b 127.0.0.1 -p PORT | -k SOCK)``.

        qemu-nbd serves only the export named ``export`` (any other name, including the
        default "", is refused). ``extra`` is appended before the image (e.g. ``("-A",)``
        for qemu:allocation-depth, ``("--discard=unmap",)``). ``tls`` adds
        ``--object tls-creds-x509,dir=DIR,endpoint=server,verify-peer=...``.
        """
        binary = require("qemu-nbd")
        image = Path(image).resolve()
        _, work = self._workdir("qemu-nbd")
        output = work / "stderr.log"
        unix_path = self._unix_path(work / "nbd.sock") if unix else None
        tls_args: list[str] = []
        tls_dir = None
        if tls is not None:
            tls_dir = tls_directory(tls)
            verify = "on" if tls_verify_peer else "off"
            tls_args = [
                "--object",
                f"tls-creds-x509,id=tls0,dir={tls_dir},endpoint=server,verify-peer={verify}",
                "--tls-creds=tls0",
            ]

        def argv(port: int | None) -> list[str]:
            where = ["-k", unix_path] if unix_path else ["-b", "127.0.0.1", "-p", str(port)]
            return [
                *pdeathsig_prefix(),
                binary,
                "--persistent",
                "--shared=8",
                "-x",
                export,
                "-f",
                fmt,
                *where,
                *(["--read-only"] if readonly else []),
                *tls_args,
                *extra,
                str(image),
            ]

        process, port, used = self._launch(
            "qemu-nbd", argv, unix_path=unix_path, output=output, cwd=work
        )
        server = Server(
            uri="",
            kind="qemu-nbd",
            host=None if unix else "127.0.0.1",
            port=port,
            socket=unix_path,
            export=export,
            process=process,
            log_path=output,
            stderr_path=output,
            tls=tls is not None,
            tls_dir=tls_dir,
            files={export: image},
            argv=used,
        )
        server.uri = server.uri_for(export)
        return self._register(server)

    # ------------------------------------------------------------------ nbd-server

    def nbd_server(
        self,
        exports: Mapping[str, Mapping[str, object]],
        unix: bool = False,
        generic: Mapping[str, object] | None = None,
        tls: TlsCerts | Path | str | None = None,
    ) -> Server:
        """nbd-server with one config section per export; ``uri`` is the first export.

        ``exports`` maps export names to nbd-server export options: ``{"disk": {"file":
        path}, "ro": {"file": other, "readonly": True}}``. ``file`` is shorthand for
        ``exportname``; without a file, one is created from ``size`` (default 1 MiB) and
        ``content``. Other keys (``flush``, ``fua``, ``trim``, ``copyonwrite``,
        ``rotational``, ``maxconnections`` ...) are written as they are; booleans become
        ``true``/``false``. ``generic`` adds options to the ``[generic]`` section.

        ``tls`` sets certfile, keyfile, cacertfile and force_tls. nbd-server 3.24 drops every
        TLS client when cacertfile is missing, and with it always demands a client
        certificate: libnbd sends the one in its ``tls-certificates`` directory.

        nbd-server only forks per connection when it daemonizes (``-d`` serves a single
        session, then exits), so it runs under a small subreaper supervisor: ``process`` is
        that supervisor, ``pids()`` includes the daemon. After daemonizing it logs to syslog
        only; ``log_path`` holds what it printed before.
        """
        binary = require("nbd-server")
        if not exports:
            raise ValueError("nbd_server needs at least one export")
        _, work = self._workdir("nbd-server")
        output = work / "stderr.log"
        unix_path = self._unix_path(work / "nbd.sock") if unix else None
        config_path = work / "config"
        files: dict[str, Path] = {}
        sections: list[str] = []
        for export, options in exports.items():
            if not export or export == "generic" or any(c in export for c in "[]\n"):
                raise ValueError(f"unusable nbd-server export name {export!r}")
            opts = dict(options)
            path = opts.pop("file", None) or opts.pop("exportname", None)
            size = int(opts.pop("size", 1024 * 1024))  # type: ignore[call-overload]
            content = opts.pop("content", None)
            if path is None:
                path = work / f"{export.replace('/', '_')}.img"
                with open(path, "wb") as f:
                    f.truncate(size)
                    if content:
                        f.write(content)  # type: ignore[arg-type]
            files[export] = Path(path).resolve()
            lines = [f"[{export}]", f"exportname = {files[export]}"]
            lines += [f"{key} = {_conf_value(value)}" for key, value in opts.items()]
            sections.append("\n".join(lines))
        tls_dir = tls_directory(tls) if tls is not None else None

        def argv(port: int | None) -> list[str]:
            gen: dict[str, object] = {"allowlist": True}
            if unix_path:
                gen["unixsock"] = unix_path
            else:
                gen.update(listenaddr="127.0.0.1", port=port)
            if tls_dir is not None:
                gen.update(
                    certfile=tls_dir / "server-cert.pem",
                    keyfile=tls_dir / "server-key.pem",
                    cacertfile=tls_dir / "ca-cert.pem",
                    force_tls=True,
                )
            gen.update(generic or {})
            head = "[generic]\n" + "".join(f"{k} = {_conf_value(v)}\n" for k, v in gen.items())
            config_path.write_text(head + "\n" + "\n\n".join(sections) + "\n")
            return [
                sys.executable,
                "-c",
                SUPERVISOR,
                str(os.getpid()),
                binary,
                "-C",
                str(config_path),
                "-p",
                str(work / "nbd-server.pid"),
            ]

        # nbd-server daemonizes and then logs to syslog only, so a failed bind leaves no
        # message: retry on any early exit.
        process, port, used = self._launch(
            "nbd-server", argv, unix_path=unix_path, output=output, cwd=work, retry_always=True
        )
        first = next(iter(exports))
        server = Server(
            uri="",
            kind="nbd-server",
            host=None if unix else "127.0.0.1",
            port=port,
            socket=unix_path,
            export=first,
            process=process,
            log_path=output,
            stderr_path=output,
            tls=tls is not None,
            tls_dir=tls_dir,
            files=files,
            argv=used,
        )
        server.uri = server.uri_for(first)
        return self._register(server)

    def restart(self, server: Server, image: Path | None = None) -> Server:
        """Start the killed qemu-nbd ``server`` again on the same Unix socket (optionally
        serving another image); the new server is stopped at teardown like the others."""
        assert server.kind == "qemu-nbd" and server.socket is not None, server
        with contextlib.suppress(FileNotFoundError):
            os.unlink(server.socket)
        argv = list(server.argv)
        if image is not None:
            argv[-1] = str(image)
        work = Path(server.socket).parent
        process, _, used = self._launch(
            "qemu-nbd",
            lambda port: argv,
            unix_path=server.socket,
            output=work / "restarted.log",
            cwd=work,
        )
        return self._register(dataclasses.replace(server, process=process, argv=used))

    # ------------------------------------------------------------------ sshd

    def sshd(self, alias: str = "nbdtui-sshd", extra_config: Sequence[str] = ()) -> SshServer:
        """OpenSSH sshd on 127.0.0.1:PORT with generated host and client keys.

        Public-key login as the current user (root in CI), TCP and Unix-socket forwarding
        allowed. ``extra_config`` lines are appended to sshd_config.
        """
        sshd = require("sshd")
        keygen = require("ssh-keygen")
        require("ssh")
        _, work = self._workdir("sshd")
        output = work / "sshd.log"
        user = pwd.getpwuid(os.geteuid()).pw_name
        home = work / "home"
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(parents=True, mode=0o700)
        host_key = work / "ssh_host_ed25519_key"
        client_key = ssh_dir / "id_ed25519"
        for key, comment in ((host_key, "nbdtui-test-host"), (client_key, "nbdtui-test-client")):
            subprocess.run(
                [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
                check=True,
                capture_output=True,
            )
        if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
            # sshd running as root insists on its (empty) privilege separation directory,
            # normally created by the service manager; containers often lack it.
            Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        sshd_config = work / "sshd_config"
        sshd_config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {work / 'sshd.pid'}",
                    f"AuthorizedKeysFile {client_key}.pub",
                    "StrictModes no",
                    "PermitRootLogin yes",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "AllowTcpForwarding yes",
                    "AllowStreamLocalForwarding yes",
                    "StreamLocalBindUnlink yes",
                    "X11Forwarding no",
                    "UseDNS no",
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    "Subsystem sftp internal-sftp",
                    *extra_config,
                ]
            )
            + "\n"
        )

        def argv(port: int | None) -> list[str]:
            return [*pdeathsig_prefix(), sshd, "-D", "-e", "-f", str(sshd_config), "-p", str(port)]

        process, port, used = self._launch("sshd", argv, unix_path=None, output=output, cwd=work)
        assert port is not None
        host_pub = Path(f"{host_key}.pub").read_text().split()
        known_hosts = ssh_dir / "known_hosts"
        known_hosts.write_text(
            f"[127.0.0.1]:{port},[localhost]:{port},[{alias}]:{port} {host_pub[0]} {host_pub[1]}\n"
        )
        config_path = ssh_dir / "config"
        config_path.write_text(
            f"Host {alias}\n"
            f"    HostName 127.0.0.1\n"
            f"    Port {port}\n"
            f"Host *\n"
            f"    User {user}\n"
            f"    IdentityFile {client_key}\n"
            f"    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {known_hosts}\n"
            f"    GlobalKnownHostsFile /dev/null\n"
            f"    StrictHostKeyChecking yes\n"
            f"    PasswordAuthentication no\n"
            f"    KbdInteractiveAuthentication no\n"
            f"    BatchMode yes\n"
            f"    LogLevel ERROR\n"
        )
        config_path.chmod(0o600)
        server = SshServer(
            uri=f"ssh://{user}@127.0.0.1:{port}",
            kind="sshd",
            host="127.0.0.1",
            port=port,
            socket=None,
            export="",
            process=process,
            log_path=output,
            stderr_path=output,
            argv=used,
            user=user,
            client_key=client_key,
            home=home,
            known_hosts=known_hosts,
            alias=alias,
            config_path=config_path,
            host_key=host_key,
            sshd_config=sshd_config,
        )
        return self._register(server)  # type: ignore[return-value]


def _conf_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kill_tree(process: subprocess.Popen) -> None:
    tree = process_tree(process.pid)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT)
