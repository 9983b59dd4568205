"""Exports of verified shards, each in the layout its consumer reads unchanged.

| format | function | writes | consumer |
| --- | --- | --- | --- |
| `llava` | export_llava | JSON list + image folder | haotian-liu/LLaVA `LazySupervisedDataset` |
| `unimm-parquet` | export_unimm_parquet | Parquet with HF Features | Yirany/UniMM-Chat release, `datasets` |
| `muffin-tsv` | export_muffin_tsv | `*-<N>.tsv` + `.lineidx` folder | thunlp/Muffin `SingleDataSourceDataset` |
| `hf` | export_hf | `save_to_disk` folder | `datasets.load_from_disk` |

Every export checks the shards against manifest.json before writing and writes atomically: a
failed export leaves nothing behind. Each returns an ExportResult.
"""

from unimm.export.hf import chat_features, export_hf
from unimm.export.llava import default_images_dir, export_llava, llava_record
from unimm.export.muffin_tsv import export_muffin_tsv
from unimm.export.output import ExportResult
from unimm.export.samples import ExportSample, image_relpath, iter_shard_chats, iter_shard_samples
from unimm.export.turns import conversations, messages
from unimm.export.unimm_parquet import export_unimm_parquet, release_features

__all__ = [
    "ExportResult",
    "ExportSample",
    "chat_features",
    "conversations",
    "default_images_dir",
    "export_hf",
    "export_llava",
    "export_muffin_tsv",
    "export_unimm_parquet",
    "image_relpath",
    "iter_shard_chats",
    "iter_shard_samples",
    "llava_record",
    "messages",
    "release_features",
]
