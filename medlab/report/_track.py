"""Which files a notebook reads: an audit hook installed in the report's kernel.

:func:`install` runs at kernel start (before the first cell) and appends the
path of every file opened *for reading* to ``<run folder>/.inputs`` (one per
line, each once). The report then hashes those files for its provenance
record. Files opened by C/C++ libraries directly (SimpleITK, DuckDB) are not
seen here; the report also hashes every path passed as a parameter.
"""

from __future__ import annotations

import os
import sys

__all__ = ["INPUTS_FILE", "WRITTEN_PREFIX", "install"]

#: file in the run folder that lists the files the kernel opened
INPUTS_FILE = ".inputs"
#: line prefix for files the kernel opened for writing (outputs, not inputs)
WRITTEN_PREFIX = "w\t"

_CODE = (".py", ".pyc", ".pyi", ".so", ".pyd", ".pth")  # imports, not data
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _is_write(mode: object, flags: object) -> bool:
    if isinstance(mode, str):
        return any(ch in mode for ch in "wax+")
    if isinstance(flags, int):
        return bool(flags & _WRITE_FLAGS)
    return False


def install(run_dir: str | None = None) -> None:
    """Record the files this process opens into ``run_dir/.inputs``.

    Parameters
    ----------
    run_dir : str, optional
        The run folder; default ``$MEDLAB_REPORT_DIR``. Does nothing when
        neither is set.
    """
    run_dir = run_dir or os.environ.get("MEDLAB_REPORT_DIR")
    if not run_dir:
        return
    os.makedirs(run_dir, exist_ok=True)
    fd = os.open(os.path.join(run_dir, INPUTS_FILE),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    seen: set[tuple[str, bool]] = set()
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # medlab's own files
    skip = tuple(os.path.join(p, "") for p in {
        sys.prefix, sys.base_prefix, sys.exec_prefix, "/proc", "/sys", "/dev", "/etc", "/usr",
        os.path.abspath(run_dir), package} if p)
    busy = False

    def hook(event: str, args: tuple) -> None:
        nonlocal busy
        if event != "open" or busy:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or not path:
            return
        busy = True
        try:
            write = _is_write(args[1] if len(args) > 1 else None,
                              args[2] if len(args) > 2 else None)
            full = os.path.abspath(path)
            if (full, write) in seen or full.startswith(skip) or full.endswith(_CODE):
                return
            seen.add((full, write))
            if write or os.path.isfile(full):
                os.write(fd, ((WRITTEN_PREFIX if write else "") + full + "\n").encode(
                    "utf-8", "surrogateescape"))
        except Exception:  # never break the notebook over bookkeeping
            pass
        finally:
            busy = False

    sys.addaudithook(hook)
