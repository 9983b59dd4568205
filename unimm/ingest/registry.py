"""Name -> ingester object (the up-front check of a source's files is `unimm.ingest.inputs`)."""

from __future__ import annotations

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
