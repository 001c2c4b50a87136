from __future__ import annotations

import json
from typing import ClassVar

import pytest
from pydantic import ValidationError

from scalper_shared.clock import FakeClock, SequentialIds
from scalper_shared.schema import CODEC, Bar, Codec, DecodeError, Message, OrderDenied, make_envelope
from scalper_shared.schema.codec import encoded_type, encoded_types
from tests.unit.schema_examples import EXAMPLES, T0, example_envelope


class QuoteV2(Message):
    """A test type at version 2 whose v1 called ``price`` ``px``."""

    TYPE: ClassVar[str] = "test_quote"
    VERSION: ClassVar[int] = 2
    symbol: str
    price: float


def _quote_v1(payload: dict) -> bytes:
    doc = {"type": "test_quote", "version": 1, "id": "q1", "ts_event": T0.isoformat(),
           "ts_init": T0.isoformat(), "source": "old", "correlation_id": None, "payload": payload}
    return json.dumps(doc).encode()


def test_round_trip_preserves_every_example() -> None:
    for message in EXAMPLES:
        envelope = example_envelope(message)
        assert CODEC.decode(CODEC.encode(envelope)) == envelope


def test_the_type_of_an_encoded_envelope_is_read_without_parsing_it() -> None:
    for message in EXAMPLES:
        assert encoded_type(CODEC.encode(example_envelope(message))) == message.TYPE
    tricky = OrderDenied(client_order_id="x", symbol="SPY", reason='"type":"bar"', detail='{"type":"bar"}')
    assert encoded_type(CODEC.encode(example_envelope(tricky))) == "order_denied"
    assert encoded_type(b'{"id":"x"}') is None


def test_old_version_is_upcast_to_the_current_one() -> None:
    codec = Codec([QuoteV2])
    codec.register_upcaster("test_quote", 1, lambda p: {"symbol": p["symbol"], "price": p["px"]})
    envelope = codec.decode(_quote_v1({"symbol": "SPY", "px": 1.5}))
    assert envelope.version == 2
    assert envelope.payload == QuoteV2(symbol="SPY", price=1.5)


def test_old_version_without_upcaster_is_a_clear_error() -> None:
    with pytest.raises(DecodeError, match="no upcaster from version 1"):
        Codec([QuoteV2]).decode(_quote_v1({"symbol": "SPY", "px": 1.5}))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"type": "nope", "version": 1}', "unknown message type 'nope'"),
        (b'{"type": "bar", "version": 9}', "unsupported version 9"),
    ],
)
def test_bad_bytes_raise_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        CODEC.decode(data)


def test_invalid_payload_names_the_field() -> None:
    doc = json.loads(CODEC.encode(example_envelope(EXAMPLES[0])))
    doc["payload"]["close"] = -1
    with pytest.raises(DecodeError, match="close"):
        CODEC.decode(json.dumps(doc))


def test_messages_are_frozen() -> None:
    with pytest.raises(ValidationError):
        EXAMPLES[0].close = 1.0  # type: ignore[misc]


def test_bar_rejects_nan_and_inverted_range() -> None:
    base = EXAMPLES[0].model_dump()
    with pytest.raises(ValidationError, match="close"):
        Bar(**{**base, "close": float("nan")})
    with pytest.raises(ValidationError, match="below low"):
        Bar(**{**base, "high": 600.0})


def test_make_envelope_uses_the_injected_clock_and_ids() -> None:
    clock, ids = FakeClock(T0), SequentialIds("bar")
    envelope = make_envelope(EXAMPLES[0], source="ingestion", clock=clock, ids=ids)
    assert (envelope.id, envelope.ts_init, envelope.type) == ("bar-1", T0, "bar")


def test_the_types_of_many_encoded_envelopes_are_read_from_their_tails() -> None:
    encoded = [CODEC.encode(example_envelope(message)) for message in EXAMPLES]
    assert encoded_types(encoded) == {message.TYPE for message in EXAMPLES}
    beyond_the_tail = encoded[0].replace(b'"type":"bar"', b'"type":"' + b"t" * 60 + b'"')  # a type past the tail
    assert encoded_types([*encoded, beyond_the_tail]) == {message.TYPE for message in EXAMPLES} | {"t" * 60}
    assert encoded_types([b'{"id":"x"}']) == {None}
