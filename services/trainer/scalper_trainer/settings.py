"""Settings of the trainer service (environment and `.env`); see `.env.example`."""

from __future__ import annotations

from pydantic import Field

from scalper_shared.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    http_port: int = Field(8004, ge=1, le=65535, validation_alias="TRAINER_HTTP_PORT")
    torch_threads: int = Field(1, ge=0, validation_alias="TRAINER_TORCH_THREADS",
                               description="torch intra-op threads per job (1 is fastest for this small MLP; "
                                           "0 keeps torch's default)")
    job_monitoring_interval_s: int = Field(
        10, gt=0, validation_alias="TRAINER_JOB_MONITORING_INTERVAL_S",
        description="Heartbeat interval of a running job; a dead worker's job is retried after this + 60 s")
    checkpoint_keep: int = Field(3, ge=1, validation_alias="TRAINER_CHECKPOINT_KEEP",
                                 description="Checkpoints kept per job (the newest); older ones are deleted")
    checkpoint_budget_mb: int = Field(512, ge=1, validation_alias="TRAINER_CHECKPOINT_BUDGET_MB",
                                      description="Disk budget of one job's checkpoints (the newest always stays)")
    preempt_grace_s: float = Field(
        10.0, gt=0, validation_alias="TRAINER_PREEMPT_GRACE_S",
        description="On SIGTERM, how long a running job may take to checkpoint before it is killed and re-queued "
                    "(keep it below the stack's stop timeout)")
