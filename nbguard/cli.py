"""The command line: parse, load the config, call the pipeline, draw, pick an exit code.

Exit codes, one meaning each: 0 nothing regressed, 1 a notebook broke (see
`pipeline.exit_code`), 2 usage, configuration or environment-setup error (one line, no
traceback), 3 nbguard's own code failed on some notebook (its verdict is `internal-error`, the
traceback is in the JSON report, the rest of the audit is complete), 130 interrupted (Ctrl-C),
143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.markup import escape

from nbguard import __version__, pipeline, settings
from nbguard.ansi import printable
from nbguard.envs import colab
from nbguard.errors import NbguardError
from nbguard.report import formats, json_report, merge, nightly, terminal

EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the whole usage block; one line is what the other errors give.
        self.exit(EXIT_USAGE, f"nbguard: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nbguard",
        description="Run a course's notebooks in the locked and the upcoming environment "
        "and report what an upgrade breaks.",
    )
    parser.add_argument("--version", action="version", version=f"nbguard {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="execute every notebook in every env and compare (the main job)",
        description="Execute every notebook of COURSE in each env and compare with the baseline.",
    )
    run.add_argument("course", nargs="?", default=".", type=Path, help="course root (default: .)")
    _add_settings(run)
    _add_write(run)
    blame = commands.add_parser(
        "blame",
        help="name the upgrade behind broken or changed notebooks, confirmed by rebuilt envs",
        description="Run NOTEBOOKs (default: all) like `nbguard run`, then confirm each broken "
        "or changed notebook's culprit by rebuilding envs that revert single upgrades.",
    )
    blame.add_argument("notebook_paths", nargs="*", type=Path, metavar="NOTEBOOK")
    blame.add_argument("--course", type=Path, default=Path(), help="course root (default: .)")
    _add_settings(blame)
    fix_command = commands.add_parser(
        "fix",
        help="propose verified source fixes for broken notebooks, as a patch (--write: apply)",
        description="Run NOTEBOOKs (default: all) like `nbguard run --fix`: each broken notebook "
        "gets the smallest source edit that runs in the env it broke in, verified from a "
        "scratch copy, written to --patch; the course is changed only with --write.",
    )
    fix_command.add_argument("notebook_paths", nargs="*", type=Path, metavar="NOTEBOOK")
    fix_command.add_argument("--course", type=Path, default=Path(), help="course root (default: .)")
    _add_settings(fix_command)
    _add_write(fix_command)
    report = commands.add_parser(
        "report",
        help="re-render an nbguard JSON report: the terminal table, HTML, Markdown or JUnit XML",
        description="Re-render REPORT (a JSON report of `nbguard run`): the terminal table "
        "by default, or the formats named.",
    )
    report.set_defaults(command_parser=report)
    report.add_argument("json_report", type=Path, metavar="REPORT")
    for key in ("html", "markdown", "junit"):
        setting = next(s for s in settings.SETTINGS if s.key == key)
        report.add_argument(setting.flag, type=Path, metavar=setting.metavar, help=setting.help)
    report.add_argument(
        "--annotations", action="store_true", help="print GitHub Actions annotations"
    )
    merge_command = commands.add_parser(
        "merge",
        help="join the JSON reports of a sharded run (run --shard K/N) into one report",
        description="Merge the shards' JSON reports into the report one unsharded run would "
        "have written, and render it; exit code as `nbguard run` would have.",
    )
    merge_command.set_defaults(command_parser=merge_command)
    merge_command.add_argument(
        "shard_reports",
        nargs="+",
        type=Path,
        metavar="REPORT",
        help="a shard's JSON report (all of them: shard-*.json)",
    )
    for key in ("report", "html", "markdown", "junit"):
        setting = next(s for s in settings.SETTINGS if s.key == key)
        merge_command.add_argument(
            setting.flag, type=Path, metavar=setting.metavar, help=setting.help
        )
    merge_command.add_argument(
        "--annotations", action="store_true", help="print GitHub Actions annotations"
    )
    init_command = commands.add_parser(
        "init",
        help="write [tool.nbguard] and GitHub workflows into a course repository",
        description="Guess COURSE's notebooks and requirement files, write the nbguard config "
        "and .github/workflows/nbguard-{pr,nightly,audit}.yml; never overwrites unless --force.",
    )
    init_command.set_defaults(command_parser=init_command)
    init_command.add_argument(
        "course", nargs="?", default=".", type=Path, help="course root (default: .)"
    )
    init_command.add_argument(
        "--force",
        action="store_true",
        help="overwrite nbguard's workflow files and nbguard.toml (never an existing "
        "[tool.nbguard])",
    )
    colab_command = commands.add_parser(
        "colab-snapshot",
        help="save Google Colab's current runtime (Python, pip freeze) for the 'colab' env preset",
        description="Fetch the Python version and pip freeze Colab publishes "
        "(googlecolab/backend-info) and save them into COURSE, for envs with preset = 'colab'.",
    )
    colab_command.set_defaults(command_parser=colab_command)
    colab_command.add_argument(
        "course", nargs="?", default=".", type=Path, help="course root (default: .)"
    )
    colab_command.add_argument(
        "--output",
        type=Path,
        default=settings.COLAB_SNAPSHOT,
        help=f"where to save it, relative to the course (default: {settings.COLAB_SNAPSHOT})",
    )
    colab_command.add_argument(
        "--source",
        default=colab.SOURCE,
        metavar="URL_OR_DIR",
        help="where pip-freeze.txt and os-info.txt are read (default: googlecolab/backend-info)",
    )
    return parser


def _add_write(command: argparse.ArgumentParser) -> None:
    # Not a setting: a config file must never make nbguard write into the course.
    command.add_argument(
        "--write",
        action="store_true",
        help="apply the verified fixes to the course's files (cell sources and modules only)",
    )


def _add_settings(command: argparse.ArgumentParser) -> None:
    """Every setting as a flag: derived from settings.SETTINGS, never listed twice."""
    command.set_defaults(command_parser=command)
    command.add_argument("--config", type=Path, help="read settings from this TOML file")
    for flag, options in settings.flag_options():
        command.add_argument(flag, **options)
    command.add_argument("-j", dest="jobs", metavar="N", help="same as --jobs")


def _load_config(args: argparse.Namespace) -> settings.Config:
    overrides, env_overrides = settings.flag_values(lambda attr: getattr(args, attr, None))
    if args.command in {"blame", "fix"}:
        overrides[args.command] = True
        if args.notebook_paths:
            overrides["notebooks"] = [_course_relative(p, args.course) for p in args.notebook_paths]
    return settings.load(args.course, overrides, env_overrides, args.config)


def _course_relative(path: Path, course: Path) -> str:
    """A notebook named on the command line (relative to the cwd) as a course-relative glob."""
    try:
        return path.resolve().relative_to(course.resolve()).as_posix()
    except ValueError:
        raise NbguardError(f"notebook {path} is not inside the course {course.resolve()}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if unknown:
        # Reported by the subcommand's parser, so the hint names `nbguard run --help`.
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # CI logs are wider than rich's 80-column guess for a pipe.
        console = Console(highlight=False, width=120)
    errors = Console(stderr=True, highlight=False)
    terminated = False

    def sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal terminated
        terminated = True
        raise pipeline.Terminated

    previous = signal.signal(signal.SIGTERM, sigterm)
    try:
        if args.command == "report":
            return _rerender(args, console)
        if args.command == "colab-snapshot":
            line = colab.save_snapshot(args.course, args.output, args.source)
            console.print(escape(printable(line)), soft_wrap=True)
            return 0
        if args.command == "merge":
            return _merge(args, console)
        if args.command == "init":
            from nbguard import init

            for line in init.init(args.course, force=args.force):
                console.print(escape(printable(line)))
            return 0
        config = _load_config(args)
        if getattr(args, "write", False) and not config.fix:
            raise NbguardError("--write applies verified fixes: use it with --fix or `nbguard fix`")
        earlier = nightly.load_previous(config.since_report) if config.since_report else None
        with terminal.LiveProgress(console) as progress:
            report = pipeline.run(config, progress)
        data = json_report.to_json(report)
        if config.fix:
            from nbguard import fix  # its own imports are heavy: only when fixing

            # An interrupted audit's fixes still go to the patch, never into the course.
            write = args.write and not report.interrupted
            data["fixes"] = fix.deliver(report.notebooks, config.course, config.patch, write)
        if earlier is not None:
            data["since"] = nightly.since(earlier, data)
        json_report.write(data, config.report)
        formats.write(data, html=config.html, markdown=config.markdown, junit=config.junit)
        terminal.render(data, console, str(config.report))
        if "since" in data:
            terminal.render_since(data["since"], console)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            # Printed to stdout, where the runner turns them into annotations on the notebooks.
            for line in formats.github_annotations(data):
                print(line)
    except NbguardError as exc:
        errors.print(f"[red]nbguard: error:[/] {escape(printable(str(exc)))}", soft_wrap=True)
        return EXIT_USAGE
    except (KeyboardInterrupt, pipeline.Terminated):
        # Interrupted outside the pipeline's own handling (config load, report writing).
        return EXIT_SIGTERM if terminated else EXIT_SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)
    if report.interrupted:
        return EXIT_SIGTERM if terminated else EXIT_SIGINT
    if "since" in data:
        # Nightly: yesterday's known breakage already woke someone; only news fails the job.
        return 1 if data["since"]["new_broken"] else 0
    return pipeline.exit_code(report, config)


def _rerender(args: argparse.Namespace, console: Console) -> int:
    data = json_report.read(args.json_report)
    written = formats.write(data, html=args.html, markdown=args.markdown, junit=args.junit)
    for path in written:
        console.print(f"wrote {escape(printable(str(path)))}")
    if args.annotations:
        for line in formats.github_annotations(data):
            print(line)
    if not written and not args.annotations:
        # No other format asked for: the terminal view, as `nbguard run` drew it.
        terminal.render(data, console, str(args.json_report))
    return 0


def _merge(args: argparse.Namespace, console: Console) -> int:
    data = merge.merge_files(args.shard_reports)
    target = args.report or Path(settings.DEFAULT_REPORT)
    data["settings"] = {**data["settings"], "report": str(target)}
    json_report.write(data, target)
    formats.write(data, html=args.html, markdown=args.markdown, junit=args.junit)
    terminal.render(data, console, str(target))
    if args.annotations:
        for line in formats.github_annotations(data):
            print(line)
    return merge.exit_code(data)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
