"""Tests of medlab.data: the registry, local copies, downloads and wheels.

Downloads are tested against a real HTTP server on 127.0.0.1 serving a
temporary folder that mimics an upstream; wheels are built locally and the
pip step is replaced by a small fake downloader.  Nothing here touches the
network beyond the loopback interface.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import medlab.data as mldata
from medlab.data import _fetch
from medlab.data._fetch import Registry
from medlab.data._make_registry import build_registry, dumps_registry
from medlab.errors import DatasetError, MissingDependencyError


def _shared_data() -> Path:
    """The shared sample data: a MEDLAB_DATA root holding it, else <repo>/../shared/data."""
    for part in os.environ.get("MEDLAB_DATA", "").split(os.pathsep):
        if part and (Path(part) / "ibsi1-phantom").is_dir():
            return Path(part)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


SHARED = _shared_data()
needs_shared = pytest.mark.skipif(
    not (SHARED / "README.md").is_file(), reason=f"shared data not found at {SHARED}"
)
REGISTRY_FILE = Path(_fetch.__file__).with_name("_registry.json")
BUNDLED = Path(__file__).resolve().parents[1] / "data"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root with its size and mtime_ns."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[p.relative_to(root).as_posix()] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def _leftovers(root: Path) -> list[str]:
    """Temporary download files or folders left under root (medlab's and pooch's)."""
    return [p.name for p in root.rglob("*")
            if p.name.startswith((".medlab-", "tmp")) and p.name != _fetch._MEMO_NAME]


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """pooch's waits between attempts, recorded instead of slept (1 s, 2 s, ...)."""
    import pooch.core

    slept: list[float] = []
    monkeypatch.setattr(pooch.core, "time", SimpleNamespace(sleep=slept.append))
    return slept


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache, no MEDLAB_DATA, no proxies, a fresh in-memory hash memo."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MEDLAB_CACHE", str(cache))
    for var in ("MEDLAB_DATA", "MEDLAB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_fetch, "_MEMO", _fetch._HashMemo())
    return cache


# ---------------------------------------------------------------------------
# the registry shipped with medlab


@needs_shared
def test_every_folder_is_registered_and_vice_versa() -> None:
    reg = _fetch.get_registry()
    folders = {p.name for p in SHARED.iterdir() if p.is_dir()}
    samples = {p.name for p in BUNDLED.iterdir() if p.is_dir() and p.name[0] not in "._"}
    assert folders | samples == set(reg) and not folders & samples
    assert len(folders) == 26
    for name in reg:
        root = BUNDLED if name in samples else SHARED
        assert reg[name].bundled == (name in samples)
        on_disk = {
            p.relative_to(root / name).as_posix()
            for p in (root / name).rglob("*")
            if p.is_file()
        }
        assert on_disk == set(reg[name].files), name


@needs_shared
def test_registry_sizes_and_hashes_match_shared_data() -> None:
    reg = _fetch.get_registry()
    n = 0
    for name in reg:
        for entry in reg[name].files.values():
            p = (BUNDLED if reg[name].bundled else SHARED) / name / entry.path
            assert p.stat().st_size == entry.size, p
            assert _sha_file(p) == entry.sha256, p
            n += 1
    assert n > 1600
    raw = json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
    readme, _size, sha, kind = raw["readme"]
    assert (readme, kind) == ("README.md", "note")
    assert _sha_file(SHARED / "README.md") == sha


@needs_shared
def test_generator_reproduces_the_registry() -> None:
    text = dumps_registry(build_registry(SHARED))
    assert text == REGISTRY_FILE.read_text(encoding="utf-8")


def test_registry_is_compact_and_every_recipe_is_complete() -> None:
    assert REGISTRY_FILE.stat().st_size < 512 * 1024
    reg = _fetch.get_registry()
    kinds: dict[str, int] = {}
    for ds in reg.values():
        assert ds.description and ds.licence and ds.origin, ds.name
        for entry in ds.files.values():
            r = entry.recipe
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
            assert len(entry.sha256) == 64 and entry.size >= 0
            if entry.kind == "local-note":
                assert entry.path == "SOURCE.txt"
            elif entry.kind == "url":
                url = urllib.parse.urlsplit(r["url"])
                assert url.scheme == "https" and url.netloc == "raw.githubusercontent.com"
                owner, repo, commit = url.path.split("/")[1:4]
                assert f"{owner}/{repo}" == r["repo"] and commit == r["commit"]
                assert len(commit) == 40 and int(commit, 16) >= 0
                assert r.get("decompress") in (None, "zst")
            elif entry.kind == "wheel":
                assert r["package"] and r["version"][0].isdigit() and r["member"]
            elif entry.kind == "bundled":
                assert ds.bundled and r["path"] == entry.path
            else:
                assert entry.kind == "manual" and r["note"], entry
            local_name = entry.path.rsplit("/", 1)[-1]
            if "rename" in r:
                assert r["rename"]["to"] == local_name != r["rename"]["from"]
            elif entry.kind in ("url", "wheel"):
                upstream = r["path"].rsplit("/", 1)[-1]
                assert upstream.removesuffix(".zst") == local_name, entry
    n_bundled = sum(ds.bundled for ds in reg.values())
    assert n_bundled >= 6 and kinds["bundled"] > 100
    assert kinds["local-note"] == len(reg) - n_bundled
    assert kinds["url"] > 1000 and kinds["wheel"] > 100


def test_datasets_table() -> None:
    df = mldata.datasets()
    assert list(df.columns) == [
        "name", "description", "licence", "origin", "n_files", "size_mb", "bundled"]
    assert len(df) == 26 + df["bundled"].sum() and df["name"].is_unique
    assert df["bundled"].sum() >= 6 and df.loc[df["bundled"], "size_mb"].sum() < 10
    row = df.set_index("name").loc["ibsi1-phantom"]
    assert row["n_files"] == 3
    assert "CC BY 4.0" in row["licence"]
    assert "theibsi/data_sets" in row["origin"]
    assert 90 < df["size_mb"].sum() < 130


def test_files_lists_data_files_only() -> None:
    assert mldata.files("ibsi1-phantom") == [
        "nifti/image/phantom.nii.gz",
        "nifti/mask/mask.nii.gz",
        "reference_values.csv",
    ]
    assert len(mldata.files("sts-cohort")) == 676


def test_unknown_dataset_lists_known_names_closest_first() -> None:
    with pytest.raises(DatasetError) as info:
        mldata.fetch("ibsi-phantom")
    msg = str(info.value)
    assert "'ibsi-phantom'" in msg
    listed = msg.split("closest first): ", 1)[1]
    assert listed.startswith("ibsi1-phantom")
    assert all(name in listed for name in ("sts-cohort", "wg04-codecs", "mni152"))
    with pytest.raises(DatasetError):
        mldata.files("nope")
    assert _fetch.get_registry().get("nope") is None


# ---------------------------------------------------------------------------
# local copies through MEDLAB_DATA


@needs_shared
def test_fetch_uses_medlab_data_and_memoises_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    empty = tmp_path / "empty-root"
    empty.mkdir()
    monkeypatch.setenv("MEDLAB_DATA", os.pathsep.join([str(empty), str(SHARED)]))
    before = _snapshot(SHARED / "sts-cohort")

    folder = mldata.fetch("sts-cohort", progress=False)
    assert folder == SHARED / "sts-cohort"
    assert (_isolated / _fetch._MEMO_NAME).is_file()  # memo lives in the cache only

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"re-hashed {path}")

    monkeypatch.setattr(_fetch, "_sha256_file", no_hashing)
    assert mldata.fetch("sts-cohort") == folder  # in-memory memo
    monkeypatch.setattr(_fetch, "_MEMO", _fetch._HashMemo())
    assert mldata.fetch("sts-cohort") == folder  # memo file on disk
    p = mldata.path("sts-cohort", "dicom/STS_002/CT/mask/RS.dcm")
    assert p == folder / "dicom/STS_002/CT/mask/RS.dcm" and p.is_file()
    assert mldata.path("sts-cohort", "dicom/STS_002/CT/image").is_dir()
    assert mldata.path("sts-cohort", "SOURCE.txt").is_file()
    assert _snapshot(SHARED / "sts-cohort") == before
    assert not list(empty.iterdir())


