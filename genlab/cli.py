"""`genlab <verb> [hydra overrides]`: pops the verb and hands the rest to Hydra with
config_name = verb, so -m sweeps, --cfg, --help and launcher plugins work as in any Hydra app."""

from __future__ import annotations

import errno
import importlib
import logging
import os
import signal
import sys

VERBS = {
    "train": ("genlab.train", "train a model: genlab train model=vae data=digits trainer.max_steps=2000"),
    "eval": ("genlab.evaluate", "evaluate a checkpoint: genlab eval ckpt=outputs/<run>"),
    "sample": ("genlab.sample", "grids and animations from a checkpoint: genlab sample ckpt=outputs/<run>"),
    "export": ("genlab.export", "ONNX, TorchScript or safetensors files of a checkpoint's networks: genlab export ckpt=outputs/<run> format=onnx"),
    "classifier": ("genlab.classifier", "train or show a data set's domain classifier: genlab classifier data=fashion_mnist"),
    "report": ("genlab.report", "compare runs: genlab report multirun/<date>/<time> outputs/<run> 'outputs/*/*'"),
}

USAGE = "usage: genlab <verb> [key=value ...] [-m] [--help] [--cfg job]\n\nverbs:\n" + "\n".join(
    f"  {verb:<{max(map(len, VERBS)) + 2}}{text}" for verb, (_, text) in VERBS.items()
) + "\n\n`genlab <verb> --help` lists the verb's config groups and options."


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if argv else 2)
    if argv[0] == "--version":
        from genlab.version import __version__

        print(f"genlab {__version__}")
        sys.exit(0)
    verb = argv[0]
    if verb not in VERBS:
        print(f"genlab: error: unknown verb {verb!r}; choose one of {', '.join(VERBS)}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    from genlab.errors import StartUpInterrupts

    interrupts = StartUpInterrupts()
    signal.signal(signal.SIGINT, interrupts)
    try:
        _run_verb(verb, argv[1:])
    except KeyboardInterrupt:  # Ctrl-C while starting up or in a verb without its own handler
        _interrupted()
    finally:  # the verb's work is done or saved: a Ctrl-C while the interpreter shuts down would only kill it by signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if interrupts.tripped:  # a Ctrl-C that a library swallowed or made into its own error: the user asked to stop
            _interrupted()


def _interrupted() -> None:
    """One line and exit 130, now. Not through SystemExit: after a Ctrl-C during the imports,
    caught or not, CPython's "unhandled KeyboardInterrupt" flag can be left set, and the
    interpreter then ends by SIGINT (exit -2) instead: 17 of 201 Ctrl-Cs at random start-up
    moments here (and 3 more hung or ended in a traceback), 0 of 126 since."""
    print("genlab: interrupted", file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _run_verb(verb: str, args: list[str]) -> None:
    module = importlib.import_module(VERBS[verb][0])
    if hasattr(module, "main"):  # a verb without a Hydra config parses its own arguments
        sys.exit(module.main(args))
    import hydra
    from hydra._internal.utils import get_args_parser

    import genlab.config  # noqa: F401  (registers the resolvers the configs use)
    from genlab import sweep
    from genlab.errors import GenlabError
    from genlab.validation import check_command_line

    flags = get_args_parser().parse_args(args)
    if not (flags.help or flags.hydra_help or flags.info or flags.shell_completion):
        try:  # before Hydra creates a run directory
            sweep.check_plugins(flags.overrides)
            check_command_line(verb, flags.overrides, multirun=flags.multirun)
        except GenlabError as e:
            _fail(e)
    run = sweep.as_trial(module.run) if verb == "train" else module.run
    sys.argv = [f"genlab {verb}", *args]
    hydra.main(version_base=None, config_path="pkg://genlab.configs", config_name=verb)(_task(run))()


def _fail(e: Exception) -> None:
    print(f"genlab: error: {e}", file=sys.stderr)
    sys.exit(getattr(e, "exit_code", 1))


def _task(run):
    def task(cfg):
        from omegaconf import OmegaConf

        from genlab.errors import GenlabError

        try:
            from hydra.core.hydra_config import HydraConfig

            from genlab.validation import check_resolves

            check_resolves(cfg, dict(HydraConfig.get().runtime.choices))
            missing = sorted(OmegaConf.missing_keys(cfg))
            if missing:
                raise GenlabError(f"{missing[0]} has no value; set it on the command line: {missing[0]}=...")
            result = run(cfg)
        except GenlabError as e:
            _fail(e)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            _fail(OSError(f"no space left on device writing {e.filename or 'a file'}: {e.strerror}"))
        if isinstance(result, dict) and result.get("interrupted"):
            sys.exit(128 + signal.Signals[result["interrupted"]].value)
        return result

    return task

if __name__ == "__main__":
    main()
