"""The `mockserver` command line."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import typing
from pathlib import Path
from typing import Any

import click

from mockserver import families, logs
from mockserver.http.serving import available_server, is_loopback, serve
from mockserver.http.workers import WORKER_OF, say_listening, supervise
from mockserver.resources import admin_spec_path, default_fixtures_path, spec_path
from mockserver.settings import GROUPS, LOGGING, OPTION, SERVING, Option, Settings
from mockserver.state.fixtures import FixtureError


class _GroupedOption(click.Option):
    """An option shown in a section of the help text (settings.GROUPS)."""

    def __init__(self, *args: Any, group: str, **attrs: Any) -> None:
        super().__init__(*args, **attrs)
        self.group = group


class _SettingOption(_GroupedOption):
    """The option of a field of Settings, made from the field's metadata (settings.Option)."""

    def __init__(self, spec: dataclasses.Field, kind: Any) -> None:
        how: Option = spec.metadata[OPTION]
        self.field = spec.name
        self.clears = how.off_switch is not None
        flag = how.off_switch or "--" + spec.name.replace("_", "-")
        if kind is bool:
            super().__init__([flag], is_flag=True, help=how.help, group=how.group)
            return
        default = spec.default if how.default_shown else None
        super().__init__([flag], default=default, show_default=default is not None, type=_type(how, kind), help=how.help, group=how.group)


def _type(how: Option, kind: Any) -> click.ParamType | None:
    """A choice, a path, a number in its bounds; else None, which click reads from the default (text)."""
    if how.choices is not None:
        return click.Choice(how.choices())
    if Path in (kind, *typing.get_args(kind)):
        return click.Path(file_okay=False, path_type=Path) if how.folder else click.Path(dir_okay=False, path_type=Path)
    if how.bounds is not None:
        low, high = how.bounds
        if kind is int:
            return click.IntRange(None if low is None else int(low), None if high is None else int(high))
        return click.FloatRange(low, high)
    return None


def _settings_options() -> list[_SettingOption]:
    """One option a field of Settings that has one, in the fields' order."""
    kinds = typing.get_type_hints(Settings)
    return [_SettingOption(spec, kinds[spec.name]) for spec in dataclasses.fields(Settings) if OPTION in spec.metadata]


