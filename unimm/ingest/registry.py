"""Name -> ingester object, and the up-front check that every requested source has its files."""

from __future__ import annotations

from pathlib import Path

from unimm.errors import MissingFilesError
from unimm.ingest.aokvqa import AokvqaIngester
from unimm.ingest.base import Ingester
from unimm.ingest.coco import CocoIngester
from unimm.ingest.vg import VgIngester
from unimm.ingest.visdial import VisdialIngester
from unimm.ingest.vqa import OkvqaIngester, Vqav2Ingester

INGESTERS: dict[str, Ingester] = {
    i.name: i
    for i in (
        CocoIngester(),
        Vqav2Ingester(),
        OkvqaIngester(),
        AokvqaIngester(),
        VgIngester(),
        VisdialIngester(),
    )
}


def check_inputs(data_root: Path, sources: list[str]) -> None:
    """Raise MissingFilesError listing every file (and its archive URL) a requested source still needs."""
    from unimm.sources import parse_sources

    missing: list[tuple[str, str]] = []
    for name in parse_sources(list(sources)):
        missing += INGESTERS[name].missing(Path(data_root))
    if missing:
        raise MissingFilesError(missing)


def present_sources(data_root: Path) -> list[str]:
    """Sources whose folder exists under the data root, in canonical order."""
    return [name for name in INGESTERS if (Path(data_root) / name).is_dir()]
