"""genlab's exceptions: a leaf that every module imports them from (genlab re-exports them)."""

_WORKER_PREFIX = "Caught GenlabError in DataLoader worker"


class GenlabError(Exception):
    """A user-facing error: the CLI prints its message as one line, without a traceback, and
    exits with `exit_code` (2: a usage error, fixed by changing the command line)."""

    exit_code = 2

    def __init__(self, message: str = ""):
        # torch re-raises an error of a loader worker as the same type, its message wrapped in
        # the worker's traceback; keep the original one line (its last line names the error)
        if message.startswith(_WORKER_PREFIX) or message.startswith(f"Caught {type(self).__name__} in DataLoader worker"):
            message = message.rstrip().rsplit(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


class RunError(GenlabError):
    """A run that started well and cannot go on (non-finite loss, full disk): exit code 1."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, raised by genlab's own SIGINT handlers."""


class StartUpInterrupts:
    """The SIGINT handler from the start of a verb until the trainer installs its own: raises
    Interrupted, and remembers that it did, because a library on the way can swallow the
    exception or turn it into an error of its own (both seen while torch and Hydra start up),
    and the CLI must still end with its one line and exit code 130."""

    tripped = False

    def __call__(self, signum, frame):
        self.tripped = True
        raise Interrupted
