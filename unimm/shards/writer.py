"""write_shards: chats -> deterministic WebDataset tar shards + manifest.json.

Each shard is the tar webdataset's TarWriter writes (tarfile's pax headers, members `<key>.<ext>`
in extension order), with every varying header field fixed (mtime, uname/gname, mode; uid/gid
stay 0) and samples in id order, so the same inputs give byte-identical shards. It is written in
one pass: headers, JSON and image bytes go through small reused buffers, each sha256-hashed (in a
helper thread) as it is written, so nothing is read back.
Sizes are planned before writing (a tar member is a 512-byte header + the payload padded to 512;
the archive ends with two zero blocks, padded to tarfile's 10240-byte record), so every shard
respects maxsize exactly. Each shard is written under a temporary name and renamed when complete;
the manifest is removed first and written last, so a directory with a manifest is complete; the
dataset card README.md (unimm.card) is written just before it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import tarfile
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from stat import S_ISREG
from typing import Any, NamedTuple

import unimm
from unimm.card import write_card
from unimm.errors import InputError
from unimm.filter.reasons import count_reasons, reason_code
from unimm.pipeline.counts import StepCounts, rejected_by_reason
from unimm.placeholder import has_placeholder, with_placeholder
from unimm.schema import Chat, Reject, ShardSample, Turn
from unimm.shards.config import ShardConfig
from unimm.shards.manifest import (
    MANIFEST_NAME,
    Manifest,
    ShardEntry,
    ShardReject,
    generator_uses,
    rounds_per_dialogue,
    scrub,
)
from unimm.workdir import atomic_path

BLOCK = 512
RECORD = tarfile.RECORDSIZE  # 20 blocks: tarfile pads the closed archive to a multiple of this


class ShardResult(NamedTuple):
    manifest: Manifest
    rejects: list[Reject]


def to_shard_chat(chat: Chat) -> ShardSample:
    """The `<key>.json` of a chat: its ShardSample, first user turn prefixed with "<image>\\n"."""
    first = chat.turns[0]
    turns = [Turn(role=first.role, content=with_placeholder(first.content)), *chat.turns[1:]]
    return ShardSample.from_chat(chat.model_copy(update={"turns": turns}))


def member_bytes(size: int) -> int:
    """Bytes one tar member takes: header block + payload padded to whole blocks."""
    return BLOCK + -(-size // BLOCK) * BLOCK


def tar_bytes(payload: int) -> int:
    """Size of a closed tar whose members take `payload` bytes."""
    return -(-(payload + 2 * BLOCK) // RECORD) * RECORD


def image_ext(path: str) -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    return "jpg" if ext in ("jpg", "jpeg") else ext


NO_IMAGE_FILE = "no image_file"  # the detail of `image_missing` when no file name is known
_NOT_THERE = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)  # Path.is_file's "not a file"


class _Planned(NamedTuple):
    chat: Chat
    json: bytes
    image: Path | None
    member_total: int


def _reject(chat: Chat, reason: str) -> Reject:
    return Reject(id=chat.id, image_key=chat.image_key, stage="shards", reasons=[reason], chat=chat)


def image_candidates(chat: Chat, image_files: Mapping[str, Sequence[str]]) -> list[str]:
    """The file names to try for a chat's image, best first: the one generation recorded, then
    every other name the sources know the image by (`image_files`: image key -> names, in merge
    order), each once."""
    names = [chat.image_file] if chat.image_file else []
    return list(dict.fromkeys([*names, *image_files.get(chat.image_key, ())]))


def resolve_image(image_root: Path, candidates: Sequence[str]) -> str | None:
    """The first candidate that is a file under `image_root`, or None."""
    found = _find_image(Path(image_root), candidates)
    return found[0] if found else None


def _find_image(root: Path, candidates: Sequence[str]) -> tuple[str, Path, int] | None:
    """(name, path, size) of the first candidate that is a file under `root` (as Path.is_file
    tells), one stat per candidate tried."""
    for name in candidates:
        path = root / name
        try:
            st = os.stat(path)
        except OSError as e:
            if e.errno not in _NOT_THERE:
                raise
            continue
        except ValueError:  # a NUL in the name
            continue
        if S_ISREG(st.st_mode):
            return name, path, st.st_size
    return None


def plan_samples(
    chats: list[Chat],
    image_root: Path | None,
    cfg: ShardConfig,
    image_files: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[_Planned], list[Reject]]:
    """Sorted samples with their encoded JSON and image path, plus the chats that cannot be shipped.

    A chat's image is the first of its candidates (image_candidates) found under `image_root`,
    and its sample names that file; a chat with none is rejected `image_missing:<tried>|<tried>`.
    """
    planned: list[_Planned] = []
    rejects: list[Reject] = []
    seen: set[str] = set()
    root = None if image_root is None else Path(image_root)
    for chat in sorted(chats, key=lambda c: c.id):
        if chat.id in seen:
            raise InputError(
                "chats", "duplicate chat id (deduplicate before sharding)", record=chat.id, field="id"
            )
        seen.add(chat.id)
        if has_placeholder(chat.turns):
            rejects.append(_reject(chat, "unexpected_placeholder"))
            continue
        if chat.turns[0].role != "user":
            rejects.append(_reject(chat, "bad_role_order"))
            continue
        image, total = None, 0
        if root is not None:
            tried = image_candidates(chat, image_files or {})
            found = _find_image(root, tried)
            if found is None:  # every sample must carry the same members (datasets' loader needs it)
                rejects.append(_reject(chat, f"image_missing:{'|'.join(tried) or NO_IMAGE_FILE}"))
                continue
            used, image, size = found
            total = member_bytes(size)
            if used != chat.image_file:
                chat = chat.model_copy(update={"image_file": used})  # the sample names the file it ships
        js = to_shard_chat(chat).model_dump_json().encode()
        total += member_bytes(len(js))
        planned.append(_Planned(chat, js, image, total))
    return planned, rejects


class NoImagesError(InputError):
    """Not one chat's image is under the image root: the root is wrong, not a few files missing."""


