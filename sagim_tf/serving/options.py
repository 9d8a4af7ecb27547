"""gRPC options shared by the serving client and server: the message-size limits.

gRPC refuses messages over 4 MB by default, one 640x480 float32 image; both ends raise the
limit with the same options.
"""

from __future__ import annotations

MB = 1024 * 1024
#: The client's default send and receive limit, in MB.
DEFAULT_MAX_MESSAGE_MB = 256


def channel_options(max_message_mb: float) -> list[tuple[str, int]]:
    """gRPC options raising both message limits to ``max_message_mb``.

    Args:
        max_message_mb: float. The largest message sent or received, in MB (2**20 bytes).

    Returns:
        A list of ``(option, value)`` pairs for ``grpc.insecure_channel`` or ``grpc.server``.
    """
    limit = int(max_message_mb * MB)
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