def test_missing_medlab_data_root_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLAB_DATA", str(tmp_path / "does-not-exist"))
    monkeypatch.setenv("MEDLAB_OFFLINE", "1")
    with pytest.warns(UserWarning, match="does-not-exist"), pytest.raises(DatasetError):
        mldata.fetch("ibsi1-phantom", progress=False)


@needs_shared
def test_tampered_medlab_data_copy_is_reported_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    shutil.copytree(SHARED / "ibsi1-phantom", root / "ibsi1-phantom")
    target = root / "ibsi1-phantom" / "nifti" / "image" / "phantom.nii.gz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    expected = _fetch.get_registry()["ibsi1-phantom"].files["nifti/image/phantom.nii.gz"].sha256
    actual = _sha(bytes(data))
    monkeypatch.setenv("MEDLAB_DATA", str(root))
    before = _snapshot(root)

    with pytest.raises(DatasetError) as info:
        mldata.fetch("ibsi1-phantom", progress=False)
    msg = str(info.value)
    assert "nifti/image/phantom.nii.gz" in msg and expected in msg and actual in msg
    assert "MEDLAB_DATA" in msg
    assert _snapshot(root) == before  # nothing written, nothing added

    # without hashing, a same-size change goes unnoticed, but a missing file does not
    assert mldata.fetch("ibsi1-phantom", verify=False) == root / "ibsi1-phantom"
    (root / "ibsi1-phantom" / "reference_values.csv").unlink()
    for verify in (True, False):
        with pytest.raises(DatasetError, match=r"missing: reference_values\.csv"):
            mldata.fetch("ibsi1-phantom", verify=verify)


