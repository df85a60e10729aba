"""RFC 6455 §5.2 data frames as a server sends them: FIN set, unmasked, no extensions.

A frame shared by many subscribers is framed once and the same bytes are written to every socket,
which is what makes fan-out cheap: no per-subscriber encoding, masking or copying.
"""

from __future__ import annotations

import struct

__all__ = ["websocket_frame"]

_OP_TEXT = 0x1
_OP_BINARY = 0x2
_FIN = 0x80


def websocket_frame(data: str | bytes) -> bytes:
    """A complete server→client frame: text for `str` (sent as UTF-8), binary for `bytes`."""
    if isinstance(data, str):
        payload, opcode = data.encode(), _OP_TEXT
    else:
        payload, opcode = data, _OP_BINARY
    length = len(payload)
    if length < 126:
        header = bytes((_FIN | opcode, length))
    elif length < 1 << 16:
        header = struct.pack("!BBH", _FIN | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", _FIN | opcode, 127, length)
    return header + payload
