"""Golden-file contract tests: the wire form of every (type, version) is pinned.

To change a message's shape, bump its VERSION, add an upcaster from the old version and a new
golden file; never edit an existing golden file. Regenerate a missing one with
``python tests/unit/test_schema_contract.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalper_shared.schema import CODEC
from scalper_shared.schema.messages import FeatureVector
from tests.unit.schema_examples import EXAMPLES, example_envelope

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"


def golden_path(type_name: str, version: int) -> Path:
    return GOLDEN / f"{type_name}.v{version}.json"


def test_every_message_type_has_an_example() -> None:
    assert {m.TYPE for m in EXAMPLES} == set(CODEC.types)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: f"{m.TYPE}.v{m.VERSION}")
def test_golden_file_decodes_to_the_example(message) -> None:  # type: ignore[no-untyped-def]
    path = golden_path(message.TYPE, message.VERSION)
    assert path.exists(), f"missing golden file {path.name}"
    decoded = CODEC.decode(path.read_bytes())
    assert decoded == example_envelope(message)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: f"{m.TYPE}.v{m.VERSION}")
def test_example_encodes_to_the_golden_file(message) -> None:  # type: ignore[no-untyped-def]
    path = golden_path(message.TYPE, message.VERSION)
    expected = json.loads(path.read_text())
    assert json.loads(CODEC.encode(example_envelope(message))) == expected


def test_a_v1_feature_vector_decodes_with_no_feature_marked_unavailable() -> None:
    decoded = CODEC.decode(golden_path("feature_vector", 1).read_bytes()).payload
    assert isinstance(decoded, FeatureVector) and decoded.unavailable == () and decoded.values == (0.1, -0.25, 3.0)


if __name__ == "__main__":
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for msg in EXAMPLES:
        target = golden_path(msg.TYPE, msg.VERSION)
        if not target.exists():
            doc = json.loads(CODEC.encode(example_envelope(msg)))
            target.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            print(f"wrote {target}")