@needs_shared
def test_path_checks_relpath_against_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLAB_DATA", str(SHARED))
    with pytest.raises(
        DatasetError, match=r"not a file of dataset 'ibsi1-phantom'.*phantom\.nii\.gz"
    ):
        mldata.path("ibsi1-phantom", "nifti/image/phantom.nii")
    with pytest.raises(DatasetError, match="relative path"):
        mldata.path("ibsi1-phantom", "../sts-cohort/SOURCE.txt")
    p = mldata.path("ibsi1-phantom", Path("nifti") / "mask" / "mask.nii.gz")
    assert p == SHARED / "ibsi1-phantom" / "nifti" / "mask" / "mask.nii.gz"


# ---------------------------------------------------------------------------
# downloads from a local HTTP "upstream"


class _Upstream:
    """An HTTP server on 127.0.0.1 serving ``routes`` (path -> (bytes, mode)).

    ``first[path]`` lists the modes of the first requests of a path ("503": a server
    error, "truncate", "corrupt": one byte flipped); later requests use ``routes``.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.first: dict[str, list[str]] = {}
        self.hits: list[str] = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urllib.parse.unquote(self.path)
                upstream.hits.append(path)
                if path not in upstream.routes:
                    self.send_error(404)
                    return
                body, mode = upstream.routes[path]
                if upstream.first.get(path):
                    mode = upstream.first[path].pop(0)
                if mode == "503":
                    self.send_error(503, "Busy")
                    return
                if mode == "corrupt":
                    body = bytes([body[0] ^ 1]) + body[1:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "truncate":  # close the connection halfway through
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                else:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    up = _Upstream()
    yield up
    up.close()


def _toy_registry(
    base_url: str, files: dict[str, bytes], recipe_extra: dict[str, Any] | None = None
) -> Registry:
    rows: list[list[Any]] = [["SOURCE.txt", 3, _sha(b"abc"), "note"]]
    for rel, body in files.items():
        spec: Any = "up" if not recipe_extra else {"src": "up", **recipe_extra}
        rows.append([rel, len(body), _sha(body), spec])
    return Registry.from_dict(
        {
            "datasets": {
                "toy": {
                    "description": "toy dataset",
                    "licence": "CC0 (toy licence)",
                    "origin": "the toy upstream",
                    "sources": {"up": {"kind": "url", "base": base_url + "/up/"}},
                    "files": rows,
                }
            }
        }
    )


TOY = {"a.bin": bytes(range(256)) * 1200, "sub/b.txt": b"hello medlab\n"}


def test_download_verifies_and_reuses_the_cache(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch, _isolated: Path, capsys: Any
) -> None:
    for rel, body in TOY.items():
        upstream.routes[f"/up/{rel}"] = (body, "ok")
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(upstream.url, TOY))

    folder = mldata.fetch("toy", progress=True)
    assert folder == _isolated / "toy"
    for rel, body in TOY.items():
        assert (folder / rel).read_bytes() == body
    assert sorted(upstream.hits) == ["/up/a.bin", "/up/sub/b.txt"]
    assert capsys.readouterr().out == ""  # progress goes to stderr, nothing is printed
    assert not _leftovers(_isolated)

    assert mldata.fetch("toy", progress=False) == folder
    assert len(upstream.hits) == 2  # complete and verified: nothing downloaded again
    assert mldata.files("toy") == ["a.bin", "sub/b.txt"]
    assert mldata.path("toy", "sub/b.txt").read_bytes() == TOY["sub/b.txt"]
    with pytest.raises(DatasetError, match="provenance note"):
        mldata.path("toy", "SOURCE.txt")

    # a damaged cache file is replaced
    damaged = bytearray(TOY["a.bin"])
    damaged[10] ^= 1
    (folder / "a.bin").write_bytes(bytes(damaged))
    assert mldata.fetch("toy", progress=False) == folder
    assert (folder / "a.bin").read_bytes() == TOY["a.bin"]
    assert upstream.hits[2:] == ["/up/a.bin"]


def test_checksum_mismatch_keeps_nothing(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    wrong = b"X" * len(TOY["a.bin"])
    upstream.routes["/up/a.bin"] = (wrong, "ok")
    upstream.routes["/up/sub/b.txt"] = (TOY["sub/b.txt"], "ok")
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(upstream.url, TOY))

    with pytest.raises(DatasetError) as info:
        mldata.fetch("toy", progress=False)
    msg = str(info.value)
    assert "'a.bin'" in msg and _sha(TOY["a.bin"]) in msg and _sha(wrong) in msg
    assert not (_isolated / "toy" / "a.bin").exists()
    assert not _leftovers(_isolated)


def test_interrupted_download_keeps_nothing_and_can_be_retried(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    upstream.routes["/up/a.bin"] = (TOY["a.bin"], "truncate")
    upstream.routes["/up/sub/b.txt"] = (TOY["sub/b.txt"], "ok")
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(upstream.url, TOY))

    with pytest.raises(DatasetError, match="interrupted") as info:
        mldata.fetch("toy", progress=False)
    assert f"of {len(TOY['a.bin'])} bytes" in str(info.value)
    assert not (_isolated / "toy" / "a.bin").exists()
    assert not _leftovers(_isolated)

    upstream.routes["/up/a.bin"] = (TOY["a.bin"], "ok")  # the server is fixed
    folder = mldata.fetch("toy", progress=False)
    assert (folder / "a.bin").read_bytes() == TOY["a.bin"]
    assert (folder / "sub/b.txt").read_bytes() == TOY["sub/b.txt"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_error_is_short_and_names_size_locations_and_the_command(
    monkeypatch: pytest.MonkeyPatch, _isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(url, TOY))
    with pytest.raises(DatasetError) as info:
        mldata.fetch("toy", progress=True)
    msg = str(info.value)
    size = sum(len(v) for v in TOY.values())
    for needle in ("'toy'", f"({size / 1e3:.0f} kB)", "MEDLAB_DATA", "'toy/'",
                   f"MEDLAB_CACHE={_isolated}", "`medlab data fetch toy`", "no network"):
        assert needle in msg
    assert len(msg) < 400 and "\n" not in msg
    assert not (_isolated / "toy").exists()  # no empty folders left behind
    err = capsys.readouterr().err
    assert "medlab toy" not in err  # no (empty) progress bar when nothing arrives


def test_medlab_offline_forbids_downloads(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.routes["/up/a.bin"] = (TOY["a.bin"], "ok")
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(upstream.url, TOY))
    monkeypatch.setenv("MEDLAB_OFFLINE", "1")
    with pytest.raises(DatasetError, match=r"MEDLAB_OFFLINE.*MEDLAB_DATA"):
        mldata.fetch("toy", progress=False)
    assert upstream.hits == []


def test_http_error_is_a_dataset_error(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(upstream.url, TOY))
    with pytest.raises(DatasetError, match="HTTP 404"):
        mldata.fetch("toy", progress=False)


def test_transient_failures_are_retried_with_pooch_backoff(
    upstream: _Upstream,
    monkeypatch: pytest.MonkeyPatch,
    _isolated: Path,
    waits: list[float],
    capsys: pytest.CaptureFixture[str],
) -> None:
    for rel, body in TOY.items():
        upstream.routes[f"/up/{rel}"] = (body, "ok")
    upstream.first["/up/a.bin"] = ["503", "truncate"]  # a busy server, then a cut transfer
    upstream.first["/up/sub/b.txt"] = ["corrupt"]  # bytes damaged on the way: wrong checksum
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(upstream.url, TOY))
    shown: list[int] = []
    update = _fetch._LazyBar.update
    monkeypatch.setattr(_fetch._LazyBar, "update", lambda bar, n: (shown.append(n), update(bar, n)))
    import pooch

    level = pooch.get_logger().level

    folder = mldata.fetch("toy", progress=True)
    for rel, body in TOY.items():
        assert _sha_file(folder / rel) == _sha(body)
    assert upstream.hits == ["/up/a.bin"] * 3 + ["/up/sub/b.txt"] * 2
    assert waits == [1, 2, 1]  # pooch's backoff, restarted for each file
    assert sum(shown) == sum(len(b) for b in TOY.values())  # failed attempts taken back
    assert not _leftovers(_isolated)
    err = capsys.readouterr().err
    assert "medlab toy" in err and "Downloading" not in err and "attempt" not in err
    assert pooch.get_logger().level == level  # pooch's logger is left as it was


def test_server_errors_are_retried_other_http_errors_are_not(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch, _isolated: Path, waits: list[float]
) -> None:
    upstream.routes["/up/a.bin"] = (TOY["a.bin"], "503")  # busy for good
    upstream.routes["/up/sub/b.txt"] = (TOY["sub/b.txt"], "ok")
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(upstream.url, TOY))
    with pytest.raises(DatasetError, match=r"'a\.bin' of dataset 'toy'.*HTTP 503 Busy \(3 attempts\)"):
        mldata.fetch("toy", progress=False)
    assert upstream.hits == ["/up/a.bin"] * 3 and waits == [1, 2]
    assert not (_isolated / "toy").exists() and not _leftovers(_isolated)

    del upstream.routes["/up/a.bin"]  # gone: retrying cannot help
    upstream.hits.clear()
    waits.clear()
    with pytest.raises(DatasetError, match=r"HTTP 404 Not Found\. Dataset 'toy' comes from"):
        mldata.fetch("toy", progress=False)
    assert upstream.hits == ["/up/a.bin"] and waits == []


def test_no_network_fails_at_once_without_retries(
    monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(url, TOY))
    with pytest.raises(DatasetError, match=r"no network: Connection refused\)"):
        mldata.fetch("toy", progress=False)
    assert waits == []  # retrying cannot bring a network back


def _archive(kind: str, members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A zip or tar.gz archive holding ``members`` (and, for tar, symbolic ``links``)."""
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, body in members.items():
                z.writestr(name, body)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, body in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
            for name, target in (links or {}).items():
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
    return buf.getvalue()


