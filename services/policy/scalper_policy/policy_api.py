"""``/v1/policy``: masked actions of the served model (scope ``infer``) and what is served (``read``).

``POST /v1/policy/action`` takes either ``{symbol}`` (the observation is the symbol's live window from
``features.vectors`` with its position from ``positions.state``) or ``{symbol, observation}`` with a
20 x 23 observation given explicitly. The mask is :func:`scalper_shared.core.masks.action_mask` of
the position (explicit: ``position``, flat when omitted, which also replaces the observation's two
position columns on every row, as ``build_observation`` fills them; live: the position state, unless ``position`` is given) and the context (the request's ``context`` fields, else the symbol's live state, else none:
no trades, no cooldown, ACTIVE). ``probabilities`` and ``mask`` are indexed by action id.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from scalper_policy.inference import ServedModel, decide
from scalper_policy.live import MaskInputs, minute_datetime, minute_ms, minutes_to_close_at
from scalper_policy.serving import PolicyRuntime
from scalper_shared.core.actions import Action
from scalper_shared.core.features import FEATURE_SPEC, PositionFeatures
from scalper_shared.core.lifecycle import Side
from scalper_shared.runtime.api_security import Authenticator, Scope
from scalper_shared.schema.messages import PositionSide, Symbol, TradingState, UtcTime

logger = logging.getLogger(__name__)

OBSERVATION_LIMIT = max(max(abs(f.low), abs(f.high)) for f in (*FEATURE_SPEC.market, *FEATURE_SPEC.position))
"""No feature's clip range reaches beyond this: larger values cannot come from the feature service."""
ObservationValue = Annotated[float, Field(ge=-OBSERVATION_LIMIT, le=OBSERVATION_LIMIT, allow_inf_nan=False)]
ObservationRow = Annotated[list[ObservationValue], Field(min_length=FEATURE_SPEC.n_features,
                                                         max_length=FEATURE_SPEC.n_features)]
ACTION_NAMES = [action.name for action in Action]


class PositionInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    side: PositionSide = PositionSide.FLAT
    unrealised_pnl_pct: Annotated[float, Field(ge=-1.0, le=100.0, allow_inf_nan=False)] = Field(
        0.0, description="Unrealised P&L as a fraction of the premium paid (-0.15 = -15%)")


class MaskContext(BaseModel):
    """Mask inputs besides the position; an omitted field comes from the live state."""

    model_config = ConfigDict(extra="forbid")

    minutes_to_close: Annotated[float, Field(ge=0, le=1440, allow_inf_nan=False)] | None = None
    trading_state: TradingState | None = None
    trades_today: Annotated[int, Field(ge=0, le=100_000)] | None = None
    minutes_since_exit: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)] | None = Field(
        None, description="Minutes since the symbol's last exit today; omit when it has not exited")
    exit_was_stop: bool | None = None
    pnl_today: Annotated[float, Field(ge=-1e9, le=1e9, allow_inf_nan=False)] | None = Field(
        None, description="The day's realised P&L in dollars (negative = loss)")


class PolicyActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: Symbol
    observation: Annotated[list[ObservationRow], Field(
        min_length=FEATURE_SPEC.window, max_length=FEATURE_SPEC.window,
        description="20 rows (oldest first) of 23 features in FEATURE_SPEC order (the last two, the position, "
                    "are taken from `position`); omit to use the live window",
    )] | None = None
    position: PositionInput | None = None
    context: MaskContext | None = None
    minute: UtcTime | None = Field(None, description="Minute the explicit observation refers to (default: now)")
    deterministic: bool = True
    seed: Annotated[int, Field(ge=0, le=2**53 - 1)] | None = Field(
        None, description="Seed of a stochastic action (deterministic=false) for a reproducible draw; at most "
                          "2^53 - 1, the largest integer every JSON parser reads exactly")


class PolicyActionResponse(BaseModel):
    symbol: str
    minute: datetime
    action: int
    action_name: str
    probabilities: list[float]
    mask: list[bool]
    action_names: list[str]
    model_id: str
    spec_hash: str
    deterministic: bool
    observation_source: str = Field(description="'explicit' or 'live'")


