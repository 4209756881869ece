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
EXIT_INTERRUPTED = 130  # Ctrl-C


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
    """The user pressed Ctrl-C."""

    exit_code = EXIT_INTERRUPTED
