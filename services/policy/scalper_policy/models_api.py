"""``/v1/models``: the model registry (list with scope ``read``, promote with scope ``admin``).

Exactly one model is promoted at a time: promotion clears the previous one and sets the new one in
one transaction under an advisory lock (and a partial unique index backs the rule up).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import Engine, select

from scalper_shared.db.models import models
from scalper_shared.db.training import promote_model
from scalper_shared.runtime.api_security import ApiKeyRecord, Authenticator, Scope
from scalper_shared.schema.training import ModelView

logger = logging.getLogger(__name__)

def list_models(engine: Engine, limit: int) -> list[ModelView]:
    query = select(models).order_by(models.c.created_at.desc(), models.c.id).limit(limit)
    with engine.connect() as connection:
        return [ModelView.model_validate(dict(row._mapping)) for row in connection.execute(query)]


def models_router(engine: Engine, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1/models", tags=["models"])
    admin = Depends(auth.require(Scope.ADMIN))

    @router.get("", response_model=list[ModelView], dependencies=[Depends(auth.require(Scope.READ))])
    def get_models(limit: Annotated[int, Query(gt=0, le=500)] = 100) -> list[ModelView]:
        """Registered models, newest first."""
        return list_models(engine, limit)

    @router.post("/{model_id}/promote", response_model=ModelView,
                 responses={404: {"description": "No ready model with this id"}})
    def promote(model_id: str, key: ApiKeyRecord = admin) -> ModelView:
        """Serve this model from now on; the previously promoted one is demoted."""
        promoted = promote_model(engine, model_id)
        if promoted is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ready model {model_id!r}")
        logger.info("model %s promoted by key %s", model_id, key.name)
        return promoted

    return router
