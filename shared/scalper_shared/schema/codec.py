"""JSON encode/decode of envelopes (never pickle), with upcasters for old message versions.

An upcaster turns the payload dict of ``(type, version)`` into the payload of ``version + 1``;
``decode`` applies them in a chain until the payload reaches the type's current version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from scalper_shared.schema.envelope import Envelope, Message
from scalper_shared.schema.messages import ALL_MESSAGE_TYPES

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class DecodeError(ValueError):
    """Raised for bytes that are not a valid envelope of a known type and version."""


class Codec:
    def __init__(self, types: Iterable[type[Message]]) -> None:
        self._types: dict[str, type[Message]] = {t.TYPE: t for t in types}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    @property
    def types(self) -> dict[str, type[Message]]:
        return dict(self._types)

    def register_upcaster(self, type_name: str, from_version: int, upcaster: Upcaster) -> None:
        """Register the step ``from_version`` -> ``from_version + 1`` for ``type_name``."""
        if type_name not in self._types:
            raise KeyError(f"unknown message type {type_name!r}")
        self._upcasters[(type_name, from_version)] = upcaster

    def encode(self, envelope: Envelope) -> bytes:
        payload = envelope.payload
        if not isinstance(payload, Message):
            raise TypeError(f"payload must be a Message, got {type(payload).__name__}")
        doc = envelope.model_dump(mode="json", exclude={"payload"})
        doc["payload"] = payload.model_dump(mode="json")
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    def decode(self, data: bytes | str) -> Envelope:
        try:
            doc = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DecodeError(f"not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise DecodeError("envelope must be a JSON object")
        type_name, version = doc.get("type"), doc.get("version")
        cls = self._types.get(type_name) if isinstance(type_name, str) else None
        if cls is None or not isinstance(type_name, str):
            raise DecodeError(f"unknown message type {type_name!r}")
        if not isinstance(version, int) or version < 1 or version > cls.VERSION:
            raise DecodeError(f"{type_name}: unsupported version {version!r} (current {cls.VERSION})")
        payload = self._upcast(type_name, version, cls.VERSION, doc.get("payload"))
        try:
            message = cls.model_validate(payload)
            return Envelope.model_validate({**doc, "version": cls.VERSION, "payload": message})
        except ValidationError as exc:
            raise DecodeError(f"{type_name} v{version}: {exc}") from exc

    def _upcast(self, type_name: str, version: int, target: int, payload: Any) -> Any:
        while version < target:
            step = self._upcasters.get((type_name, version))
            if step is None:
                raise DecodeError(f"{type_name}: no upcaster from version {version}")
            payload = step(payload)
            version += 1
        return payload


_TYPE_KEY = b'"type":"'
ENCODED_TAIL = 48
"""Bytes at the end of an encoded envelope read first for its type: ``"type":"<name>","version":<n>}``
and the end of ``ts_init`` (the same for a batch encoded at once)."""


def encoded_type(data: bytes) -> str | None:
    """The ``type`` of an envelope encoded by :meth:`Codec.encode` (or byte-identical to it), read
    without parsing: keys are sorted, so the envelope's own ``"type"`` is the last one (a payload
    string cannot hold an unescaped quote). None when there is none."""
    start = data.rfind(_TYPE_KEY)
    if start < 0:
        return None
    start += len(_TYPE_KEY)
    end = data.find(b'"', start)
    return data[start:end].decode() if end >= 0 else None


def encoded_types(encoded: Iterable[bytes]) -> set[str | None]:
    """The distinct :func:`encoded_type` of many encoded envelopes. Reads each entry's last
    ``ENCODED_TAIL`` bytes, so a batch sharing one tail (one type, one ``ts_init``) costs one parse;
    entries whose tail does not hold the whole type are read in full."""
    entries = list(encoded)
    types = {encoded_type(tail) for tail in {data[-ENCODED_TAIL:] for data in entries}}
    return {encoded_type(data) for data in entries} if None in types else types


CODEC = Codec(ALL_MESSAGE_TYPES)


def _feature_vector_v1_to_v2(payload: Any) -> Any:
    """v2 added ``unavailable`` (features computed without their inputs); a v1 vector had none marked."""
    return {**payload, "unavailable": []} if isinstance(payload, dict) else payload


CODEC.register_upcaster("feature_vector", 1, _feature_vector_v1_to_v2)
