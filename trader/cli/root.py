"""The root of the ``trader`` command: its options, its help format, how failures read.

* ``--version``, ``--debug`` (tracebacks for unexpected failures) and
  ``--log-format`` (``auto``: coloured lines on a terminal, JSON otherwise).
* :class:`CommandGroup` tidies every command's help as it is looked up, so a
  command group added anywhere gets the same treatment: flags show no ``<bool>``
  value placeholder (typer prints one for every option, but a flag takes no
  value).  It also builds the commands it names in ``lazy_commands`` only when
  one is looked up: ``trader status`` neither imports the other commands'
  modules nor has typer read their signatures (``--help`` still lists them all).
* :func:`failure_text`: an unexpected exception as one paragraph; the
  traceback only with ``--debug``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from enum import StrEnum
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup, TyperOption


class LogFormat(StrEnum):
    """How log lines are written."""

    auto = "auto"
    json = "json"
    console = "console"


class LogLevel(StrEnum):
    """Levels a ``--log-level`` option accepts."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class RunState:
    """What the root options asked for, read by ``main`` when something fails."""

    debug: bool = False


def _tidy(command: Any, ctx: Any) -> None:
    """Drop the value placeholder of every flag of ``command`` and its subcommands."""
    params = [*command.params, command.get_help_option(ctx)]
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""  # typer's rich help prints the metavar when it is set
    for sub in (getattr(command, "commands", None) or {}).values():
        _tidy(sub, ctx)


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands by name, in order; one given as a loader is built when first read.

    Typer's group reads its ``commands`` mapping for lookups, listings and "did you
    mean" suggestions: names come from here without building anything, a command only
    when its value is read.
    """

    def __init__(self, built: Mapping[str, Any], loaders: Mapping[str, Callable[[], Any]]) -> None:
        self._built = dict(built)
        self._loaders = {name: load for name, load in loaders.items() if name not in self._built}
        self._order = [*self._built, *self._loaders]

    def __getitem__(self, name: str) -> Any:
        if name not in self._built and name in self._loaders:
            self._built[name] = self._loaders.pop(name)()
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self._order:
            self._order.append(name)
        self._loaders.pop(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self._order:
            raise KeyError(name)
        self._order.remove(name)
        self._built.pop(name, None)
        self._loaders.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._loaders


class CommandGroup(TyperGroup):
    """The root group: every command it hands out has tidy help; ``lazy_commands``
    (name -> ``"module:attribute"``, a command function or a ``typer.Typer`` of
    subcommands) are imported and built when looked up, after any registered ones."""

    lazy_commands: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = LazyCommands(self.commands, {
            name: (lambda name=name, target=target: self._build(name, target))
            for name, target in self.lazy_commands.items()})

    def _build(self, name: str, target: str) -> Any:
        """The command ``name`` as typer builds it when registered on the root app."""
        module, _, attr = target.partition(":")
        obj = getattr(importlib.import_module(module), attr)
        # A one-command app with the root's settings builds it exactly as the root would
        # (typer's default pretty_exceptions_short, which the root app keeps, included).
        holder = typer.Typer(rich_markup_mode=self.rich_markup_mode,
                             suggest_commands=self.suggest_commands)
        if isinstance(obj, typer.Typer):
            holder.add_typer(obj, name=name)
        else:
            holder.command(name)(obj)
        return typer.main.get_group(holder).commands[name]

    def list_commands(self, ctx: Any) -> list[str]:
        # typer's own reads every (name, command) pair, which would build them all.
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _tidy(self, ctx)
        super().format_help(ctx, formatter)


def package_version() -> str:
    """The installed distribution's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trader-daemon")
    except PackageNotFoundError:  # running from a source tree that was never installed
        from trader import __version__

        return __version__


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"trader {package_version()}")
        raise typer.Exit()


def root(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="print the version and exit"),
    debug: bool = typer.Option(False, "--debug",
                               help="print the traceback of an unexpected failure"),
    log_format: LogFormat = typer.Option(LogFormat.auto, "--log-format",
                                         help="log lines: auto = coloured on a terminal, JSON "
                                              "otherwise (journald, pipes); also "
                                              "$TRADER_LOG_FORMAT"),
) -> None:
    """Trading daemon and replay backtester."""
    RunState.debug = debug
    # This callback also runs for `trader <command> --help`: importing the logging module
    # (structlog, rich) only to record "auto" would cost that help a tenth of a second.
    # "auto" is the module's default, so it is set only where an earlier call (another
    # command in this process) may have changed it.
    if log_format is not LogFormat.auto or "trader.core.logging" in sys.modules:
        from trader.core.logging import set_format

        set_format(None if log_format is LogFormat.auto else log_format.value)


def failure_text(exc: BaseException) -> str:
    """An unexpected failure as one paragraph (secrets masked) that says how to see more."""
    from trader.core.logging import redactor

    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > 600:
        text = text[:600] + " ..."
    return redactor().text(f"{type(exc).__name__}: {text}")
