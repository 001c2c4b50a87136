"""Redis-streams bus: a producer and the one consumer-group runner every service uses.

``StreamProducer`` appends JSON envelopes (field ``envelope``) trimmed with ``MAXLEN ~``;
``ConsumerRunner`` reads a group in batches, acknowledges after the handler returned, reclaims the
entries of crashed consumers, dead-letters poison and undecodable entries, survives Redis restarts,
and exports Prometheus metrics (see ``scalper_shared.bus.metrics``).
"""

from scalper_shared.bus.config import ConsumerConfig
from scalper_shared.bus.consumer import ConsumerRunner, Delivery, Handler
from scalper_shared.bus.deadletter import DeadLetter, read_dead_letters
from scalper_shared.bus.groups import GroupBacklog, group_backlog, stream_backlogs
from scalper_shared.bus.producer import ENVELOPE_FIELD, StreamProducer

__all__ = [
    "ConsumerConfig", "ConsumerRunner", "DeadLetter", "Delivery", "ENVELOPE_FIELD", "GroupBacklog",
    "Handler", "StreamProducer", "group_backlog", "read_dead_letters", "stream_backlogs",
]