def check_images_found(image_root: Path, rejects: list[Reject]) -> None:
    """Raise NoImagesError when shipping nothing is down to `image_missing`, naming a few paths
    tried (an empty shard set must not pass for a result)."""
    details = [
        reason.split(":", 1)[1]
        for r in rejects
        for reason in r.reasons
        if reason_code(reason) == "image_missing"
    ]
    if not details:
        return
    tried = [p for d in details if d != NO_IMAGE_FILE for p in d.split("|")]
    shown = ", ".join(str(image_root / p) for p in tried[:3]) + (", ..." if len(tried) > 3 else "")
    raise NoImagesError(
        image_root,
        f"no image found under this image root for any of the {len(rejects)} dialogues "
        f"({f'tried {shown}' if tried else 'they name no image file'}); point --image-root at the folder"
        " the file names are relative to, or pass --no-images for shards without images",
    )


def split_shards(planned: list[_Planned], cfg: ShardConfig) -> list[list[_Planned]]:
    """Greedy split in id order under maxcount samples and maxsize tar bytes per shard."""
    groups: list[list[_Planned]] = []
    cur: list[_Planned] = []
    used = 0
    for p in planned:
        if cur and (len(cur) >= cfg.maxcount or tar_bytes(used + p.member_total) > cfg.maxsize):
            groups.append(cur)
            cur, used = [], 0
        cur.append(p)
        used += p.member_total
    if cur:
        groups.append(cur)
    return groups


# The member headers webdataset's TarWriter wrote (the shards' byte layout since the start): it
# opens tarfile without its `format` argument, so they are tarfile's default (pax) headers.
_TAR_FORMAT = tarfile.DEFAULT_FORMAT
_TAR_ENCODING = tarfile.ENCODING
_MEMBER_MODE = 0o444
_MEMBER_OWNER = "unimm"
_ZEROS = memoryview(bytes(RECORD))  # member padding and the end-of-archive blocks
_BUFSIZE = 1 << 18  # bytes per write and per hash update (1 MiB buffers wrote 2x slower here)


def member_header(name: str, size: int, mtime: int) -> bytes:
    """The header tarfile writes for a regular file member `name` of `size` bytes: pax format,
    mode 0444, owner unimm:unimm (uid/gid 0), mtime fixed."""
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = size, mtime, _MEMBER_MODE
    ti.uname = ti.gname = _MEMBER_OWNER
    return ti.tobuf(_TAR_FORMAT, _TAR_ENCODING, "surrogateescape")


class _Headers:
    """member_header with the shard's fixed mtime: every header is tarfile's own `tobuf`."""

    def __init__(self, mtime: int) -> None:
        self.mtime = mtime

    def __call__(self, name: str, size: int) -> bytes:
        return member_header(name, size, self.mtime)


