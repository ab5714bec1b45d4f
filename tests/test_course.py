"""The course pack, and medlab out of the box.

On a fresh clone (the files git would check out), with ``MEDLAB_DATA`` unset, an
empty download cache and no network, notebooks 00, 02, 04 and 05 and every lab
of the course pack execute on the bundled samples; graded with nbgrader, every
lab's solution scores 100 % and its blank exercise 0 % (so the checks can fail).
All of it runs once, in one network-less sandbox (``unshare -n`` with only the
loopback interface up, which the kernels need; where no network namespace can
be made, a ``sitecustomize`` that refuses every non-loopback socket).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

COURSE = REPO / "course"
LABS = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())
OUT_OF_THE_BOX = ["00_getting_started", "02_viewing", "04_segmentation_quantification",
                  "05_time_series"]
TOPICS = ["dicom", "viewing", "segmentation", "registration", "dce", "report"]

_GUARD = textwrap.dedent('''
    """Installed by tests/test_course.py: refuse every socket that is not loopback."""
    import socket

    _LOCAL = ("127.", "::1", "localhost", "0.0.0.0")
    _connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def _local(host):
        return isinstance(host, str) and host.startswith(_LOCAL)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            raise OSError(101, "Network is unreachable (blocked by the offline test)")
        return _connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _local(host):
            raise socket.gaierror(-3, "Temporary failure in name resolution (offline test)")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
''')

_PROBE = textwrap.dedent('''
    import json, socket, sys, urllib.request
    out = {}
    s = socket.socket(); s.settimeout(5)
    try:
        s.connect(("151.101.0.223", 443))  # pypi.org
        out["public_ip"] = "connected"
    except OSError as exc:
        out["public_ip"] = f"blocked: {exc}"
    try:
        urllib.request.urlopen("https://raw.githubusercontent.com", timeout=5)
        out["https"] = "connected"
    except Exception as exc:
        out["https"] = f"blocked: {exc}"
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname(), timeout=5)
    conn, _ = server.accept(); client.sendall(b"ok")
    out["loopback"] = conn.recv(2).decode()
    json.dump(out, open(sys.argv[1], "w"))
''')


def _fresh_clone(dest: Path) -> Path:
    """The files a clone would have: tracked ones and new ones git does not ignore."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True,
        ).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an sdist)
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", "test-artifacts", "build", "dist"}
        listed = [p.relative_to(REPO).as_posix() for p in REPO.rglob("*")
                  if not skip & set(p.relative_to(REPO).parts)]
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_symlink() or not src.is_file():  # e.g. a .venv link; deleted files
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest


