"""The SSH transport: NBD connections carried by channels of shared SSH connections.

:mod:`~nbdtui.client.transport.ssh.endpoint` says what an ``nbd+ssh://`` endpoint asks
for and builds ``--ssh`` tunnels; :mod:`~nbdtui.client.transport.ssh.prompts` holds the
hooks that ask the user (passwords, passphrases, unknown host keys);
:mod:`~nbdtui.client.transport.ssh.forward` has the system ``ssh -N -L`` forward a local
socket instead (the CLI's bulk commands). None of them imports asyncssh, so the CLI and
the UI can use them at no cost. The other three do, and are
imported only when an SSH endpoint is opened: :mod:`~nbdtui.client.transport.ssh.login`
logs in to an SSH host as OpenSSH would (ssh_config, known_hosts, prompts);
:mod:`~nbdtui.client.transport.ssh.channel` opens the direct channel of one NBD
connection and makes it an ``asyncio.Transport``;
:mod:`~nbdtui.client.transport.ssh.tunnel` shares one SSH connection per login among
the channels and provides the opener (``ssh_opener``) and ``ssh_login``.
"""
