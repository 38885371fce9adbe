"""The content-addressed file store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.contracts.errors import NotFoundError
from store.files import LocalFileStore, detect_mime

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


@pytest.mark.parametrize(("data", "name", "mime"), [
    (b"%PDF-1.7\n...", "x.bin", "application/pdf"),
    (PNG, "photo", "image/png"),
    (JPEG, "scan.pdf", "image/jpeg"),               # content beats a lying extension
    (b'{"a": [1, 2]}', "data", "application/json"),
    (b"plain words", "notes", "text/plain"),
    (b"a,b\n1,2\n", "table.csv", "text/csv"),        # extension refines text
    (b"\x00\x01\xfe\xff", "blob", "application/octet-stream"),
    (b"\x00\x01\xfe\xff", "archive.zip", "application/zip"),
    (b"{not json", "x", "text/plain"),
])
def test_detect_mime(data: bytes, name: str, mime: str) -> None:
    assert detect_mime(data, name) == mime


def test_put_and_read(tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path / "files")
    ref = files.put_bytes(b"%PDF-1.4 body", "invoice.pdf")
    digest = hashlib.sha256(b"%PDF-1.4 body").hexdigest()
    assert ref.id == f"file_{digest[:24]}"
    assert (ref.filename, ref.mime_type) == ("invoice.pdf", "application/pdf")
    assert files.read_bytes(ref) == b"%PDF-1.4 body"
    assert files.read_bytes(ref.id) == b"%PDF-1.4 body"
    assert files.get_ref(ref.id) == ref


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path / "files")
    first = files.put_bytes(b"same", "a.txt")
    second = files.put_bytes(b"same", "b.txt", mime_type="text/x-custom")
    assert first.id == second.id
    assert second.filename == "b.txt" and second.mime_type == "text/x-custom"
    assert files.get_ref(first.id).filename == "a.txt"     # the first name is remembered
    objects = [p for p in (tmp_path / "files" / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1


def test_put_path(tmp_path: Path) -> None:
    source = tmp_path / "page.png"
    source.write_bytes(PNG)
    ref = LocalFileStore(tmp_path / "files").put_path(source)
    assert (ref.filename, ref.mime_type) == ("page.png", "image/png")
    with pytest.raises(NotFoundError):
        LocalFileStore(tmp_path / "files").put_path(tmp_path / "missing.pdf")


def test_missing_file_and_blob(tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path / "files")
    with pytest.raises(NotFoundError, match="file_"):
        files.read_bytes("file_" + "a" * 24)
    with pytest.raises(NotFoundError):
        files.get_json_blob("blob_" + "b" * 32)
    with pytest.raises(NotFoundError):
        files.read_bytes("../../etc/passwd")
    assert not (tmp_path / "files").exists()   # reading never creates the folder


def test_json_blobs(tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path / "files")
    blob_id = files.put_json_blob(b'{"big": true}')
    assert blob_id.startswith("blob_")
    assert files.put_json_blob(b'{"big": true}') == blob_id
    assert files.get_json_blob(blob_id) == b'{"big": true}'


def test_store_files_live_beside_the_database(tmp_path: Path) -> None:
    files = LocalFileStore.beside(tmp_path / "runs.db")
    files.put_bytes(b"x", "x.txt")
    assert (tmp_path / "runs.db.files" / "objects").is_dir()


def test_a_new_file_store_keeps_itself_out_of_git(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    files = LocalFileStore.beside(tmp_path / "stepwell.db")
    files.put_bytes(b"%PDF-1.4 x", "a.pdf")
    status = subprocess.run(["git", "-C", str(tmp_path), "status", "--porcelain",
                             "--untracked-files=all"], capture_output=True, text=True,
                            check=True).stdout
    assert "stepwell.db.files" not in status
    assert (tmp_path / "stepwell.db.files" / ".gitignore").read_text().endswith("*\n")
