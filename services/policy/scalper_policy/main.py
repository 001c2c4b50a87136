"""Entrypoint: settings, logging and connections, then the policy app until SIGTERM."""

from __future__ import annotations

from scalper_policy.app import SERVICE, build_policy_app
from scalper_policy.settings import PolicySettings
from scalper_shared.runtime import configure_logging, serve
from scalper_shared.runtime.bootstrap import connect
from scalper_shared.settings import load_settings


def main() -> None:
    settings = load_settings(PolicySettings)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    connections = connect(settings)
    serve(build_policy_app(settings, connections), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
