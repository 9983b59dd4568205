"""`unimm download` against a real HTTP server on 127.0.0.1 serving archives built here.

No test touches the internet: every URL goes through --mirror / `mirror=` to the local server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from unimm.download import DownloadError, UnsafeArchiveError, download_archive
from unimm.download.fetch import part_path
from unimm.ingest import check_inputs
from unimm.sources import SOURCE_SPECS, Archive


class Server:
    """Serves `files` (URL path -> bytes), honouring `Range: bytes=N-` unless told not to."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.sent: list[int] = []  # body bytes sent per request
        self.ignore_range = False
        self.truncate_at: int | None = None  # close the connection after this many body bytes
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    server.sent.append(0)
                    return
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and not server.ignore_range:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        server.sent.append(0)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if server.truncate_at is not None:
                    chunk = chunk[: server.truncate_at]
                self.wfile.write(chunk)
                server.sent.append(len(chunk))
                if server.truncate_at is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as s:
        yield s


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(members: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_cli_downloads_and_unpacks_catalogue_archives(server: Server, tmp_path: Path, cli) -> None:
    # OK-VQA: four zips with the json at the root; A-OKVQA: a tar.gz whose files sit in a top folder.
    expected: dict[str, bytes] = {}
    for a in SOURCE_SPECS["okvqa"].archives:
        (member,) = a.members
        data = json.dumps({"member": member, "pad": "x" * 5000}).encode()
        expected[f"okvqa/{member}"] = data
        server.files[f"/okvqa/{a.filename}"] = make_zip({member: data})
    (aok,) = SOURCE_SPECS["aokvqa"].archives
    tar_members = {f"aokvqa_v1p0/{m}": json.dumps([{"m": m}]).encode() for m in aok.members}
    server.files[f"/aokvqa/{aok.filename}"] = make_tar(tar_members)
    expected.update({f"aokvqa/{k.split('/', 1)[1]}": v for k, v in tar_members.items()})

    data_root = tmp_path / "data"
    r = cli("download", "--sources", "okvqa,aokvqa", "--data-root", data_root, "--mirror", server.url)
    assert r.returncode == 0, r.stderr
    for rel, data in expected.items():
        assert (data_root / rel).read_bytes() == data
    # the archives are gone and nothing else was written into the source folders
    assert not list((data_root / ".downloads").rglob("*.zip")) and not list(
        (data_root / ".downloads").rglob("*.part")
    )
    assert sorted(str(p.relative_to(data_root)) for p in files_under(data_root)) == sorted(expected)
    assert "5 archive(s) downloaded" in r.stdout

    n = len(server.requests)
    again = cli("download", "--sources", "okvqa,aokvqa", "--data-root", data_root, "--mirror", server.url)
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == n  # everything present: not one request
    assert "0 archive(s) downloaded" in again.stdout and "5 already present" in again.stdout


def test_cli_downloads_visdial_dropbox_archives(server: Server, tmp_path: Path, cli) -> None:
    """VisDial's official links are Dropbox `...zip?dl=1` URLs: the archive is named without the
    query (here and on a mirror), and unpacks to where ingest and the image refs look."""
    fixtures = Path(__file__).parent / "fixtures" / "ingest" / "data" / "visdial"
    expected: dict[str, bytes] = {}
    for a in SOURCE_SPECS["visdial"].archives:
        assert a.url.startswith("https://www.dropbox.com/s/") and a.url.endswith(".zip?dl=1")
        assert a.filename == a.url.rsplit("/", 1)[1].removesuffix("?dl=1")
        (member,) = a.members
        if a.kind == "images":  # VisualDialog_val2018/VisualDialog_val2018_<id>.jpg
            name = f"{member}{member.rstrip('/')}_000000185565.jpg"
            data = b"\xff\xd8 not really a jpeg"
        else:
            name, data = member, (fixtures / member).read_bytes()
        expected[f"visdial/{name}"] = data
        server.files[f"/visdial/{a.filename}"] = make_zip({name: data})
    data_root = tmp_path / "data"
    r = cli("download", "--sources", "visdial", "--images", "--data-root", data_root, "--mirror", server.url)
    assert r.returncode == 0, r.stderr
    assert sorted(str(p.relative_to(data_root)) for p in files_under(data_root)) == sorted(expected)
    for rel, data in expected.items():
        assert (data_root / rel).read_bytes() == data
    assert "5 archive(s) downloaded" in r.stdout
    check_inputs(data_root, ["visdial"])  # ingest finds every file


def test_cli_mirror_from_environment_and_http_error_exit_2(server: Server, tmp_path: Path, cli) -> None:
    r = cli(
        "download", "--sources", "vqav2", "--data-root", tmp_path / "data", env={"UNIMM_MIRROR": server.url}
    )
    assert r.returncode == 2
    assert server.requests and server.requests[0][0].startswith("/vqav2/v2_Questions_Train_mscoco.zip")
    err_lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert (
        len(err_lines) == 1 and "HTTP 404" in err_lines[0] and "v2_Questions_Train_mscoco.zip" in err_lines[0]
    )
    assert files_under(tmp_path / "data" / "vqav2") == []


def _archive(
    server: Server,
    payload: bytes,
    *,
    filename: str = "blob.zip",
    size: int | None = None,
    sha256: str | None = None,
    members: tuple[str, ...] = ("blob.bin",),
) -> Archive:
    server.files[f"/vg/{filename}"] = payload
    return Archive(f"https://example.invalid/{filename}", "vg", members, size=size, sha256=sha256)


def test_resume_requests_only_the_remainder(server: Server, tmp_path: Path) -> None:
    blob = os.urandom(300_000)  # incompressible, so the zip is ~300 kB
    payload = make_zip({"blob.bin": blob})
    archive = _archive(server, payload, size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    dest = tmp_path / "data" / ".downloads" / "vg" / "blob.zip"
    dest.parent.mkdir(parents=True)
    part_path(dest).write_bytes(payload[:120_000])  # an earlier, interrupted run

    out = download_archive(archive, tmp_path / "data", mirror=server.url)
    assert server.requests == [("/vg/blob.zip", "bytes=120000-")]
    assert server.sent == [len(payload) - 120_000]
    assert (out.resumed_from, out.downloaded) == (120_000, len(payload) - 120_000)
    assert (tmp_path / "data" / "vg" / "blob.bin").read_bytes() == blob
    assert not dest.exists() and not part_path(dest).exists()


def test_server_ignoring_range_restarts_cleanly(server: Server, tmp_path: Path) -> None:
    payload = make_zip({"blob.bin": os.urandom(50_000)})
    archive = _archive(server, payload)
    dest = tmp_path / "data" / ".downloads" / "vg" / "blob.zip"
    dest.parent.mkdir(parents=True)
    part_path(dest).write_bytes(b"garbage that must not survive" * 100)
    server.ignore_range = True

    download_archive(archive, tmp_path / "data", mirror=server.url, keep_archive=True)
    assert server.requests[0][1] is not None  # we asked for a range...
    assert dest.read_bytes() == payload  # ...got the whole file and did not append it to the old bytes


def test_interrupted_transfer_keeps_part_and_resumes(server: Server, tmp_path: Path) -> None:
    payload = make_zip({"blob.bin": os.urandom(80_000)})
    archive = _archive(server, payload)
    server.truncate_at = 30_000
    with pytest.raises(DownloadError, match="run again to resume"):
        download_archive(archive, tmp_path / "data", mirror=server.url)
    part = part_path(tmp_path / "data" / ".downloads" / "vg" / "blob.zip")
    assert part.stat().st_size == 30_000
    assert files_under(tmp_path / "data" / "vg") == []

    server.truncate_at = None
    download_archive(archive, tmp_path / "data", mirror=server.url)
    assert server.requests[-1][1] == "bytes=30000-"
    assert (tmp_path / "data" / "vg" / "blob.bin").is_file()


def test_size_mismatch_is_an_error_with_nothing_unpacked(server: Server, tmp_path: Path) -> None:
    payload = make_zip({"blob.bin": b"x" * 1000})
    archive = _archive(server, payload, size=len(payload) + 5)
    with pytest.raises(DownloadError, match="size mismatch"):
        download_archive(archive, tmp_path / "data", mirror=server.url)
    assert files_under(tmp_path / "data" / "vg") == []
    assert not (tmp_path / "data" / ".downloads" / "vg" / "blob.zip").exists()


def test_sha256_mismatch_removes_the_file(server: Server, tmp_path: Path) -> None:
    payload = make_zip({"blob.bin": b"y" * 1000})
    archive = _archive(server, payload, sha256="0" * 64)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_archive(archive, tmp_path / "data", mirror=server.url)
    assert files_under(tmp_path / "data") == []  # neither the archive, its .part, nor its contents


def _symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("blob.bin", b"ok")
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("filename", "payload", "member"),
    [
        ("evil.zip", make_zip({"blob.bin": b"ok", "../evil": b"pwned"}), "../evil"),
        (
            "evil.tar.gz",
            make_tar({"blob.bin": b"ok", "/tmp/unimm-evil-abs": b"pwned"}),
            "/tmp/unimm-evil-abs",
        ),
        ("evil.tar.gz", make_tar({"blob.bin": b"ok"}, symlinks={"link": "/etc/passwd"}), "link"),
        ("evil.zip", _symlink_zip(), "link"),
        ("evil.tar.gz", make_tar({"blob.bin": b"ok", "a/../../evil": b"pwned"}), "a/../../evil"),
    ],
    ids=["zip-dotdot", "tar-absolute", "tar-symlink", "zip-symlink", "tar-nested-dotdot"],
)
def test_malicious_archives_are_refused_whole(
    server: Server, tmp_path: Path, filename: str, payload: bytes, member: str
) -> None:
    archive = _archive(server, payload, filename=filename)
    data = tmp_path / "data"
    with pytest.raises(UnsafeArchiveError) as err:
        download_archive(archive, data, mirror=server.url, keep_archive=True)
    assert err.value.archive == filename and err.value.member == member
    assert filename in str(err.value) and member in str(err.value)
    assert files_under(data / "vg") == []  # not even the harmless blob.bin
    assert not (tmp_path / "evil").exists() and not (data / "evil").exists()
    assert not Path("/tmp/unimm-evil-abs").exists()


def test_archive_missing_an_expected_member_extracts_nothing(server: Server, tmp_path: Path) -> None:
    archive = _archive(server, make_zip({"other.bin": b"1"}))
    with pytest.raises(DownloadError, match="does not contain blob.bin"):
        download_archive(archive, tmp_path / "data", mirror=server.url)
    assert files_under(tmp_path / "data" / "vg") == []


def test_plain_file_and_folder_members(server: Server, tmp_path: Path) -> None:
    # an image archive yields a folder (trailing slash in the catalogue); a plain file is kept as is
    imgs = _archive(
        server,
        make_zip({"VG_100K/1.jpg": b"a", "VG_100K/2.jpg": b"b"}),
        filename="images.zip",
        members=("VG_100K/",),
    )
    download_archive(imgs, tmp_path / "data", mirror=server.url)
    assert sorted(p.name for p in (tmp_path / "data" / "vg" / "VG_100K").iterdir()) == ["1.jpg", "2.jpg"]
    plain = _archive(server, b'{"a": 1}', filename="notes.json", members=("notes.json",))
    download_archive(plain, tmp_path / "data", mirror=server.url)
    assert (tmp_path / "data" / "vg" / "notes.json").read_bytes() == b'{"a": 1}'


def test_complete_part_file_is_finished_without_refetching(server: Server, tmp_path: Path) -> None:
    payload = make_zip({"blob.bin": b"z" * 5000})
    archive = _archive(server, payload)
    dest = tmp_path / "data" / ".downloads" / "vg" / "blob.zip"
    dest.parent.mkdir(parents=True)
    part_path(dest).write_bytes(payload)  # the previous run got every byte but stopped before renaming
    out = download_archive(archive, tmp_path / "data", mirror=server.url)
    assert server.sent == [0] and out.downloaded == 0  # answered 416: nothing was sent again
    assert (tmp_path / "data" / "vg" / "blob.bin").read_bytes() == b"z" * 5000
