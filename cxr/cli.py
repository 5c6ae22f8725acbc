"""`cxr`: one entry point, with commands that import only what they need.

Errors a user can act on are printed as one line (`error: ...`) with exit status 2; `--debug` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Command modules; each exposes `register(subparsers)` which adds its commands and sets `func`.
COMMAND_MODULES = ("cxr.ml_commands", "cxr.model_commands", "cxr.data_commands", "cxr.registry_commands",
                   "cxr.service_commands", "cxr.quantize_commands")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxr", description="Chest X-ray classification: train, evaluate, serve.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command group not installed in this image
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.debug:
        return int(args.func(args) or 0)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's promise: one line, not a traceback
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    from ml.errors import CXRError

    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (CXRError, FileNotFoundError, PermissionError)):
        return message
    return f"{type(exc).__name__}: {message}"