def _sandbox(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    """Command prefix and environment that run a command without network."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEDLAB_") and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy", "pythonpath")}
    for unshare in (["unshare", "-n"], ["unshare", "-rn"]):
        if shutil.which("unshare") and shutil.which("ip") and subprocess.run(
                [*unshare, "ip", "link", "set", "lo", "up"], capture_output=True).returncode == 0:
            return [*unshare, "sh", "-c", 'ip link set lo up && exec "$@"', "offline"], env, \
                "network namespace"
    guard = tmp / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(_GUARD)
    env["PYTHONPATH"] = str(guard)
    return [], env, "socket guard"


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the curated notebooks and grade the course in a network-less fresh clone."""
    tmp = tmp_path_factory.mktemp("offline")
    clone = _fresh_clone(tmp / "clone")
    cache = tmp / "empty-cache"
    cache.mkdir()
    prefix, env, how = _sandbox(tmp)
    env["MEDLAB_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(clone), env.get("PYTHONPATH")]))
    (tmp / "probe.py").write_text(_PROBE)
    script = (
        f"{sys.executable} {tmp / 'probe.py'} {tmp / 'probe.json'} && "
        f"{sys.executable} -m medlab report execute --timeout 600 "
        + " ".join(f"notebooks/{n}.ipynb" for n in OUT_OF_THE_BOX)
        + f" > {tmp / 'notebooks.log'} 2>&1; echo $? > {tmp / 'notebooks.rc'}; "
        f"{sys.executable} course/check_labs.py --jobs 2 --work {tmp / 'grading'} "
        f"--json {tmp / 'scores.json'} > {tmp / 'course.log'} 2>&1; echo $? > {tmp / 'course.rc'}"
    )
    proc = subprocess.run([*prefix, "bash", "-c", script], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=2400, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    read = lambda name: (tmp / name).read_text() if (tmp / name).exists() else ""  # noqa: E731
    return {
        "how": how,
        "probe": json.loads(read("probe.json")),
        "notebooks_rc": int(read("notebooks.rc") or -1),
        "notebooks_log": read("notebooks.log"),
        "course_rc": int(read("course.rc") or -1),
        "course_log": read("course.log"),
        "scores": json.loads(read("scores.json") or "{}"),
        "cache": sorted(p.name for p in cache.iterdir()),
    }


@pytest.mark.slow
def test_the_sandbox_really_has_no_network(offline: dict[str, Any]) -> None:
    probe = offline["probe"]
    assert probe["public_ip"].startswith("blocked"), probe
    assert probe["https"].startswith("blocked"), probe
    assert probe["loopback"] == "ok", "kernels talk over loopback: it must still work"


@pytest.mark.slow
def test_curated_notebooks_run_offline_on_a_fresh_clone(offline: dict[str, Any]) -> None:
    log = offline["notebooks_log"]
    assert offline["notebooks_rc"] == 0, log
    for name in OUT_OF_THE_BOX:
        assert f"ok   {name}.ipynb" in log, log
    # nothing was downloaded: the cache holds at most the hash memo
    assert set(offline["cache"]) <= {"verified-hashes.json"}, offline["cache"]


@pytest.mark.slow
def test_every_lab_runs_offline_and_grades_full_for_solutions_zero_for_blanks(
    offline: dict[str, Any],
) -> None:
    scores = offline["scores"]
    assert sorted(scores) == LABS, offline["course_log"][-3000:]
    for lab, r in scores.items():
        assert r["max_score"] >= 5, lab
        assert r["solution_score"] == r["max_score"], (lab, r, offline["course_log"][-3000:])
        assert r["blank_score"] == 0, (lab, r)
        assert not r["problems"], (lab, r["problems"])
    assert offline["course_rc"] == 0, offline["course_log"][-3000:]


# ---------------------------------------------------------------------------
# the pack's structure (fast)


def _cells(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def test_six_labs_cover_the_topics_with_guides() -> None:
    assert len(LABS) >= 6
    for topic in TOPICS:
        assert any(topic in lab for lab in LABS), topic
    for guide in ("README.md", "STUDENT_GUIDE.md", "INSTRUCTOR_GUIDE.md"):
        text = (COURSE / guide).read_text(encoding="utf-8")
        assert len(text) > 1000, guide
    instructor = (COURSE / "INSTRUCTOR_GUIDE.md").read_text(encoding="utf-8")
    for lab in LABS:
        assert lab in instructor, f"{lab} missing from the instructor guide's timing table"
    for needle in ("JupyterHub", "nbgrader autograde", "check_labs.py"):
        assert needle in instructor


@pytest.mark.parametrize("lab", LABS)
def test_solutions_are_kept_apart_from_exercises(lab: str) -> None:
    source = COURSE / "source" / lab / f"{lab}.ipynb"
    release = COURSE / "release" / lab / f"{lab}.ipynb"
    src_cells, rel_cells = _cells(source), _cells(release)
    solutions = [c for c in src_cells if c["metadata"].get("nbgrader", {}).get("solution")]
    checks = [c for c in src_cells if c["metadata"].get("nbgrader", {}).get("grade")]
    assert len(solutions) >= 3 and len(checks) == len(solutions)
    assert all("### BEGIN SOLUTION" in "".join(c["source"]) for c in solutions)
    assert all(c["metadata"]["nbgrader"]["points"] > 0 for c in checks)
    released = "".join("".join(c["source"]) for c in rel_cells)
    assert "BEGIN SOLUTION" not in released and "END SOLUTION" not in released
    stubs = [c for c in rel_cells if c["cell_type"] == "code"
             and "raise NotImplementedError()" in "".join(c["source"])]
    assert len(stubs) == len(solutions)
    # every check cell is in the student's notebook unchanged and locked
    rel_by_id = {c["metadata"].get("nbgrader", {}).get("grade_id"): c for c in rel_cells}
    for c in checks:
        twin = rel_by_id[c["metadata"]["nbgrader"]["grade_id"]]
        assert twin["source"] == c["source"] and twin["metadata"]["nbgrader"]["locked"]
    # committed without outputs, data read from the bundled samples only
    assert all(not c.get("outputs") for c in src_cells + rel_cells if c["cell_type"] == "code")
    names = set(re.findall(r'ml\.data\.(?:path|fetch)\("([^"]+)"', released))
    assert names and all(n.endswith("-sample") for n in names), names
