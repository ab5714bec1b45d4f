"""Which files a notebook reads, and identifiers replaced where they are shown.

Installed in a report's kernel before the first cell.

:func:`install` runs at kernel start (before the first cell) and appends the
path of every file opened *for reading* to ``<run folder>/.inputs`` (one per
line, each once). The report then hashes those files for its provenance
record. Files opened by C/C++ libraries directly (SimpleITK, DuckDB) are not
seen here; the report also hashes every path passed as a parameter.

Unless the run shows identifiers, :func:`install` also makes the kernel
pseudonymise at the source (:mod:`medlab.privacy`, whose session learns the
identifiers in the headers of the DICOM files read so far): every pandas
table it displays, and every piece of text matplotlib draws (titles, axis and
tick labels, legends, widget snapshots) -- pixels cannot be searched later.
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
        os.path.abspath(run_dir), package,
        os.path.dirname(os.environ.get("MEDLAB_PRIVACY_CONTEXT", ""))} if p)
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
    _pseudonymise_displays(os.path.join(run_dir, INPUTS_FILE))


def _pseudonymise_displays(listing: str) -> None:
    """Replace identifiers in displayed tables and drawn text (see the module docstring)."""
    from .. import privacy

    offset = 0
    pending: list[str] = []

    def new_files() -> list[str]:  # files read since the last call
        nonlocal offset
        try:
            with open(listing, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return []
        if not data:
            return []
        complete = data[:data.rfind(b"\n") + 1]
        offset += len(complete)
        lines = complete.decode("utf-8", "surrogateescape").splitlines()
        pending[:] = [ln for ln in lines if ln and not ln.startswith(WRITTEN_PREFIX)]
        return list(pending)

    privacy.add_source(new_files)
    if privacy.show_phi():
        return
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - a report kernel is an IPython kernel
        get_ipython = None  # type: ignore[assignment]
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None and hasattr(shell, "display_formatter"):
        def html(obj: object) -> str | None:
            shown = privacy.session().table(obj)
            return shown._repr_html_() if hasattr(shown, "_repr_html_") else None

        def plain(obj: object, p: object, cycle: bool) -> None:
            p.text(repr(privacy.session().table(obj)))  # type: ignore[attr-defined]

        # after each cell: learn from what it read (indexes, DICOM headers) and hand it over
        shell.events.register("post_run_cell", lambda *_: privacy.session())
        import pandas as pd  # its classes' __module__ differs between versions: by type

        formatters = shell.display_formatter.formatters
        for kind in (pd.DataFrame, pd.Series):
            formatters["text/plain"].for_type(kind, plain)
        formatters["text/html"].for_type(pd.DataFrame, html)
    try:
        import matplotlib.text as mtext
    except ImportError:  # pragma: no cover - matplotlib is a core dependency
        return
    draw = mtext.Text.draw

    def pseudonymised_draw(self: mtext.Text, renderer: object) -> object:
        text = self.get_text()
        if text:
            shown = privacy.display_text(text, refresh=False)
            if shown != text:
                self.set_text(shown)
        return draw(self, renderer)

    mtext.Text.draw = pseudonymised_draw  # type: ignore[method-assign]
