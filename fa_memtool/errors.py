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
