"""Command line: `job-executor serve|lint|render|run|init-files` (the contract is in DESIGN.md).
Each command parses its arguments here and calls one function of app/ (or the init container's
program)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from executor import __version__
from executor.app import runs_cli
from executor.app.dryrun import DryRunError, concurrency_notes, dry_run
from executor.app.lint import allow_list_warnings, lint_paths
from executor.backends.kubernetes import initfiles
from executor.config.parse import read_config_file
from executor.model.events import EventError, load_event_file
from executor.model.problems import ConfigError
from executor.settings import Settings
from executor.support import speedups
from executor.support.envvars import SettingsError, globs


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="job-executor", description="Run Kubernetes Jobs for CloudEvents.")
    parser.add_argument("--version", action="version", version=f"job-executor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lint = commands.add_parser(
        "lint",
        help="check job configs (a file, or a folder: every job/config.yaml below it) with the policy "
        "`render` applies; one FILE:LINE: message per problem",
    )
    lint.add_argument("configs", nargs="+", metavar="CONFIG")
    lint.add_argument("--allowed-images", help="ALLOWED_IMAGE_LIST: comma-separated image globs")
    lint.add_argument(
        "--files-dir",
        type=Path,
        help="resource tree that `files:` paths are relative to (default: the folder holding job/)",
    )
    lint.set_defaults(handler=cmd_lint)

    render = commands.add_parser("render", help="print the Kubernetes objects an event would create")
    render.add_argument("--config", required=True, help="a job/config.yaml")
    render.add_argument("--event", required=True, help="a CloudEvent in JSON (structured mode)")
    _add_job_settings(render)
    render.add_argument(
        "--files-dir",
        type=Path,
        help="resource tree that `files:` paths are relative to (default: the folder holding job/)",
    )
    render.set_defaults(handler=cmd_render)

    serve = commands.add_parser(
        "serve", help="receive CloudEvents and run jobs (settings from the environment)"
    )
    serve.add_argument("--host", help="RCV_HOST (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="RCV_PORT (default 8080; 0 picks a free port)")
    serve.add_argument(
        "--config-dir",
        type=Path,
        help="CONFIG_DIR: the local resource tree (default samples/resources)",
    )
    serve.add_argument("--backend", choices=("local", "kubernetes"), help="BACKEND (default local)")
    serve.add_argument("--state-dir", type=Path, help="STATE_DIR: SQLite state and local work dirs")
    serve.add_argument("--sink", help="K_SINK: URL to POST started/finished events to (default: stdout)")
    serve.add_argument(
        "--log-level",
        type=str.lower,
        choices=("debug", "info", "warning", "error"),
        help="LOG_LEVEL (default info)",
    )
    serve.set_defaults(handler=cmd_serve)

    run = commands.add_parser(
        "run", help="handle one event with the local backend and print the events it emits"
    )
    run.add_argument("--config", required=True, type=Path, help="a job/config.yaml")
    run.add_argument("--event", required=True, help="a CloudEvent in JSON (structured mode)")
    run.add_argument(
        "--files-dir",
        type=Path,
        help="resource tree for `files:` (default: the folder holding job/)",
    )
    run.add_argument(
        "--secrets-dir", type=Path, help="LOCAL_SECRETS_DIR: a folder per secret, a file per key"
    )
    run.set_defaults(handler=cmd_run)

    runs_cli.register(commands)  # runs, runs show, logs, replay: the run history API

    init = commands.add_parser("init-files", help="the init container's program: stage files under /keptn")
    init.set_defaults(handler=lambda _args: initfiles.main())
    return parser


def _add_job_settings(parser: argparse.ArgumentParser) -> None:
    """Flags that mirror serve's settings; unset flags fall back to the environment."""
    parser.add_argument("--namespace", help="JOB_NAMESPACE")
    parser.add_argument("--allowed-images", help="ALLOWED_IMAGE_LIST: comma-separated globs")
    parser.add_argument("--default-limits-cpu", help="DEFAULT_RESOURCE_LIMITS_CPU")
    parser.add_argument("--default-limits-memory", help="DEFAULT_RESOURCE_LIMITS_MEMORY")
    parser.add_argument("--default-requests-cpu", help="DEFAULT_RESOURCE_REQUESTS_CPU")
    parser.add_argument("--default-requests-memory", help="DEFAULT_RESOURCE_REQUESTS_MEMORY")
    parser.add_argument("--init-image", help="INIT_CONTAINER_IMAGE")
    parser.add_argument(
        "--files-source",
        choices=("configmap", "keptn"),
        help="how the init container gets files (default: configmap, or keptn with CONFIG_SOURCE=keptn)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    allowed = globs("--allowed-images", args.allowed_images) if args.allowed_images is not None else None
    return Settings.from_env().with_overrides(
        jobs={"namespace": args.namespace, "allowed_images": allowed, "init_image": args.init_image},
        resources={
            "limits_cpu": args.default_limits_cpu,
            "limits_memory": args.default_limits_memory,
            "requests_cpu": args.default_requests_cpu,
            "requests_memory": args.default_requests_memory,
        },
    )


def cmd_lint(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    where = "ALLOWED_IMAGE_LIST"
    if args.allowed_images is not None:
        settings = settings.with_overrides(jobs={"allowed_images": globs(where, args.allowed_images)})
        where = "--allowed-images"
    for warning in allow_list_warnings(settings.jobs.allowed_images, where):
        print(warning, file=sys.stderr)
    result = lint_paths(args.configs, settings, args.files_dir)
    errors = warnings = 0
    for problem in result.problems:
        # A problem of the whole file (unreadable, missing) has no line to point at.
        print(problem if problem.line else f"{problem.file}: {problem.message}")
        errors += problem.severity == "error"
        warnings += problem.severity == "warning"
    files = f"{result.files} file{'s' if result.files != 1 else ''}"
    actions = f"{result.actions} action{'s' if result.actions != 1 else ''}"
    print(f"lint: checked {files}, {actions}: {errors} errors, {warnings} warnings", file=sys.stderr)
    return 1 if errors else 0


def cmd_render(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        config = read_config_file(args.config)
        event = load_event_file(args.event)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except EventError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not (event.project and event.stage and event.service):
        missing = [k for k in ("project", "stage", "service") if not getattr(event, k)]
        print(
            f"warning: the event has no data.{', data.'.join(missing)}: KEPTN_"
            f"{', KEPTN_'.join(m.upper() for m in missing)} will be empty",
            file=sys.stderr,
        )
    files_source = args.files_source or ("keptn" if settings.config.source == "keptn" else "configmap")
    files_root = args.files_dir or default_files_dir(Path(args.config))
    try:
        objects = dry_run(config, event, settings, files_source=files_source, files_root=files_root)
    except DryRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if objects is None:
        print(
            f"no action in {args.config} matches event type {event.type!r}; nothing to render",
            file=sys.stderr,
        )
        return 0
    for note in concurrency_notes(config, event):
        print(f"concurrency: {note}", file=sys.stderr)
    sys.stdout.write(yaml.dump_all(objects, Dumper=_PlainDumper, sort_keys=False, explicit_start=True))
    return 0


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated label maps out in full: kubectl users read these, not YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def cmd_serve(args: argparse.Namespace) -> int:
    from executor.app.service import serve

    settings = Settings.from_env().with_overrides(
        observe={"log_level": args.log_level},
        receiver={"host": args.host, "port": args.port},
        config={"dir": args.config_dir},
        jobs={"backend": args.backend},
        state={"dir": args.state_dir},
        reporting={"sink_url": args.sink},
    )
    if settings.config.source == "local" and not settings.config.dir.is_dir():
        installed = _installed_samples()
        if installed is not None and args.config_dir is None and "CONFIG_DIR" not in os.environ:
            # No settings, started outside the checkout: the embedded default is its samples
            # (the start-up log names the folder served).
            settings = settings.with_overrides(config={"dir": installed})
        else:
            # Serving would answer every event with "no config"; say what to set instead.
            raise SettingsError(
                f"CONFIG_DIR={settings.config.dir} is not a folder: set CONFIG_DIR (or --config-dir) to "
                "the tree of <project>/[<stage>/[<service>/]]job/config.yaml"
            )
    speedups.run(serve(settings), settings.dispatch.speedups)
    return 0


def _installed_samples() -> Path | None:
    """samples/resources of the source tree this package runs from (the README's install), or
    None when the package was installed without it (a wheel, the image)."""
    folder = Path(__file__).resolve().parent.parent / "samples" / "resources"
    return folder if folder.is_dir() else None


def cmd_run(args: argparse.Namespace) -> int:
    from executor.app.runonce import run_once

    settings = Settings.from_env().with_overrides(local={"secrets_dir": args.secrets_dir})
    try:
        event = load_event_file(args.event)
    except EventError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    files_root = args.files_dir or default_files_dir(args.config)
    return asyncio.run(run_once(settings, args.config, files_root, event))


def default_files_dir(config_path: Path) -> Path:
    folder = config_path.resolve().parent
    return folder.parent if folder.name == "job" else folder


if __name__ == "__main__":
    sys.exit(main())
