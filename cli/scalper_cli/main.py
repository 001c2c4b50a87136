"""``scalper``: one command line for the local stack, data, features, training and evaluation.

This root only names the commands; each lives in its own module under ``scalper_cli.commands`` and
is imported when it runs (or shows its own ``--help``), never for ``scalper --help``: the command
modules pull in pandas, scipy, SQLAlchemy, httpx..., which took ``scalper --help`` to ~5 s.

Adding a command (the pattern every command follows):

1. write ``scalper_cli/commands/<name>.py`` with either a ``typer.Typer()`` app of subcommands
   (``scalper <name> <sub>``) or one plain function (a leaf command, ``scalper <name> --opt``);
2. add one :class:`LazyCommand` row to :data:`COMMANDS` below: the ``"module:attribute"`` target and
   the one-line summary ``scalper --help`` prints (it must not import the module to print it);
3. never import a command module from here. ``tests/unit/test_cli_help.py`` checks that every row
   loads, that its summary is clean text, and that ``scalper --help`` imports no command module.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

# typer >= 0.29 vendors click (typer._click): every class here derives from typer.core's, never from
# the click package, whose classes typer's command tree does not use.
Command = Any
Context = Any


@dataclass(frozen=True)
class LazyCommand:
    target: str
    """``"package.module:attribute"``: a ``typer.Typer`` (a group) or a function (a leaf command)."""
    summary: str
    """What ``scalper --help`` prints for the command."""


COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand("scalper_cli.commands.demo:demo",
                        "The whole loop on the synthetic market: train, evaluate, promote, paper-trade a day."),
    "stack": LazyCommand("scalper_cli.commands.stack:app",
                         "The local stack as detached processes: up, down, status, logs."),
    "ingest": LazyCommand("scalper_cli.commands.ingest:app",
                          "Market data into the bars table and md.bars: backfill, file, live, replay."),
    "data": LazyCommand("scalper_cli.commands.data:app",
                        "What the bars table holds, checked against the market calendar."),
    "train": LazyCommand("scalper_cli.commands.train:train",
                         "Start a training job on the policy API (--wait follows it)."),
    "tensorboard": LazyCommand("scalper_cli.commands.tensorboard:tensorboard",
                               "Where the training jobs' TensorBoard logs are, and TensorBoard on them."),
    "eval": LazyCommand("scalper_cli.commands.eval:evaluate",
                        "Evaluate a model over a date window against the baselines, with a report."),
    "paper": LazyCommand("scalper_cli.commands.paper:paper",
                         "Replay a stored day through the live services and compare with the backtest."),
    "premium": LazyCommand("scalper_cli.commands.premium:app",
                           "The option-premium model against real option quotes, and its calibration."),
    "reward": LazyCommand("scalper_cli.commands.reward:app",
                          "Does a preset's reward rank reference policies like after-cost money? (audit)"),
    "study": LazyCommand("scalper_cli.commands.study:app",
                         "Hyperparameter and reward studies with Optuna on the trainer workers."),
    "risk": LazyCommand("scalper_cli.commands.risk:app",
                        "The execution service's kill switch and trading state."),
    "keys": LazyCommand("scalper_cli.commands.keys:app",
                        "Make an API key and its hashed API_KEYS entry."),
    "docs": LazyCommand("scalper_cli.commands.docs:docs",
                        "Write the reference pages generated from the stream registry and the config models."),
}

_DOUBLE_BACKTICKS = re.compile(r"``([^`]*)``")
_ROLE = re.compile(r":(?:mod|func|class|data|meth|attr):`([^`]*)`")


def clean_help(text: str | None) -> str | None:
    """A docstring as terminal text: reStructuredText markup (``code``, :mod:`x`) removed and each
    paragraph's hard-wrapped lines joined (the terminal wraps them to its width)."""
    if text is None:
        return None
    text = _ROLE.sub(r"\1", _DOUBLE_BACKTICKS.sub(r"\1", text))
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in paragraph.splitlines()) for paragraph in paragraphs)


def _tidy_flag(param: Any) -> None:
    if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
        param.metavar = ""  # typer's rich help prints <bool> for a flag otherwise


def tidy(command: Command, ctx: Context | None = None) -> Command:
    """Clean help texts and hide the ``<bool>`` type label of flags, through the whole command tree."""
    command.help = clean_help(command.help)
    command.short_help = clean_help(command.short_help)
    for param in command.params:
        if isinstance(param, TyperOption):
            param.help = clean_help(param.help)
        _tidy_flag(param)
    if ctx is not None:
        _tidy_flag(command.get_help_option(ctx))  # created (and cached) on demand
    for sub in getattr(command, "commands", {}).values():
        tidy(sub, ctx)
    return command


def load(name: str, entry: LazyCommand) -> Command:
    """Import the command's module and build its click command (a group for a Typer app)."""
    module_name, attribute = entry.target.split(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        command: Command = typer.main.get_group(target)  # a group even with one subcommand (scalper data report)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return tidy(command)


class _Placeholder(TyperCommand):
    """Stands for a command in the root's help; the real one is built when the command is used."""

    def __init__(self, name: str, entry: LazyCommand) -> None:
        super().__init__(name, help=entry.summary, short_help=entry.summary)
        self.entry = entry
        self._real: Command | None = None

    @property
    def real(self) -> Command:
        if self._real is None:
            self._real = load(self.name or "", self.entry)
        return self._real

    def make_context(self, info_name: str | None, args: list[str], parent: Context | None = None,
                     **extra: Any) -> Context:
        if parent is not None:
            tidy(self.real, parent)  # the help options of the whole subtree (they need a context)
        return self.real.make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Context) -> Any:
        return self.real.invoke(ctx)

    def get_params(self, ctx: Context) -> list[Any]:
        return self.real.get_params(ctx)

    def to_info_dict(self, ctx: Context) -> dict[str, Any]:
        return self.real.to_info_dict(ctx)


class LazyGroup(TyperGroup):
    """The root group: :data:`COMMANDS` after the commands defined here, each imported on use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in COMMANDS:
            return _Placeholder(cmd_name, COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Context, formatter: Any) -> None:
        tidy(self, ctx)
        super().format_help(ctx, formatter)


app = typer.Typer(cls=LazyGroup, help="Scalper: 0DTE options scalping agent, from data to paper trading.",
                  no_args_is_help=True)


def configure_cli_logging(verbose: bool) -> None:
    """Log lines to stderr (the CLI's progress), INFO by default, DEBUG with --verbose."""
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "pgserver", "asyncio", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # urllib3 logs every retry in its own words; the Polygon client logs each one with the ticker and the wait
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging")] = False) -> None:
    """Scalper command line."""
    configure_cli_logging(verbose)


if __name__ == "__main__":
    app()
