"""What every service process shares: structured logging, the health/metrics app, and serving."""

from scalper_shared.runtime.app import BackgroundWorker, ReadinessCheck, build_service_app, serve
from scalper_shared.runtime.logs import configure_logging

__all__ = ["BackgroundWorker", "ReadinessCheck", "build_service_app", "configure_logging", "serve"]
