"""The `mockserver` command line."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click
from click.decorators import FC

from mockserver import logs
from mockserver.http.serving import SERVERS, available_server, is_loopback, serve
from mockserver.http.workers import WORKER_OF, say_listening, supervise
from mockserver.resources import admin_spec_path, default_fixtures_path, default_scenarios_path, spec_path
from mockserver.settings import Settings
from mockserver.state.fixtures import FixtureError
from mockserver.state.persistence import FSYNC_MODES


def _limit(flag: str, default: float, kind: click.ParamType, help: str) -> Callable[[FC], FC]:  # noqa: A002 - click's own name
    """A numeric serving limit, its default shown (its `MOCKSERVER_*` twin comes from `_with_env_twins`)."""
    return click.option(flag, default=default, show_default=True, type=kind, help=help)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "-V", "--version", package_name="mockserver")
def main() -> None:
    """Stateful contract mock of the Relay CDM and eGain Customer Manager APIs."""


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback unless you mean to share it.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the port actually bound to this file once listening (for scripts; useful with --port 0).",
)
@click.option(
    "--fixtures",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Fixture file to load (default: the bundled demo data).",
)
@click.option(
    "--server",
    type=click.Choice(SERVERS),
    default=None,
    help="granian (an event loop: waiting holds no thread) if installed, else waitress (WSGI, a thread per request).",
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="waitress's request threads (granian needs none: it waits on an event loop).",
)
@_limit(
    "--head-timeout",
    30.0,
    click.FloatRange(0.1, 3600),
    "Seconds for a request head to arrive, and for an idle keep-alive connection to stay open (granian).",
)
@_limit(
    "--body-timeout",
    30.0,
    click.FloatRange(0.1, 3600),
    "Seconds for a request body to arrive; then 408 and the connection is closed (granian).",
)
@_limit(
    "--max-connections",
    8192,
    click.IntRange(16, 1_000_000),
    "Connections served at once; more wait in the listen backlog until one closes (granian).",
)
@_limit(
    "--max-waits",
    2000,
    click.IntRange(1, 1_000_000),
    "Requests waiting at once (delays, long polls); past it, the API's 500 saying so (granian).",
)
@_limit("--journal-size", 1000, click.IntRange(0, 1_000_000), "Journal entries kept per session, oldest dropped first (0: no journal).")
@_limit("--session-idle", 600.0, click.FloatRange(1, 86400 * 7), "Seconds a test session (X-Mock-Session) may stay idle before it expires.")
@_limit("--max-sessions", 256, click.IntRange(1, 100_000), "Live test sessions at most; past it a new session id is refused (400).")
@click.option(
    "--scenarios",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of scenario files (*.yaml) (default: the bundled ones).",
)
@click.option(
    "--scenario",
    default=None,
    help="Start the default session in this scenario (see GET /__admin/scenarios): relay-outage, slow-network, ...",
)
@click.option(
    "--reload",
    is_flag=True,
    help="Watch the fixtures file and the scenarios folder; apply changes (a broken file keeps the last good state).",
)
@click.option("--no-check-responses", is_flag=True, help="Skip checking each answer against the spec (faster, less safe).")
@_limit(
    "--workers",
    1,
    click.IntRange(1, 64),
    "Server processes sharing the port (granian); more than 1 needs --store redis://, where they share everything.",
)
@click.option(
    "--store",
    default="memory",
    show_default=True,
    help="Where the state lives: memory (this process), or redis://HOST:PORT/DB, shared by every mockserver pointing at it.",
)
@click.option("--namespace", default="mockserver", show_default=True, help="Prefix of the Redis keys, so deployments can share one Redis.")
@click.option(
    "--fixture-cache",
    default="auto",
    show_default=True,
    help="Where checked fixture files of 1 MB or more are cached for a fast next start: auto (the user's cache folder), off, or a folder.",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the default session's state in this file (a snapshot) and PATH.log.N (every answered change); restore both at start.",
)
@click.option(
    "--save-interval",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between checks whether the state file's command log is due to be compacted into its snapshot.",
)
@click.option(
    "--fsync",
    default="everysec",
    show_default=True,
    type=click.Choice(FSYNC_MODES),
    help="When the state file's command log is flushed to disk: before each answer, once a second, or when the OS likes."
    " A killed server loses no answered change at any setting; this bounds what a machine crash loses.",
)
@click.option(
    "--admin-token",
    envvar="MOCKSERVER_ADMIN_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' on /__admin (required off loopback).",
)
@click.option(
    "--cors-origins",
    default=None,
    help="Origins allowed to call from a browser, comma-separated (default: any).",
)
@click.option("--no-cors", is_flag=True, help="Send no CORS headers; preflights get the API's 405.")
@click.option("--access-log", is_flag=True, help="Log one line per request: method, path, status, duration, operationId, session.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]), show_default=True)
@click.option("--log-format", default="text", type=click.Choice(["text", "json"]), show_default=True, help="json: one object a line.")
def serve_command(
    host: str,
    port: int,
    port_file: Path | None,
    fixtures: Path | None,
    server: str | None,
    threads: int,
    head_timeout: float,
    body_timeout: float,
    max_connections: int,
    max_waits: int,
    journal_size: int,
    session_idle: float,
    max_sessions: int,
    scenarios: Path | None,
    scenario: str | None,
    reload: bool,
    no_check_responses: bool,
    workers: int,
    store: str,
    namespace: str,
    fixture_cache: str,
    state_file: Path | None,
    save_interval: float,
    fsync: str,
    admin_token: str | None,
    cors_origins: str | None,
    no_cors: bool,
    access_log: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Serve both APIs on HOST:PORT with state loaded from the fixtures."""
    logs.configure(log_level, log_format)
    if not is_loopback(host):
        if not admin_token:
            raise click.UsageError(f"binding to {host} exposes the mock beyond this machine: set --admin-token to protect /__admin.")
        click.echo(f"warning: binding to {host} exposes the mock beyond this machine; /__admin requires the admin token.", err=True)
    settings = Settings(
        fixtures=fixtures or default_fixtures_path(),
        check_responses=not no_check_responses,
        fixture_cache=fixture_cache,
        store=store,
        namespace=namespace,
        state_file=state_file,
        admin_token=admin_token,
        access_log=access_log,
        cors=not no_cors,
        cors_origins=cors_origins,
        host=host,
        port=port,
        server=server or available_server(),
        threads=threads,
        save_interval=save_interval,
        fsync=fsync,
        head_timeout=head_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
        max_waits=max_waits,
        journal_size=journal_size,
        session_idle=session_idle,
        max_sessions=max_sessions,
        scenarios=scenarios or default_scenarios_path(),
        scenario=scenario,
        reload=reload,
        worker=bool(os.environ.get(WORKER_OF)),
    )

    def listening(bound: int) -> None:
        click.echo(banner(settings, bound) + (f"\n  {workers} worker processes, sharing --store {store}" if workers > 1 else ""))
        if port_file is not None:
            port_file.write_text(f"{bound}\n", encoding="utf-8")

    if workers > 1:
        if store == "memory" or (server or available_server()) != "granian":
            raise click.UsageError("--workers above 1 needs --store redis://... (each worker is a process) and the granian server")
        sys.exit(supervise(settings, workers, _worker_argv(sys.argv), listening))
    try:
        serve(settings, on_listening=say_listening if settings.worker else listening)
    except FixtureError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"error: cannot serve on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # a defect: its traceback in the log, then one line that says the server is gone
        logging.getLogger("mockserver").exception("the server stopped on an unexpected error")
        click.echo(f"error: mockserver stopped on an unexpected error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


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
    lines = [
        f"mockserver listening on {base} ({settings.server}, fixtures {settings.fixtures})",
        f"  Relay CDM   {base}/cdm/client/{{client_id}}/...  (also {base}/platform/v3/api/cdm/...)",
        f"  eGain       {base}/core/customermgr/v3/customer/...",
        f"  docs        {base}/docs  (specs: {base}/openapi.yaml, {base}/__admin/openapi.yaml)",
        f"  dashboard   {base}/__admin/ui",
        f"  admin       {base}/__admin/  (reset, sessions, faults, requests, scenarios)",
    ]
    if settings.fixtures.resolve() == default_fixtures_path().resolve():
        lines += [
            "  demo credentials (bundled fixtures):",
            "    Relay  xx-relay-api-key: demo-key (client demo) or other-key (client other)",
            "    eGain  Authorization: Bearer demo-user-token | demo-app-token | demo-readonly-token",
        ]
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
