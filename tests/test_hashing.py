"""medlab._hashing, the one SHA-256 helper, against hashlib on the whole bytes and pooch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pooch
import pytest

from medlab import _hashing

# sizes around the read block: empty, one byte, a block, a block and a byte, several blocks
SIZES = [0, 1, _hashing.CHUNK, _hashing.CHUNK + 1, 3 * _hashing.CHUNK + 12345]


def _bytes(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7919 + seed) % 251 for i in range(n))


@pytest.mark.parametrize("size", SIZES)
def test_sha256_file_equals_hashlib_and_pooch(size: int, tmp_path: Path) -> None:
    data = _bytes(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert _hashing.sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert _hashing.sha256_file(str(path)) == pooch.file_hash(str(path), alg="sha256")


def test_copy_while_hashing_reads_once_and_writes_the_same_bytes(tmp_path: Path) -> None:
    data = _bytes(2 * _hashing.CHUNK + 5, seed=3)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    copy = tmp_path / "new" / "folder" / "copy.bin"
    assert _hashing.sha256_file(src, copy_to=copy) == hashlib.sha256(data).hexdigest()
    assert copy.read_bytes() == data

    chunks = [b"ab", b"", b"cd" * 1000]
    out = tmp_path / "stream.bin"
    assert _hashing.sha256_stream(iter(chunks), copy_to=out) == hashlib.sha256(
        b"".join(chunks)).hexdigest()
    assert out.read_bytes() == b"".join(chunks)


def test_sha256_files_hashes_the_files_in_sorted_path_order(tmp_path: Path) -> None:
    parts = {"b.pt": _bytes(1000, 1), "a.pt": _bytes(_hashing.CHUNK + 3, 2), "c/z.pt": b""}
    for name, data in parts.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    expected = hashlib.sha256(parts["a.pt"] + parts["b.pt"] + parts["c/z.pt"]).hexdigest()
    paths = [tmp_path / "c/z.pt", tmp_path / "b.pt", str(tmp_path / "a.pt")]
    assert _hashing.sha256_files(paths) == expected
    assert _hashing.sha256_files(reversed(paths)) == expected
    assert _hashing.sha256_files([]) == hashlib.sha256(b"").hexdigest()


def test_unreadable_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _hashing.sha256_file(tmp_path / "missing.bin")