def _archive_registry(
    url: str, files: dict[str, bytes], *, sha256: str | None = None,
    renames: dict[str, str] | None = None,
) -> Registry:
    renames = renames or {}
    rows = [[rel, len(body), _sha(body), {"src": "arc", "path": renames[rel]} if rel in renames
             else "arc"] for rel, body in files.items()]
    source = {"kind": "archive", "url": url, "base": "pkg/data/"}
    if sha256:
        source["sha256"] = sha256
    return Registry.from_dict({"datasets": {"toy": {
        "licence": "L", "origin": "O", "sources": {"arc": source}, "files": rows}}})


ARCHIVED = {"x.dcm": b"DICM" * 100, "sub/y.txt": b"why\n", "z.dcm": b"zed"}


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_members_are_unpacked_and_checked(
    kind: str, upstream: _Upstream, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    data = _archive(kind, {
        "pkg/data/x.dcm": ARCHIVED["x.dcm"], "pkg/data/sub/y.txt": ARCHIVED["sub/y.txt"],
        "pkg/data/Z_UPSTREAM": ARCHIVED["z.dcm"], "pkg/README": b"not wanted",
    })
    upstream.routes[f"/dl/pkg.{kind}"] = (data, "ok")
    reg = _archive_registry(f"{upstream.url}/dl/pkg.{kind}", ARCHIVED,
                            sha256=_sha(data) if kind == "zip" else None,
                            renames={"z.dcm": "Z_UPSTREAM"})
    recipe = reg["toy"].files["z.dcm"].recipe
    assert recipe["member"] == "pkg/data/Z_UPSTREAM" and recipe["url"].endswith(kind)
    assert recipe["rename"] == {"from": "Z_UPSTREAM", "to": "z.dcm"}
    monkeypatch.setattr(_fetch, "_REGISTRY", reg)

    folder = mldata.fetch("toy", progress=False)
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == (
        set(ARCHIVED) | {_fetch._MEMO_NAME} if (folder / _fetch._MEMO_NAME).exists()
        else set(ARCHIVED))
    for rel, body in ARCHIVED.items():
        assert (folder / rel).read_bytes() == body
    assert upstream.hits == [f"/dl/pkg.{kind}"]  # one download for all members
    assert not _leftovers(_isolated)
    (folder / "sub/y.txt").unlink()
    assert mldata.fetch("toy", progress=False) == folder
    assert (folder / "sub/y.txt").read_bytes() == ARCHIVED["sub/y.txt"]
    assert len(upstream.hits) == 2


def test_archive_problems_are_dataset_errors(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch, _isolated: Path, waits: list[float]
) -> None:
    url = f"{upstream.url}/dl/pkg.tar.gz"
    good = _archive("tar.gz", {f"pkg/data/{k}": v for k, v in ARCHIVED.items()})

    # the archive's own checksum is wrong: pooch tries again, then gives up; nothing kept
    upstream.routes["/dl/pkg.tar.gz"] = (good, "ok")
    other = _sha(b"another archive")
    monkeypatch.setattr(_fetch, "_REGISTRY", _archive_registry(url, ARCHIVED, sha256=other))
    with pytest.raises(DatasetError, match=f"(?s)archive of dataset 'toy'.*{other}.*{_sha(good)}"):
        mldata.fetch("toy", progress=False)
    assert len(upstream.hits) == 3 and waits == [1, 2]
    assert not (_isolated / "toy").exists()

    # a member with the wrong bytes, a missing member, a link where a file should be
    cases = {
        "'x.dcm' of dataset 'toy'.*" + _sha(ARCHIVED["x.dcm"]): {
            **{f"pkg/data/{k}": v for k, v in ARCHIVED.items()}, "pkg/data/x.dcm": b"wrong"},
        r"no member 'pkg/data/sub/y\.txt'": {
            f"pkg/data/{k}": v for k, v in ARCHIVED.items() if k != "sub/y.txt"},
    }
    monkeypatch.setattr(_fetch, "_REGISTRY", _archive_registry(url, ARCHIVED))
    for pattern, members in cases.items():
        upstream.routes["/dl/pkg.tar.gz"] = (_archive("tar.gz", members), "ok")
        with pytest.raises(DatasetError, match=pattern):
            mldata.fetch("toy", progress=False)
        assert not _leftovers(_isolated) and not (_isolated / "toy" / "sub").exists()
    shutil.rmtree(_isolated / "toy")  # the verified x.dcm of the last case stays: start anew
    members = {f"pkg/data/{k}": v for k, v in ARCHIVED.items() if k != "x.dcm"}
    upstream.routes["/dl/pkg.tar.gz"] = (
        _archive("tar.gz", members, links={"pkg/data/x.dcm": "/etc/passwd"}), "ok")
    with pytest.raises(DatasetError, match=r"links or special files where data were expected \(pkg/data/x\.dcm\)"):
        mldata.fetch("toy", progress=False)
    assert not (_isolated / "toy").exists()

    upstream.routes["/dl/pkg.tar.gz"] = (b"<html>moved</html>", "ok")
    with pytest.raises(DatasetError, match=r"pkg\.tar\.gz .*not a zip or tar archive"):
        mldata.fetch("toy", progress=False)
    assert not _leftovers(_isolated) and not (_isolated / "toy").exists()


def test_manual_recipe_explains_where_to_get_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry.from_dict(
        {
            "datasets": {
                "toy": {
                    "licence": "L",
                    "origin": "O",
                    "files": [
                        ["x.dcm", 1, _sha(b"x"), {"kind": "manual", "note": "ask the toy lab"}]
                    ],
                }
            }
        }
    )
    monkeypatch.setattr(_fetch, "_REGISTRY", reg)
    with pytest.raises(DatasetError, match=r"(?s)x\.dcm: ask the toy lab.*MEDLAB_DATA"):
        mldata.fetch("toy", progress=False)


def test_zst_recipe_is_decompressed_and_verified(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    zstandard = pytest.importorskip("zstandard")
    body = TOY["a.bin"]
    upstream.routes["/up/a.bin.zst"] = (zstandard.ZstdCompressor().compress(body), "ok")
    reg = _toy_registry(upstream.url, {"a.bin": body}, {"path": "a.bin.zst", "decompress": "zst"})
    assert reg["toy"].files["a.bin"].recipe["url"].endswith("/up/a.bin.zst")
    monkeypatch.setattr(_fetch, "_REGISTRY", reg)
    assert (mldata.fetch("toy", progress=False) / "a.bin").read_bytes() == body


def test_missing_zstandard_is_named(upstream: _Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = _toy_registry(upstream.url, {"a.bin": b"abc"}, {"path": "a.bin.zst", "decompress": "zst"})
    monkeypatch.setattr(_fetch, "_REGISTRY", reg)
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes "import zstandard" fail
    with pytest.raises(MissingDependencyError, match="'zstandard'"):
        mldata.fetch("toy", progress=False)
    assert upstream.hits == []


@needs_shared
def test_real_recipes_against_a_local_mirror(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    """The shipped url recipes of two datasets, served from a local raw-file mirror."""
    monkeypatch.setattr(_fetch, "_GITHUB_RAW", upstream.url)
    reg = Registry.load()
    for name in ("ibsi1-phantom", "wg04-codecs"):
        for entry in reg[name].data_files:
            route = urllib.parse.urlsplit(entry.recipe["url"]).path
            upstream.routes[urllib.parse.unquote(route)] = (
                (SHARED / name / entry.path).read_bytes(),
                "ok",
            )
    monkeypatch.setattr(_fetch, "_REGISTRY", reg)
    for name in ("ibsi1-phantom", "wg04-codecs"):
        folder = mldata.fetch(name, progress=False)
        assert folder == _isolated / name
        for entry in reg[name].data_files:
            assert _sha_file(folder / entry.path) == entry.sha256
    assert "/robyoung/dicom-test-files/" in upstream.hits[-1]
    assert any(h.endswith("/data/WG04/RLE/CT1_RLE") for h in upstream.hits)


# ---------------------------------------------------------------------------
# wheels


def _build_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
        z.writestr("toypkg-1.0.dist-info/METADATA", "Name: toypkg\nVersion: 1.0\n")
    return path


class _FakePip:
    """Stands in for ``pip download``: copies a prepared wheel into the folder."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        self.calls: list[tuple[str, str]] = []

    def __call__(self, package: str, version: str, dest: Path) -> Path:
        self.calls.append((package, version))
        assert dest.is_dir()
        return Path(shutil.copy(self.wheel, dest / self.wheel.name))


def _wheel_registry(files: dict[str, bytes], renames: dict[str, str] | None = None) -> Registry:
    renames = renames or {}
    rows = []
    for rel, body in files.items():
        spec: Any = {"src": "whl", "path": renames[rel]} if rel in renames else "whl"
        rows.append([rel, len(body), _sha(body), spec])
    source = {"kind": "wheel", "package": "toypkg", "version": "1.0", "base": "toypkg/data/"}
    return Registry.from_dict(
        {
            "datasets": {
                "toy": {"licence": "L", "origin": "O", "sources": {"whl": source}, "files": rows}
            }
        }
    )


def test_wheel_recipe_extracts_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    files = {"x.dcm": b"DICM" * 100, "sub/y.txt": b"why\n", "z.dcm": b"zed"}
    wheel = _build_wheel(
        tmp_path / "toypkg-1.0-py3-none-any.whl",
        {
            "toypkg/data/x.dcm": files["x.dcm"],
            "toypkg/data/sub/y.txt": files["sub/y.txt"],
            "toypkg/data/Z_UPSTREAM": files["z.dcm"],
        },
    )
    fake = _FakePip(wheel)
    reg = _wheel_registry(files, renames={"z.dcm": "Z_UPSTREAM"})
    assert reg["toy"].files["z.dcm"].recipe["rename"] == {"from": "Z_UPSTREAM", "to": "z.dcm"}
    monkeypatch.setattr(_fetch, "_REGISTRY", reg)
    monkeypatch.setattr(_fetch, "_download_wheel", fake)

    folder = mldata.fetch("toy", progress=False)
    for rel, body in files.items():
        assert (folder / rel).read_bytes() == body
    assert fake.calls == [("toypkg", "1.0")]  # one download for all members
    assert not _leftovers(_isolated)
    mldata.fetch("toy", progress=False)
    assert len(fake.calls) == 1


def test_wheel_problems_are_dataset_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    files = {"x.dcm": b"right bytes"}
    monkeypatch.setattr(_fetch, "_REGISTRY", _wheel_registry(files))

    wrong = _build_wheel(tmp_path / "toypkg-1.0-py3-none-any.whl", {"toypkg/data/x.dcm": b"wrong"})
    monkeypatch.setattr(_fetch, "_download_wheel", _FakePip(wrong))
    with pytest.raises(DatasetError, match=f"'x.dcm'.*{_sha(files['x.dcm'])}.*{_sha(b'wrong')}"):
        mldata.fetch("toy", progress=False)
    assert not (_isolated / "toy" / "x.dcm").exists()

    (tmp_path / "other").mkdir()
    other = _build_wheel(tmp_path / "other" / "toypkg-1.0-py3-none-any.whl", {"toypkg/x": b""})
    monkeypatch.setattr(_fetch, "_download_wheel", _FakePip(other))
    with pytest.raises(DatasetError, match=r"no member 'toypkg/data/x\.dcm'"):
        mldata.fetch("toy", progress=False)

    def failing_pip(package: str, version: str, dest: Path) -> Path:
        raise DatasetError(f"pip could not download the wheel {package}=={version}")

    monkeypatch.setattr(_fetch, "_download_wheel", failing_pip)
    with pytest.raises(DatasetError, match=r"(?s)toypkg==1\.0.*MEDLAB_DATA") as info:
        mldata.fetch("toy", progress=False)
    assert "`medlab data fetch toy`" in str(info.value) and len(str(info.value)) < 500
    assert not _leftovers(_isolated)


def test_default_wheel_downloader_runs_pip_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = _fetch._pip_download_command("pydicom", "3.0.2", tmp_path)
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "pydicom==3.0.2"} <= set(cmd)
    assert cmd[cmd.index("-d") + 1] == str(tmp_path)

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if "good==1.0" in cmd:
            (Path(cmd[cmd.index("-d") + 1]) / "good-1.0-py3-none-any.whl").write_bytes(b"PK")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(_fetch.subprocess, "run", fake_run)
    assert _fetch._download_wheel("good", "1.0", tmp_path).name == "good-1.0-py3-none-any.whl"
    with pytest.raises(DatasetError, match="No matching distribution"):
        _fetch._download_wheel("bad", "1.0", tmp_path / "empty")


@needs_shared
def test_real_wheel_recipes_with_a_locally_built_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    """The shipped wheel recipes of nibabel-header-only, from a wheel built here."""
    ds = _fetch.get_registry()["nibabel-header-only"]
    members = {e.recipe["member"]: (SHARED / ds.name / e.path).read_bytes() for e in ds.data_files}
    version = ds.data_files[0].recipe["version"]
    fake = _FakePip(_build_wheel(tmp_path / f"nibabel-{version}-py3-none-any.whl", members))
    monkeypatch.setattr(_fetch, "_download_wheel", fake)
    folder = mldata.fetch("nibabel-header-only", progress=False)
    assert fake.calls == [("nibabel", version)]
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "philips_mprage.dcm.gz",
        "siemens_dwi_0.dcm.gz",
        "siemens_dwi_1000.dcm.gz",
    ]


@needs_shared
def test_unwritable_cache_only_warns_when_reading_medlab_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MEDLAB_CACHE", str(blocker / "cache"))
    monkeypatch.setenv("MEDLAB_DATA", str(SHARED))
    with pytest.warns(RuntimeWarning, match="hash memo"):
        assert mldata.fetch("ibsi1-phantom") == SHARED / "ibsi1-phantom"


# ---------------------------------------------------------------------------
# bundled samples and the `medlab data` command line


def _run_cli(*args: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from medlab.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def test_bundled_sample_is_found_without_medlab_data_and_checked(_isolated: Path) -> None:
    reg = _fetch.get_registry()
    samples = sorted(n for n in reg if reg[n].bundled)
    assert samples == sorted(p.name for p in BUNDLED.iterdir() if p.is_dir()
                             and p.name[0] not in "._")
    for name in samples:
        assert mldata.fetch(name, progress=False) == BUNDLED / name
        # same registry, same checksums: every bundled file hashes to its registered SHA-256
        for entry in reg[name].data_files:
            assert _sha_file(BUNDLED / name / entry.path) == entry.sha256
    assert mldata.path("sts-cohort-sample", "dicom/STS_002/CT/image").is_dir()
    assert not _isolated.joinpath("sts-cohort-sample").exists()  # nothing copied to the cache
    total = sum(p.stat().st_size for p in BUNDLED.rglob("*") if p.is_file())
    assert total < 10 * 10**6, f"bundled data is {total / 1e6:.1f} MB (aim: at most 10 MB)"


def test_changed_bundled_file_is_reported_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "data"
    shutil.copytree(BUNDLED / "ct2d-head-sample", copy / "ct2d-head-sample")
    (copy / "ct2d-head-sample" / "CT_2D_head_fixed.mha").write_bytes(b"not an image")
    monkeypatch.setattr(_fetch, "_bundled_roots", lambda: [copy])
    with pytest.raises(DatasetError, match=r"(?s)bundled with medlab.*CT_2D_head_fixed\.mha.*git checkout"):
        mldata.fetch("ct2d-head-sample", progress=False)
    monkeypatch.setattr(_fetch, "_bundled_roots", lambda: [])
    with pytest.raises(DatasetError, match=r"(?s)bundled with medlab.*Reinstall medlab.*MEDLAB_DATA"):
        mldata.fetch("ct2d-head-sample", progress=False)


def test_cli_list_shows_sizes_and_where_each_dataset_is(_isolated: Path) -> None:
    rc, out, _err = _run_cli("data", "list")
    assert rc == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    reg = _fetch.get_registry()
    assert set(reg) <= set(rows)
    sample = rows["sts-cohort-sample"]
    on_disk = sum(p.stat().st_size for p in (BUNDLED / "sts-cohort-sample").rglob("*")
                  if p.is_file())
    assert sample[1:5] == [f"{on_disk / 1e6:.1f}", "MB",
                           str(len(list((BUNDLED / "sts-cohort-sample").rglob("*.*")))), "bundled"]
    assert rows["sts-cohort"][4] == "-"  # not in the (empty) cache, no MEDLAB_DATA
    assert f"MEDLAB_CACHE={_isolated}" in out


def test_cli_fetch_downloads_verifies_and_prints_the_folder(
    upstream: _Upstream, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    for rel, body in TOY.items():
        upstream.routes[f"/up/{rel}"] = (body, "ok")
    monkeypatch.setattr(_fetch, "_REGISTRY", _toy_registry(upstream.url, TOY))
    rc, out, err = _run_cli("data", "fetch", "toy")
    assert rc == 0, err
    assert out.strip() == f"toy: 2 files, 307 kB, sha256 checked: {_isolated / 'toy'}"
    assert "medlab toy" in err  # the tqdm progress bar
    for rel, body in TOY.items():
        assert _sha_file(_isolated / "toy" / rel) == _sha(body)
    rc, out, _err = _run_cli("data", "list")
    assert rc == 0 and out.splitlines()[1].split()[4] == "cache"
    rc, out, _err = _run_cli("data", "path", "toy", "sub/b.txt")
    assert rc == 0 and out.strip() == str(_isolated / "toy" / "sub" / "b.txt")
    assert len(upstream.hits) == 2  # the second and third commands downloaded nothing


def test_cli_fetch_all_reports_failures_shortly(
    monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    toy = _toy_registry(f"http://127.0.0.1:{_closed_port()}", TOY)
    bundled = _fetch.get_registry()["ct2d-head-sample"]
    monkeypatch.setattr(_fetch, "_REGISTRY", Registry([toy["toy"], bundled]))
    rc, out, err = _run_cli("data", "fetch", "--all")
    assert rc == 1
    assert out.startswith("ct2d-head-sample: 5 files") and "toy" not in out
    (line,) = [x for x in err.splitlines() if x.startswith("toy: FAILED")]
    assert "`medlab data fetch toy`" in line and "MEDLAB_CACHE" in line and len(line) < 450
    assert err.splitlines()[-1] == "1 of 2 dataset(s) not fetched: toy"
    rc, _out, err = _run_cli("data", "path", "toy")
    assert rc == 1 and "`medlab data fetch toy`" in err


def test_cli_usage_errors() -> None:
    assert _run_cli("data", "fetch")[0] == 2
    rc, _out, err = _run_cli("data", "fetch", "sts-cohrt")
    assert rc == 2 and "'sts-cohrt'" in err and "sts-cohort" in err
    with pytest.raises(SystemExit) as info:
        _run_cli("data", "frobnicate")
    assert info.value.code == 2


def test_cli_runs_as_a_module(_isolated: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "medlab", "data", "path", "us-cine-sample"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(BUNDLED.parent)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(BUNDLED / "us-cine-sample")


@pytest.mark.slow
def test_an_installed_wheel_finds_the_samples_inside_the_package(tmp_path: Path) -> None:
    import tomllib

    pyproject = tomllib.loads((BUNDLED.parent / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert mapping == {"data": "medlab/data/samples"}
    # lay the package out as the wheel does (no checkout around it) and ask it
    site = tmp_path / "site-packages"
    shutil.copytree(BUNDLED.parent / "medlab", site / "medlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(BUNDLED, site / mapping["data"])
    code = ("import medlab.data as d; print(d.fetch('ct2d-head-sample', progress=False)); "
            "print(d.path('sts-cohort-sample', 'dicom/STS_008/PET/image'))")
    env = {k: v for k, v in os.environ.items() if k != "MEDLAB_DATA"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=False, env={**env, "PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        str(site / "medlab/data/samples/ct2d-head-sample"),
        str(site / "medlab/data/samples/sts-cohort-sample/dicom/STS_008/PET/image"),
    ]
