"""The fa-mem command line. This module only assembles the subcommands and handles
errors once: one line on stderr, the documented exit code, tracebacks with --debug."""

from __future__ import annotations

import sys
import traceback

import typer

from fa_memtool import __version__
from fa_memtool.cli.gate import baseline_update_command, gate_command
from fa_memtool.cli.optimize import optimize_command
from fa_memtool.cli.plugins import plugins_command
from fa_memtool.cli.profile import profile_command
from fa_memtool.cli.report import report_command
from fa_memtool.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, FaMemError
from fa_memtool.text import visible

app = typer.Typer(
    name="fa-mem",
    help="Memory profiler for populations of Python agents: what one agent really costs, "
    "what is shared, what grows, and where it was allocated.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts name [tool.fa-mem]: plain text, not markup
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("profile")(profile_command)
app.command("report")(report_command)
app.command("optimize")(optimize_command)
app.command("gate")(gate_command)
app.command("plugins")(plugins_command)
baseline_app = typer.Typer(help="Record the baseline the gate compares with.", no_args_is_help=True, rich_markup_mode=None)
baseline_app.command("update")(baseline_update_command)
app.add_typer(baseline_app, name="baseline")


def _version(value: bool) -> None:
    if value:
        print(f"fa-mem {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """fa-mem: truthful per-agent memory profiles."""


def _fail(message: str, code: int, detail: str | None, debug: bool) -> int:
    if debug and detail:
        sys.stderr.write(detail.rstrip() + "\n")
    # One line, whatever the user's exception message holds, and no control character
    # sent to the terminal.
    one_line = " / ".join(visible(part.strip()) for part in message.splitlines() if part.strip())
    sys.stderr.write(f"fa-mem: error: {one_line}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code (also used by the tests)."""
    arguments = sys.argv[1:] if argv is None else argv
    debug = "--debug" in arguments
    command = typer.main.get_command(app)
    try:
        result = command.main(args=arguments, prog_name="fa-mem", standalone_mode=False)
    except FaMemError as error:
        code = _fail(error.message, error.exit_code, error.detail or traceback.format_exc(), debug)
    except typer.Exit as exit_:
        code = exit_.exit_code
    except typer.Abort:
        code = _fail("interrupted", EXIT_INTERRUPTED, None, debug)
    except KeyboardInterrupt:
        code = _fail("interrupted", EXIT_INTERRUPTED, traceback.format_exc(), debug)
    except typer.TyperException as error:  # the parser's usage errors
        exit_code = getattr(error, "exit_code", EXIT_USAGE)
        formatter = getattr(error, "format_message", None)
        message = formatter() if callable(formatter) else str(error)
        if message.strip():
            code = _fail(f"{message} (see fa-mem --help)", exit_code, traceback.format_exc(), debug)
        else:  # no command at all: the help was printed, that is the answer
            code = exit_code
    except Exception as error:  # the last resort: a bug in fa-mem is one line too
        detail = traceback.format_exc()
        try:
            text = str(error)
        except Exception:  # an exception whose message itself fails
            text = ""
        described = f"{type(error).__name__}: {text}" if text else type(error).__name__
        code = _fail(
            f"internal error ({described[:300]}); rerun with --debug for the traceback and please report it",
            EXIT_INTERNAL,
            detail,
            debug,
        )
    else:
        code = result if isinstance(result, int) else 0
    sys.stdout.flush()
    if argv is None:
        sys.exit(code)
    return code
