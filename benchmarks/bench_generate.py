"""Completion tokens/s of unimm's `local` backend against raw llama.cpp on the same model,
prompts, max tokens and seed (both constrained by the same JSON-schema grammar), in one run.

Target: unimm keeps >= 90% of the raw throughput. Also reports the share of responses that
validated as a DialogueResponse. Writes the `generate` section of docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine_line, update_section  # noqa: E402
from unimm.generate import GenerateConfig, generate_chats  # noqa: E402
from unimm.generate.local import embedded_gguf, load_llama, schema_grammar  # noqa: E402
from unimm.generate.parse import OutputError, parse_response  # noqa: E402
from unimm.generate.prompts import prompt_set_for, record_budget  # noqa: E402
from unimm.schema import MergedImage  # noqa: E402

N_RECORDS = 6
MAX_TOKENS = 128
ROUNDS = 2
SCENES = [
    ("A dog lying on a brown couch next to a remote.", "What color is the couch?", "brown", "a black dog"),
    ("Two cats sleeping on a bed.", "How many cats are there?", "2", "striped pillow"),
    ("A red double-decker bus on a city street.", "What color is the bus?", "red", "bus window"),
    ("A man riding a horse on a beach.", "What animal is the man riding?", "horse", "waves on the shore"),
    ("A plate of pasta on a wooden table.", "What food is this?", "pasta", "fork on a plate"),
    ("A sailboat on a calm lake at sunset.", "What time of day is it?", "sunset", "white sail"),
]


def bench_records() -> list[MergedImage]:
    out = []
    for i, (cap, q, a, region) in enumerate(SCENES[:N_RECORDS]):
        out.append(
            MergedImage.model_validate(
                {
                    "image_key": f"coco_{i:012d}",
                    "width": 640,
                    "height": 480,
                    "sources": ["coco", "vg", "vqav2"],
                    "captions": [{"sources": ["coco"], "source_ids": [f"c{i}"], "text": cap}],
                    "qas": [{"sources": ["vqav2"], "source_ids": [f"q{i}"], "question": q, "answer": a}],
                    "regions": [
                        {
                            "sources": ["vg"],
                            "source_ids": [f"r{i}"],
                            "text": region,
                            "bbox": [0.2, 0.3, 0.3, 0.2],
                        }
                    ],
                }
            )
        )
    return out


def run_raw(cfg: GenerateConfig, records: list[MergedImage]) -> tuple[int, float, int]:
    """llama.cpp called directly in a loop: completion tokens, wall seconds, valid responses."""
    prompts = prompt_set_for(cfg)
    budget = record_budget(cfg, prompts)
    t0 = time.perf_counter()
    llm = load_llama(embedded_gguf(), cfg.n_ctx, cfg.threads(), cfg.seed)
    grammar = schema_grammar()
    tokens = valid = 0
    for rec in records:
        out = llm.create_chat_completion(
            messages=prompts.messages(rec, budget),
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=cfg.seed,
            grammar=grammar,
        )
        tokens += out["usage"]["completion_tokens"]
        try:
            parse_response(out["choices"][0]["message"]["content"], out["choices"][0]["finish_reason"])
            valid += 1
        except OutputError:
            pass
    wall = time.perf_counter() - t0
    llm.close()
    return tokens, wall, valid


def run_unimm(cfg: GenerateConfig, records: list[MergedImage]) -> tuple[int, float, int]:
    """The same work through generate_chats (fresh cache, no retries so request counts match)."""
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = generate_chats(records, cfg, Path(d))
        wall = time.perf_counter() - t0
    return res.summary.completion_tokens, wall, len(res.chats)


def main() -> None:
    cfg = GenerateConfig(backend="local", max_tokens=MAX_TOKENS, n_ctx=2048, invalid_retries=0, seed=0)
    records = bench_records()
    totals = {"raw": [0, 0.0, 0], "unimm": [0, 0.0, 0]}
    for _ in range(ROUNDS):  # alternate so background load hits both sides alike
        for name, fn in (("raw", run_raw), ("unimm", run_unimm)):
            tok, wall, valid = fn(cfg, records)
            totals[name][0] += tok
            totals[name][1] += wall
            totals[name][2] += valid
    n = ROUNDS * len(records)
    raw_tps = totals["raw"][0] / totals["raw"][1]
    unimm_tps = totals["unimm"][0] / totals["unimm"][1]
    ratio = unimm_tps / raw_tps
    md = "\n".join(
        [
            "## generate: local backend vs raw llama.cpp",
            "",
            f"Machine: {machine_line()}. Model: SmolLM2-135M-Instruct Q4_1 (embedded GGUF), n_ctx 2048, "
            f"max_tokens {MAX_TOKENS}, seed 0, JSON-schema grammar on both sides; {len(records)} records x {ROUNDS} rounds "
            "(model load included on both sides).",
            "",
            "| path | requests | completion tokens | wall s | tok/s | valid dialogues |",
            "|---|---:|---:|---:|---:|---:|",
            f"| raw `Llama.create_chat_completion` loop | {n} | {totals['raw'][0]} | {totals['raw'][1]:.1f} | {raw_tps:.1f} | {totals['raw'][2]}/{n} |",
            f"| unimm `generate_chats` (local) | {n} | {totals['unimm'][0]} | {totals['unimm'][1]:.1f} | {unimm_tps:.1f} | {totals['unimm'][2]}/{n} |",
            "",
            f"unimm / raw throughput: **{ratio:.1%}** (target >= 90%).",
        ]
    )
    print(md)
    update_section("generate", md)


if __name__ == "__main__":
    main()