class _GroupedCommand(click.Command):
    """Its options in the help text by section (settings.GROUPS), then those of none (--help)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str, list[tuple[str, str]]] = {group: [] for group in GROUPS}
        for param in self.get_params(ctx):
            row = param.get_help_record(ctx)
            if row is not None:
                rows.setdefault(getattr(param, "group", "Options"), []).append(row)
        for group, records in rows.items():
            if records:
                with formatter.section(group):
                    formatter.write_dl(records)


SETTINGS_OPTIONS = _settings_options()


def _settings(values: dict[str, Any]) -> Settings:
    """Settings from the values of SETTINGS_OPTIONS. An option not given leaves its field's default, but for the
    server: the one installed (available_server); an off switch given clears its field."""
    given: dict[str, Any] = {"server": available_server()}
    for option in SETTINGS_OPTIONS:
        value = values[option.name]
        if option.clears:
            given[option.field] = not value
        elif value is not None:
            given[option.field] = value
    return Settings(**given, worker=bool(os.environ.get(WORKER_OF)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "-V", "--version", package_name="mockserver")
def main() -> None:
    """Stateful contract mock of the Relay CDM and eGain Customer Manager APIs."""


# Its options are the fields of Settings that have one (SETTINGS_OPTIONS, added below), and these of its own.
@main.command("serve", cls=_GroupedCommand)
@click.option(
    "--port-file",
    cls=_GroupedOption,
    group=SERVING,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the port actually bound to this file once listening (for scripts; useful with --port 0).",
)
@click.option(
    "--workers",
    cls=_GroupedOption,
    group=SERVING,
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (granian); more than 1 needs --store redis://, where they share everything.",
)
@click.option(
    "--log-level",
    cls=_GroupedOption,
    group=LOGGING,
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    show_default=True,
)
@click.option(
    "--log-format",
    cls=_GroupedOption,
    group=LOGGING,
    default="text",
    type=click.Choice(["text", "json"]),
    show_default=True,
    help="json: one object a line.",
)
def serve_command(port_file: Path | None, workers: int, log_level: str, log_format: str, **options: Any) -> None:
    """Serve both APIs on HOST:PORT with state loaded from the fixtures."""
    logs.configure(log_level, log_format, families.credentials(families.load()))
    settings = _settings(options)
    host = settings.host
    if not is_loopback(host):
        if not settings.admin_token:
            raise click.UsageError(f"binding to {host} exposes the mock beyond this machine: set --admin-token to protect /__admin.")
        click.echo(f"warning: binding to {host} exposes the mock beyond this machine; /__admin requires the admin token.", err=True)

    def listening(bound: int) -> None:
        click.echo(banner(settings, bound) + (f"\n  {workers} worker processes, sharing --store {settings.store}" if workers > 1 else ""))
        if port_file is not None:
            port_file.write_text(f"{bound}\n", encoding="utf-8")

    if workers > 1:
        if settings.store == "memory" or settings.server != "granian":
            raise click.UsageError("--workers above 1 needs --store redis://... (each worker is a process) and the granian server")
        sys.exit(supervise(settings, workers, _worker_argv(sys.argv), listening))
    try:
        serve(settings, on_listening=say_listening if settings.worker else listening)
    except FixtureError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"error: cannot serve on {host}:{settings.port}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # a defect: its traceback in the log, then one line that says the server is gone
        logging.getLogger("mockserver").exception("the server stopped on an unexpected error")
        click.echo(f"error: mockserver stopped on an unexpected error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


serve_command.params[:0] = SETTINGS_OPTIONS


def _worker_argv(argv: list[str]) -> list[str]:
    """The options a worker of `serve --workers` is started with: the supervisor's, but the port (given),
    the port file (the supervisor's) and the number of workers."""
    options = argv[argv.index("serve") + 1 :] if "serve" in argv else argv[1:]
    kept, skip = [], False
    for option in options:
        if skip:
            skip = False
        elif option in ("--workers", "--port", "--port-file"):
            skip = True
        elif not option.startswith(("--workers=", "--port=", "--port-file=")):
            kept.append(option)
    return kept


def banner(settings: Settings, port: int) -> str:
    """Every URL a user needs, and the demo credentials when the bundled fixtures are served."""
    base = f"http://{settings.host}:{port}"
    served = families.load(settings.families)
    lines = [
        f"mockserver listening on {base} ({settings.server}, fixtures {settings.fixtures})",
        *(line.format(base=base) for family in served for line in family.banner),
        f"  docs        {base}/docs  (specs: {base}/openapi.yaml, {base}/__admin/openapi.yaml)",
        f"  dashboard   {base}/__admin/ui",
        f"  admin       {base}/__admin/  (reset, sessions, faults, requests, scenarios)",
    ]
    if settings.fixtures.resolve() == default_fixtures_path().resolve():
        lines += ["  demo credentials (bundled fixtures):", *(line for family in served for line in family.banner_demo)]
    return "\n".join(lines)


@main.command("spec")
@click.option("--format", "output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--admin", is_flag=True, help="The admin API's spec instead of the vendor APIs'.")
def spec_command(output: str, admin: bool) -> None:
    """Print the bundled spec (the contract the mock serves and checks)."""
    path = admin_spec_path() if admin else spec_path()
    if output == "yaml":
        click.echo(path.read_text(encoding="utf-8"), nl=False)
        return
    import json

    import yaml

    click.echo(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), indent=2, ensure_ascii=False))


def _with_env_twins(command: click.Command) -> click.Command:
    """Every option of `command` gets its `MOCKSERVER_*` environment twin (`--max-waits`: MOCKSERVER_MAX_WAITS)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            param.envvar = param.envvar or f"MOCKSERVER_{param.name.upper()}"
            param.show_envvar = True
    return command


_with_env_twins(serve_command)


# Checking other servers against the spec (issue #3); both import their heavy dependencies only when run.
from mockserver.tools.contract_run import contract_command  # noqa: E402
from mockserver.tools.proxy import proxy_command  # noqa: E402

main.add_command(contract_command)
main.add_command(proxy_command)
