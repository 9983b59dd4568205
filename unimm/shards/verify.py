"""verify_shards: check a shard directory against its manifest."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from PIL import Image
from pydantic import BaseModel, ValidationError

from unimm.errors import UnimmError
from unimm.placeholder import IMAGE_PLACEHOLDER, placeholder_ok
from unimm.schema import KEY_PATTERN, ShardSample
from unimm.shards.manifest import Manifest, ShardEntry, read_manifest
from unimm.shards.read import TarFormatError, iter_tar_samples

IMAGE_EXTS = {"jpg", "jpeg", "png", "webp"}


class ShardVerifyError(UnimmError):
    """Shards disagree with their manifest or break the sample contract; lists every problem."""

    def __init__(self, shard_dir: Path, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:10]) + (
            f"; ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        )
        super().__init__(f"{shard_dir}: shard verification failed ({len(problems)} problems): {shown}")


class VerifyReport(BaseModel):
    shard_dir: str
    shards: int
    samples: int
    bytes: int
    images: int


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_file_problems(path: Path, entry: ShardEntry) -> list[str]:
    """Problems of one shard file against its manifest entry: missing, wrong size, wrong sha256."""
    if not path.is_file():
        return [f"{entry.name}: missing"]
    size = path.stat().st_size
    if size != entry.bytes:  # no need to hash: the size already says it is not the listed file
        return [f"{entry.name}: {size} bytes, manifest says {entry.bytes} (truncated or replaced)"]
    if _sha256(path) != entry.sha256:
        return [f"{entry.name}: sha256 differs from the manifest (changed since it was written)"]
    return []


def verified_manifest(shard_dir: Path) -> Manifest:
    """manifest.json of `shard_dir` once every shard it lists is present with the listed bytes and
    sha256; raises ShardVerifyError naming each bad shard. Cheaper than verify_shards (no decoding),
    and enough to trust what is read back."""
    shard_dir = Path(shard_dir)
    man = read_manifest(shard_dir)
    problems = [p for e in man.shards for p in shard_file_problems(shard_dir / e.name, e)]
    if problems:
        raise ShardVerifyError(shard_dir, problems)
    return man


def check_sample(key: str, members: dict[str, bytes], extensions: list[str]) -> list[str]:
    """Problems of one sample: key, member set, ShardSample JSON (id = key, one placeholder first),
    image decode."""
    out = []
    if not KEY_PATTERN.match(key):
        out.append(f"sample key {key!r} is not a safe key (no dots)")
    if sorted(members) != sorted(extensions):
        out.append(f"sample {key!r} has members {sorted(members)}, manifest says {extensions}")
    if "json" in members:
        try:
            sample = ShardSample.model_validate_json(members["json"])
        except ValidationError as e:
            err = e.errors()[0]
            out.append(f"sample {key!r} json field '{'.'.join(map(str, err['loc']))}': {err['msg']}")
        else:
            if sample.id != key:
                out.append(f"sample {key!r} json id is {sample.id!r}")
            if sample.turns[0].role != "user" or not placeholder_ok(sample.turns):
                out.append(
                    f"sample {key!r}: first user turn must start with the only {IMAGE_PLACEHOLDER} placeholder"
                )
    for ext in IMAGE_EXTS & set(members):
        try:
            with Image.open(io.BytesIO(members[ext])) as im:
                im.load()
        except Exception as e:  # PIL raises many types for broken data; any of them is a problem here
            out.append(f"sample {key!r} {ext} does not decode: {e}")
    return out


def verify_shards(shard_dir: Path) -> VerifyReport:
    """Check existence, bytes, sha256 and sample counts of every shard in manifest.json, read every
    sample (valid ShardSample JSON, safe key, same members, decodable image) and look for stray shards.
    Raises ShardVerifyError listing every problem; returns a summary when all is well."""
    shard_dir = Path(shard_dir)
    man = read_manifest(shard_dir)
    problems: list[str] = []
    listed = {e.name for e in man.shards}
    for stray in sorted(p.name for p in shard_dir.glob(f"{man.prefix}-*.tar") if p.name not in listed):
        problems.append(f"{stray}: shard not in the manifest")
    samples = images = 0
    for e in man.shards:
        path = shard_dir / e.name
        problems += shard_file_problems(path, e)
        if not path.is_file():
            continue
        n = 0
        try:
            for key, members in iter_tar_samples(path):
                n += 1
                images += bool(IMAGE_EXTS & set(members))
                problems += [f"{e.name}: {p}" for p in check_sample(key, members, man.extensions)]
        except (tarfile.TarError, TarFormatError, OSError) as err:
            problems.append(f"{e.name}: unreadable tar: {err}")
        if n != e.samples:
            problems.append(f"{e.name}: {n} samples, manifest says {e.samples}")
        samples += n
    if samples != man.total_samples:
        problems.append(f"{samples} samples in all, manifest says {man.total_samples}")
    if sum(e.bytes for e in man.shards) != man.total_bytes:
        problems.append("manifest total_bytes is not the sum of its shards")
    if problems:
        raise ShardVerifyError(shard_dir, problems)
    return VerifyReport(
        shard_dir=str(shard_dir),
        shards=len(man.shards),
        samples=samples,
        bytes=man.total_bytes,
        images=images,
    )
