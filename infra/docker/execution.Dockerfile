# syntax=docker/dockerfile:1
# Scalper execution and risk service (orders, brokers, positions).
# Build context: the repository root (docker-compose.yml sets it), so shared/ and services/ are in reach.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- builder: wheels of scalper-shared, scalper-execution and every dependency (pins: constraints.txt)
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt ./
COPY shared/ shared/
COPY services/execution/ services/execution/
RUN pip wheel --wheel-dir /wheels -c constraints.txt ./shared ./services/execution

# --- runtime: the installed wheels only, run by an unprivileged user
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 scalper \
 && useradd --system --uid 10001 --gid scalper --create-home --home-dir /home/scalper scalper \
 && install -d -o scalper -g scalper /var/lib/scalper/artifacts
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels scalper-execution
USER 10001:10001
WORKDIR /home/scalper
EXPOSE 8003
CMD ["python", "-m", "scalper_execution"]
