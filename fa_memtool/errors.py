"""One exception hierarchy for fa-mem, each class carrying the process exit code.

The library raises these; the CLI catches them once, prints one line on stderr and
exits with ``exit_code``. Tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_LIMIT_EXCEEDED = 1  # a budget, target or baseline regression (gate, optimize)
EXIT_USAGE = 2  # bad flags, bad path, a module that does not follow the protocol
EXIT_BEHAVIOUR_CHANGED = 3  # replay found different actions (optimize)
EXIT_WORKLOAD_FAILED = 4  # the user's agents raised while stepping (partial report kept)
EXIT_RESOURCE_LIMIT = 5  # the child exceeded --max-memory or --timeout
EXIT_INTERNAL = 70  # a failure of fa-mem itself (sysexits' EX_SOFTWARE): a bug to report
EXIT_OUTPUT = 74  # an output file could not be written (sysexits' EX_IOERR): full disk, I/O error
EXIT_HANGUP = 129  # SIGHUP (the terminal or a CI runner went away): 128 + 1
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM (a CI cancel, `timeout`): 128 + 15


class FaMemError(Exception):
    """Base class: a failure fa-mem explains in one line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # A longer explanation (for example the child's traceback), shown with --debug.
        self.detail = detail


class UsageError(FaMemError):
    """A flag or argument that cannot be used as given."""


class WorkloadError(FaMemError):
    """The user's module cannot be loaded or does not follow the protocol."""


class StepFailed(FaMemError):
    """An agent raised while stepping; what was measured so far is kept."""

    exit_code = EXIT_WORKLOAD_FAILED


class StepError(StepFailed):
    """One step raised: an agent's step method, ``observe``, or the model's step method.

    ``agent`` is the position of the agent in the population as read for that step, or
    None when the model itself raised.
    """

    def __init__(self, message: str, *, step: int, agent: int | None = None, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.step = step
        self.agent = agent


class PopulationEmpty(StepError):
    """The model's agent set became empty while stepping: nothing is left to measure."""


class ResourceLimitExceeded(FaMemError):
    """The measuring child ran past its memory limit or its timeout and was stopped."""

    exit_code = EXIT_RESOURCE_LIMIT


class ReportError(FaMemError):
    """A saved report that cannot be read (missing, corrupt, other schema)."""


class Interrupted(FaMemError):
    """The user pressed Ctrl-C, or fa-mem got SIGTERM / SIGHUP (``exit_code`` says which)."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, *, exit_code: int = EXIT_INTERRUPTED, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.exit_code = exit_code


class OutputError(FaMemError):
    """An output file could not be written (no space, an I/O error, a read-only disk);
    the file that was there is kept and no temporary file is left."""

    exit_code = EXIT_OUTPUT


class InternalError(FaMemError):
    """A failure of fa-mem itself, or of the measuring process without a result."""

    exit_code = EXIT_INTERNAL


# -- errors across processes ---------------------------------------------------------------------
#
# The measuring process reports an error as a typed record; the CLI turns it back into
# the same class of the hierarchy (or, for a class it cannot rebuild, the most general
# class with the same exit code), so exit codes come from the classes alone.

_BY_EXIT_CODE: dict[int, type[FaMemError]] = {
    EXIT_USAGE: UsageError,
    EXIT_WORKLOAD_FAILED: StepFailed,
    EXIT_RESOURCE_LIMIT: ResourceLimitExceeded,
    EXIT_OUTPUT: OutputError,
    EXIT_INTERNAL: InternalError,
}


def error_record(error: FaMemError) -> dict[str, object]:
    """What the measuring process writes for an error it stopped on."""
    return {"class": type(error).__name__, "message": error.message, "detail": error.detail, "exit_code": error.exit_code}


def _hierarchy() -> dict[str, type[FaMemError]]:
    found: dict[str, type[FaMemError]] = {}
    pending: list[type[FaMemError]] = [FaMemError]
    while pending:
        kind = pending.pop()
        found[kind.__name__] = kind
        pending.extend(kind.__subclasses__())
    return found


def error_from_record(record: dict[str, object], *, detail: str | None = None) -> FaMemError:
    """The error a record describes: its own class when it is rebuilt from a message
    alone, else the class for its exit code (an unknown code is an internal error)."""
    message = str(record.get("message") or "the measuring process failed")
    details = record.get("detail") or detail
    shown = str(details) if details is not None else None
    kind = _hierarchy().get(str(record.get("class")))
    code = record.get("exit_code")
    if kind is not None and kind.__init__ is FaMemError.__init__:
        return kind(message, detail=shown)
    fallback = _BY_EXIT_CODE.get(code if isinstance(code, int) else EXIT_INTERNAL, InternalError)
    return fallback(message, detail=shown)
