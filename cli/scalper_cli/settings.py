"""Settings of the ``scalper`` command line itself (environment and ``.env``).

Variables (all optional):

- ``REDIS_URL`` / ``DATABASE_URL``: the infrastructure the stack uses when it answers
  (defaults ``redis://127.0.0.1:6379/0`` and ``postgresql+psycopg://postgres@127.0.0.1:5432/scalper``);
  when nothing answers, ``scalper stack up`` starts embedded servers under the var directory.
- ``SCALPER_VAR_DIR``: where logs (``log/``), PID files and ``stack.json`` (``run/``), artifacts and
  embedded server data live (default ``var``).
- ``STACK_READY_TIMEOUT_S``: how long ``up`` waits for every service's ``/readyz`` (default 60).
- ``STACK_STOP_TIMEOUT_S``: how long ``down`` waits after SIGTERM before SIGKILL (default 20).
- ``SCALPER_EMBEDDED_REDIS_PORT``: port of the embedded Redis; 0 picks a free port (default 0).

Service ports are the services' own settings (``POLICY_HTTP_PORT`` ...), read from their classes.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from scalper_shared.settings import ServiceSettings


class StackSettings(ServiceSettings):
    """The CLI reads the services' shared variables (``REDIS_URL`` ...) plus its own below."""

    var_dir: Path = Field(Path("var"), validation_alias="SCALPER_VAR_DIR",
                          description="Logs, PID files, stack state and embedded server data")
    ready_timeout_s: float = Field(60.0, gt=0, validation_alias="STACK_READY_TIMEOUT_S",
                                   description="Seconds `up` waits for every /readyz to answer 200")
    stop_timeout_s: float = Field(20.0, gt=0, validation_alias="STACK_STOP_TIMEOUT_S",
                                  description="Seconds `down` waits after SIGTERM before SIGKILL")
    embedded_redis_port: int = Field(0, ge=0, le=65535, validation_alias="SCALPER_EMBEDDED_REDIS_PORT",
                                     description="Port of the embedded Redis (0: a free port)")
    embedded_redis_password: str = Field("", validation_alias="SCALPER_EMBEDDED_REDIS_PASSWORD",
                                         description="requirepass of the embedded Redis (empty: generated "
                                                     "once into var/redis/password)")
    probe_timeout_s: float = Field(2.0, gt=0, validation_alias="SCALPER_PROBE_TIMEOUT_S",
                                   description="Timeout of one infrastructure or HTTP probe")

    @field_validator("var_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "stack.json"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"