class ServedModelView(BaseModel):
    model_id: str | None
    spec_hash: str | None
    loaded_at: datetime | None
    refused_model_id: str | None = None
    refused_reason: str | None = None


def position_features(position: PositionInput) -> PositionFeatures:
    return PositionFeatures(int(Side.of_position(position.side)), position.unrealised_pnl_pct)


def _with_context(inputs: MaskInputs, context: MaskContext | None) -> MaskInputs:
    if context is None:
        return inputs
    given = context.model_dump(exclude_none=True)
    if "minutes_since_exit" in context.model_fields_set and context.minutes_since_exit is None:
        given["minutes_since_exit"] = float("inf")
    return replace(inputs, **given)


def _explicit(request: PolicyActionRequest, runtime: PolicyRuntime) -> tuple[int, np.ndarray, MaskInputs]:
    position = request.position or PositionInput()
    observation = np.asarray(request.observation, dtype=np.float64)
    observation[:, FEATURE_SPEC.n_market:] = position_features(position).values()  # as build_observation
    minute = minute_ms(request.minute or runtime.clock.now())
    live = runtime.live.mask_inputs(request.symbol, minute)
    inputs = replace(live, position=position.side, minutes_to_close=minutes_to_close_at(minute))
    return minute, observation, _with_context(inputs, request.context)


def _live(request: PolicyActionRequest, runtime: PolicyRuntime) -> tuple[int, np.ndarray, MaskInputs]:
    snapshot = runtime.live.snapshot(request.symbol)
    if snapshot is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no live features for {request.symbol} yet; "
                                                       f"send an explicit observation")
    if snapshot.unavailable:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the live features of {request.symbol} hold features "
                                                      f"computed without their inputs ({', '.join(sorted(snapshot.unavailable))}); "
                                                      f"send an explicit observation")
    observation, inputs = snapshot.observation, snapshot.inputs
    if request.position is not None:  # the caller knows better than the last position state
        observation[:, FEATURE_SPEC.n_market:] = position_features(request.position).values()
        inputs = replace(inputs, position=request.position.side)
    return snapshot.minute, observation, _with_context(inputs, request.context)


def _served(runtime: PolicyRuntime) -> ServedModel:
    model = runtime.holder.current()
    if model is None:
        refusal = runtime.holder.refusal
        detail = "no model is promoted and loadable yet"
        if refusal is not None:
            detail += f" (promoted model {refusal.model_id} refused: {refusal.reason})"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail)
    return model


def policy_router(runtime: PolicyRuntime, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1/policy", tags=["policy"])

    @router.post("/action", response_model=PolicyActionResponse, dependencies=[Depends(auth.require(Scope.INFER))],
                 responses={404: {"description": "No live features for the symbol"},
                            503: {"description": "No model served"}})
    async def action(request: PolicyActionRequest) -> PolicyActionResponse:
        """The served model's masked action for one symbol-minute."""
        model = _served(runtime)  # one read: a concurrent hot swap cannot mix two models
        explicit = request.observation is not None
        minute, observation, inputs = (_explicit if explicit else _live)(request, runtime)
        rng = None if request.deterministic else runtime.sample_rng(request.seed)
        decision = decide(model, observation, inputs.mask(model.risk),
                          deterministic=request.deterministic, rng=rng)
        return PolicyActionResponse(
            symbol=request.symbol, minute=minute_datetime(minute), action=int(decision.action),
            action_name=decision.action.name, probabilities=decision.probabilities.tolist(),
            mask=decision.mask.tolist(), action_names=ACTION_NAMES, model_id=model.model_id,
            spec_hash=model.spec_hash, deterministic=request.deterministic,
            observation_source="explicit" if explicit else "live")

    @router.get("/model", response_model=ServedModelView, dependencies=[Depends(auth.require(Scope.READ))])
    def served_model() -> ServedModelView:
        """The model served now, and the last promoted model that was refused (with the reason)."""
        model, refusal = runtime.holder.current(), runtime.holder.refusal
        return ServedModelView(
            model_id=model.model_id if model else None, spec_hash=model.spec_hash if model else None,
            loaded_at=model.loaded_at if model else None,
            refused_model_id=refusal.model_id if refusal else None,
            refused_reason=refusal.reason if refusal else None)

    return router
