"""Entrypoint: settings, logging and connections, then the service app until SIGTERM."""

from __future__ import annotations

from scalper_shared.runtime import build_service_app, configure_logging, serve
from scalper_shared.runtime.bootstrap import connect
from scalper_shared.settings import load_settings

from scalper_ingestion.settings import IngestionSettings

SERVICE = "ingestion"


def main() -> None:
    settings = load_settings(IngestionSettings)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    connections = connect(settings)
    app = build_service_app(SERVICE, checks=connections.readiness_checks())
    serve(app, settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
