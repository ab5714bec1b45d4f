"""The ``medlab`` command (console script; also ``python -m medlab``).

    medlab report run|batch|verify|execute ...   reports (see ``medlab report --help``)
    medlab data list|fetch|path ...               sample datasets (see ``medlab data --help``)
    medlab --version
"""

from __future__ import annotations

import sys

COMMANDS = {
    "report": "reproducible notebook reports: run, batch, verify, execute",
    "data": "sample datasets: list, fetch NAME... | --all, path NAME",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medlab`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        from ._version import __version__

        print(f"medlab {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        usage = "\n".join(f"  {name:8s}{text}" for name, text in COMMANDS.items())
        stream = sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr
        unknown = f"unknown command {argv[0]!r}\n" if argv and argv[0] not in ("-h", "--help") \
            else ""
        print(f"{unknown}usage: medlab COMMAND ...\n\ncommands:\n{usage}\n  --version", file=stream)
        return 0 if stream is sys.stdout else 2
    if argv[0] == "data":
        from .data.__main__ import main as data_main

        return data_main(argv[1:])
    from .report.__main__ import main as report_main

    return report_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
