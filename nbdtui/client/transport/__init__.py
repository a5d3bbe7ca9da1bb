"""The byte streams under NBD connections: how the client reaches a server.

:mod:`~nbdtui.client.transport.stream` holds the asyncio protocol every stream is read
through (:class:`~nbdtui.client.transport.stream.StreamProtocol`) and the types openers
and TLS upgraders share (``Opener``, ``ProtocolFactory``, ``TlsUpgrader``);
:mod:`~nbdtui.client.transport.openers` picks the opener of an endpoint (TCP, Unix
socket, SSH) and opens the stream; :mod:`~nbdtui.client.transport.tls` upgrades a stream
to TLS (STARTTLS) and explains TLS failures; :mod:`nbdtui.client.transport.ssh` is the SSH
transport, imported only for SSH endpoints. They log at debug level to the
``nbdtui.client.transport`` logger (streams opened, TLS upgrades, SSH connections), never
on the data path.
"""
