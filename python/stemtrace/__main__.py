"""``python -m stemtrace check``: is this machine's producer configuration able to reach stemtrace?"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .check import main as check_main
from .config import load_config


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stemtrace", description="stemtrace's Celery producer.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check", help="send a test event to STEMTRACE_URL and say where to see it (exit status 0 when it was accepted)",
        description="Sends one test task (stemtrace.check) with the producer's settings (STEMTRACE_URL, "
                    "STEMTRACE_TOKEN), prints its trace's address in the UI, or explains why it failed.")
    check.add_argument("--url", help="the server's base address (default: STEMTRACE_URL, else http://127.0.0.1:8787)")
    check.add_argument("--token", help="the ingest token (default: STEMTRACE_TOKEN)")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
    args = parser.parse_args(argv)
    if args.command != "check":
        parser.print_help(sys.stderr)
        return 2
    config = load_config(**{k: v for k, v in (("url", args.url), ("token", args.token)) if v})
    return check_main(config, args.timeout, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
