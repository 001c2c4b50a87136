"""Redis stream names: the one place they are spelled."""

MD_BARS = "md.bars"
FEATURES_VECTORS = "features.vectors"
POLICY_DECISIONS = "policy.decisions"
ORDERS_EVENTS = "orders.events"
POSITIONS_STATE = "positions.state"
RISK_COMMANDS = "risk.commands"

DEAD_LETTER_SUFFIX = ".dlq"

ALL = (MD_BARS, FEATURES_VECTORS, POLICY_DECISIONS, ORDERS_EVENTS, POSITIONS_STATE, RISK_COMMANDS)


def dead_letter(stream: str) -> str:
    """The dead-letter stream of ``stream``."""
    return stream + DEAD_LETTER_SUFFIX

FEATURE_SPEC_HASH_KEY = "features:spec_hash"
"""Redis key (with the stream prefix) where the feature service records the spec hash it computes;
the policy service refuses a model trained on another spec."""
