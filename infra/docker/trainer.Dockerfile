# syntax=docker/dockerfile:1
# Scalper trainer: RQ worker on queue "training" running MaskablePPO. The only image with torch.
# Build context: the repository root (docker-compose.yml sets it), so shared/ and services/ are in reach.
# TORCH_INDEX_URL picks the torch build: CPU by default; the compose `gpu` profile passes a CUDA
# index (e.g. https://download.pytorch.org/whl/cu128). The torch version is pinned in constraints.txt.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# --- builder: torch from TORCH_INDEX_URL, then wheels of scalper-shared, scalper-trainer and the rest
FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt ./
RUN pip wheel --wheel-dir /wheels -c constraints.txt \
      --index-url "${TORCH_INDEX_URL}" --extra-index-url https://pypi.org/simple torch
COPY shared/ shared/
COPY services/trainer/ services/trainer/
# The local torch wheel (version "+cpu"/"+cuXXX") sorts above PyPI's build of the same version.
RUN pip wheel --wheel-dir /wheels -c constraints.txt --find-links /wheels ./shared ./services/trainer

# --- runtime: the installed wheels only, run by an unprivileged user
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 scalper \
 && useradd --system --uid 10001 --gid scalper --create-home --home-dir /home/scalper scalper \
 && install -d -o scalper -g scalper /var/lib/scalper/artifacts
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels scalper-trainer
USER 10001:10001
WORKDIR /home/scalper
EXPOSE 8004
CMD ["python", "-m", "scalper_trainer"]
