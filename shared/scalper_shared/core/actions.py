"""The six policy actions. Their integer values are the policy network's output indices."""

from __future__ import annotations

from enum import IntEnum


class Action(IntEnum):
    HOLD = 0
    BUY_CALL = 1
    BUY_PUT = 2
    TRIM_50 = 3
    TRIM_70 = 4
    EXIT = 5


N_ACTIONS = len(Action)
ENTRY_ACTIONS = (Action.BUY_CALL, Action.BUY_PUT)
REDUCING_ACTIONS = (Action.TRIM_50, Action.TRIM_70, Action.EXIT)
