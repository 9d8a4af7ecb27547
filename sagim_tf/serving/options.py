"""Options shared by the serving client and server: message sizes, the server's defaults.

gRPC refuses messages over 4 MB by default, one 640x480 float32 image; both ends raise the
limit with the same options. The server's pixel limits live here (not in the image
decoders of :mod:`sagim_tf.utils`): they bound what one request may make the server
allocate, which depends on G, not on a file format.
"""

from __future__ import annotations

import ipaddress

MB = 1024 * 1024
#: The client's default send and receive limit, in MB.
DEFAULT_MAX_MESSAGE_MB = 256
#: The interface ``sagim serve`` binds unless ``--host`` says otherwise: this machine only.
DEFAULT_HOST = "127.0.0.1"
#: The largest B*H*W a request may declare (2048x2048): about 2.5 GB for the default G,
#: which keeps ~600 bytes per pixel while it runs. Checked on the declared shape, before
#: anything is allocated.
DEFAULT_MAX_PIXELS = 4 * 2**20
#: Requests above this many pixels (1024x1024) are "large": at most ``max_large`` of them
#: run at once, and one more is answered RESOURCE_EXHAUSTED at once instead of queueing
#: in front of small requests.
DEFAULT_LARGE_PIXELS = 2**20


def channel_options(max_message_mb: float) -> list[tuple[str, int]]:
    """gRPC options raising both message limits to ``max_message_mb``.

    Args:
        max_message_mb: float. The largest message sent or received, in MB (2**20 bytes).

    Returns:
        A list of ``(option, value)`` pairs for ``grpc.insecure_channel`` or ``grpc.server``.
    """
    limit = int(max_message_mb * MB)
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]


def server_options(max_message_mb: float) -> list[tuple[str, int]]:
    """The server's gRPC options: :func:`channel_options` and no ``SO_REUSEPORT``.

    gRPC sets ``SO_REUSEPORT`` by default on Linux, so a second server on a busy port
    starts without an error and the kernel splits connections between the two; with it
    off, the second bind fails and ``sagim serve`` says the port is in use.
    """
    return channel_options(max_message_mb) + [("grpc.so_reuseport", 0)]


def is_loopback(host: str) -> bool:
    """True if ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False