class _TarSink:
    """The bytes of one tar file, gathered in a ring of small reused buffers (small enough to stay
    in the CPU cache). Each full buffer is written to `fd` while a helper thread sha256-hashes it
    (hashlib releases the GIL, so with a second core free the hash costs no wall time): every byte
    is hashed once, from the buffer it is written from, never read back."""

    def __init__(self, fd: int, bufsize: int | None = None, nbufs: int = 4) -> None:
        self.fd = fd
        self.sha = hashlib.sha256()
        self.size = 0  # bytes written to fd
        self._cap = bufsize or _BUFSIZE
        self._bufs = [memoryview(bytearray(self._cap)) for _ in range(nbufs)]
        self._cur = 0
        self._buf = self._bufs[0]
        self._fill = 0
        self._free = threading.Semaphore(nbufs - 1)  # buffers neither being filled nor awaiting the hash
        self._q: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._t = threading.Thread(target=self._hash, name="unimm-shard-sha256", daemon=True)
        self._t.start()

    def _hash(self) -> None:
        while (chunk := self._q.get()) is not None:
            try:
                if self._error is None:
                    self.sha.update(chunk)
            except BaseException as e:  # noqa: BLE001  (reported by finish; the writer must not hang)
                self._error = e
            self._free.release()

    @property
    def offset(self) -> int:
        """Bytes of the tar so far."""
        return self.size + self._fill

    def _flush(self) -> None:
        chunk = self._buf[: self._fill]
        self._q.put(chunk)
        done = 0
        while done < len(chunk):
            done += os.write(self.fd, chunk[done:])
        self.size += done
        self._cur = (self._cur + 1) % len(self._bufs)
        self._buf, self._fill = self._bufs[self._cur], 0
        self._free.acquire()  # this buffer's previous chunk is hashed: it may be overwritten

    def write(self, data: bytes | memoryview) -> None:
        n, fill = len(data), self._fill
        if fill + n <= self._cap:
            self._buf[fill : fill + n] = data
            self._fill = fill + n
            return
        view = memoryview(data)
        while view:
            if self._fill == self._cap:
                self._flush()
            k = min(len(view), self._cap - self._fill)
            self._buf[self._fill : self._fill + k] = view[:k]
            self._fill += k
            view = view[k:]

    def copy_from(self, fd: int, size: int, name: object) -> None:
        """Append `size` bytes read from `fd`, read straight into the buffer."""
        left = size
        while left:
            if self._fill == self._cap:
                self._flush()
            k = min(left, self._cap - self._fill)
            n = os.readv(fd, [self._buf[self._fill : self._fill + k]])
            if n == 0:
                raise OSError(f"{name}: the file shrank while it was being written to a shard")
            self._fill += n
            left -= n

    def pad(self, n: int) -> None:
        """Append `n` zero bytes."""
        while n > 0:
            k = min(n, len(_ZEROS))
            self.write(_ZEROS[:k])
            n -= k

    def finish(self) -> str:
        """Write what is buffered; the sha256 of everything written."""
        if self._fill:
            self._flush()
        self.close()
        if self._error is not None:
            raise self._error
        return self.sha.hexdigest()

    def close(self) -> None:
        """Stop the helper thread (once every chunk handed to it is hashed)."""
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()


