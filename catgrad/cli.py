"""The ``catgrad`` command line: ``catgrad check|show|train|predict|evaluate|compile|draw ...``.

Each subcommand lives with the layer it belongs to and registers itself through
a ``register(subparsers)`` function in one of ``COMMAND_MODULES``. User errors
(:class:`~catgrad.errors.CatgradError`) print a message and exit 1, never a traceback; so do
internal errors, unless ``CATGRAD_DEBUG=1`` asks for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from .errors import CatgradError

COMMAND_MODULES = [
    "catgrad.frontend.commands",  # check, show
    "catgrad.train.commands",  # train, compile
    "catgrad.train.predict",  # predict, evaluate
    "catgrad.draw",  # draw
    "catgrad.export",  # export
]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # bad arguments: usage + message, exit 2 (argparse's convention)
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="catgrad", description="A compositional learning language.")
    parser.add_argument("--version", action="version", version=f"catgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        mod.register(sub)
        if hasattr(mod, "register_compile"):
            mod.register_compile(sub)
    return parser


def _on_sigterm(signum, frame):
    from .train.loop import Interrupted

    raise Interrupted()


def main(argv=None) -> int:
    """Run one command. SIGINT and SIGTERM stop it the same way: a one-line message saying
    whether a checkpoint was kept, and exit status 130 or 143 (128 + the signal number)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .train.loop import Interrupted

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.run(args) or 0)
    except CatgradError as e:
        print(f"catgrad: error: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted) as e:
        term = isinstance(e, Interrupted)
        print(f"catgrad: {'terminated' if term else 'interrupted'}{getattr(e, 'kept', '')}", file=sys.stderr)
        return 143 if term else 130
    except RecursionError:  # defence in depth: input nested beyond what a check caught
        if os.environ.get("CATGRAD_DEBUG"):
            raise
        print("catgrad: error: the input is nested too deeply to process", file=sys.stderr)
        return 1
    except Exception as e:  # a bug in catgrad, not in the user's input: still no traceback by default
        if os.environ.get("CATGRAD_DEBUG"):
            raise
        print(f"catgrad: internal error: {type(e).__name__}: {e} (this is a bug in catgrad; "
              "set CATGRAD_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())
