"""socket.io packets as python-socketio builds them, with a cheaper search for binary attachments.

python-socketio walks every packet's data for bytes when it builds the packet, with a list and a reduce() per
container. On the send path it walks three times per message (the ack, message:new, and the fan-out's own walk,
which this class cannot reach): 3.7 % of the service's samples under py-spy, 7.1 % under py-spy --native. The
service never emits bytes, so the walk always answers False; this one answers the same about 4 times faster (1.1
against 5 us on a message:new), skipping scalars without a call. The server takes this class as its `serializer`
(python-socketio's hook for a packet class of one's own); the encoding is the stock one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from socketio import packet

_SCALARS = frozenset({str, int, float, bool, type(None), datetime})


class Packet(packet.Packet):  # type: ignore[misc]
    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        """What `packet.Packet.data_is_binary` answers: bytes or bytearray, at any depth of lists and dicts."""
        if type(data) in _SCALARS:
            return False
        if isinstance(data, (bytes, bytearray)):
            return True
        if isinstance(data, list):
            items: Any = data
        elif isinstance(data, dict):
            items = data.values()
        else:
            return False
        for item in items:  # noqa: SIM110 - a loop: any() over a generator took twice as long here
            if type(item) not in _SCALARS and cls.data_is_binary(item):
                return True
        return False