def _write_member(sink: _TarSink, headers: _Headers, name: str, data: bytes | Path) -> None:
    """One member: its header, its bytes (`data`, or the file it names, copied as is, never
    re-encoded), zeros to a whole block."""
    if isinstance(data, bytes):
        sink.write(headers(name, len(data)))
        sink.write(data)
        size = len(data)
    else:
        fd = os.open(data, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            sink.write(headers(name, size))
            sink.copy_from(fd, size, data)
        finally:
            os.close(fd)
    sink.pad(-size % BLOCK)


def _write_one(path: Path, samples: list[_Planned], cfg: ShardConfig) -> ShardEntry:
    """One shard: the tar stream webdataset's TarWriter wrote (members `<key>.<ext>` in extension
    order, so `<key>.jpg` before `<key>.json`; end-of-archive zeros padded to a 10240-byte
    record), written in one pass that also hashes it."""
    headers = _Headers(cfg.mtime)
    with atomic_path(path) as tmp:
        # atomic_path made it, empty. No O_TRUNC: truncating an existing file makes ext4 (its
        # replace-via-truncate heuristic) start writeback on close, tripling the kernel time.
        fd = os.open(tmp, os.O_WRONLY | os.O_CLOEXEC)
        try:
            sink = _TarSink(fd)
            try:
                for s in samples:
                    members: dict[str, bytes | Path] = {"json": s.json}
                    if s.image is not None:
                        members[image_ext(s.image.name)] = s.image
                    for ext in sorted(members):
                        _write_member(sink, headers, f"{s.chat.id}.{ext}", members[ext])
                end = sink.offset + 2 * BLOCK
                sink.pad(2 * BLOCK + -end % RECORD)
                digest = sink.finish()
            finally:
                sink.close()
            if cfg.fsync:
                os.fsync(fd)  # durable before the rename makes it visible
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size != sink.size:
            raise OSError(f"{tmp}: wrote {sink.size} bytes but the file has {size}")
    return ShardEntry(name=path.name, samples=len(samples), bytes=size, sha256=digest)


def _clear(out_dir: Path, prefix: str, keep: set[str]) -> None:
    for p in out_dir.glob(f"{prefix}-*.tar"):
        if p.name not in keep:
            p.unlink()


def write_shards(
    chats: list[Chat],
    out_dir: Path,
    cfg: ShardConfig | None = None,
    image_root: Path | None = None,
    manifest_extra: dict[str, Any] | None = None,
    steps: Mapping[str, StepCounts] | None = None,
) -> Manifest:
    """`write_shards_result(...).manifest`: the shard-stage rejects are listed in the manifest
    (`shard_rejects`, `rejects_by_reason`); use write_shards_result for the full Reject records."""
    return write_shards_result(chats, out_dir, cfg, image_root, manifest_extra, steps=steps).manifest


def write_shards_result(
    chats: list[Chat],
    out_dir: Path,
    cfg: ShardConfig | None = None,
    image_root: Path | None = None,
    manifest_extra: dict[str, Any] | None = None,
    image_files: Mapping[str, Sequence[str]] | None = None,
    steps: Mapping[str, StepCounts] | None = None,
) -> ShardResult:
    """Write `chats` as `<prefix>-%06d.tar` shards + manifest.json into `out_dir`.

    manifest_extra: `build_config` or `config` (stored scrubbed), anything else lands in `extra`
    (scrubbed). steps: the counts of the pipeline steps before this one; the manifest adds this
    step's (`shards`) and sums every step's drops into `rejects_by_reason`. image_files: image key -> every file name
    its sources know (see plan_samples). Chats whose image is missing are returned as rejects
    (`image_missing`), never silently dropped; when no chat's image is found at all, NoImagesError
    is raised before anything is written. Old shards of the same prefix and the old manifest are
    removed; out_dir ends with complete shards + dataset card (README.md) + manifest.
    """
    cfg = cfg or ShardConfig()
    out_dir = Path(out_dir)
    extra = dict(manifest_extra or {})
    build_config = scrub(extra.pop("build_config", None) or extra.pop("config", None) or {})

    planned, rejects = plan_samples(chats, image_root, cfg, image_files)
    if image_root is not None and not planned and rejects:
        check_images_found(Path(image_root), rejects)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = split_shards(planned, cfg)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    names = [f"{cfg.prefix}-{i:06d}.tar" for i in range(len(groups))]
    _clear(out_dir, cfg.prefix, set())
    entries = [_write_one(out_dir / n, g, cfg) for n, g in zip(names, groups, strict=True)]

    exts = sorted({"json"} | {image_ext(p.image.name) for p in planned if p.image is not None})
    by_source = Counter(src for p in planned for src in p.chat.sources)
    all_steps = {
        **(steps or {}),
        "shards": StepCounts(
            input=len(chats), output=sum(e.samples for e in entries), dropped=count_reasons(rejects)
        ),
    }
    manifest = Manifest(
        tool_version=unimm.__version__,
        prefix=cfg.prefix,
        extensions=exts,
        shards=entries,
        total_samples=sum(e.samples for e in entries),
        total_bytes=sum(e.bytes for e in entries),
        prompt_fingerprints=sorted({p.chat.generator.prompt_fingerprint for p in planned}),
        counts_by_source=dict(sorted(by_source.items())),
        generators=generator_uses(p.chat for p in planned),
        rounds_per_dialogue=rounds_per_dialogue(p.chat for p in planned),
        rejects_by_reason=rejected_by_reason(all_steps),
        steps=all_steps,
        shard_rejects=[ShardReject(id=r.id, image_key=r.image_key, reasons=r.reasons) for r in rejects],
        shard_config=cfg.model_dump(mode="json"),
        build_config=build_config,
        extra=scrub(extra),
    )
    write_card(out_dir, manifest)  # before the manifest: a folder with a manifest is complete
    with atomic_path(out_dir / MANIFEST_NAME) as tmp:
        tmp.write_text(manifest.to_json(), encoding="utf-8")
    return ShardResult(manifest, rejects)
