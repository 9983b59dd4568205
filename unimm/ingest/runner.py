"""`run_ingest`: read the requested sources (optionally in parallel processes) and publish their
tables all together or not at all.

Each source writes its two tables to temporary files beside their final names; only when every
requested source has succeeded are they renamed into place, so a failed run leaves the previous
outputs untouched and no partial file behind.

Memory: a source runs in its own fresh process when `jobs > 1` (one task per process, so its
memory is returned to the OS when it ends). Sources are started largest input first so the two
biggest (VG, VQAv2) are not left to run alone at the end. At full size VG peaks near 2.3 GB and
VQAv2 near 1.2 GB, which keeps `--jobs 2` within a 4 GB budget; use `--jobs 1` on smaller hosts.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from unimm.errors import InputError, MissingFilesError, UnimmError
from unimm.ingest.base import IngestResult, kind_counts
from unimm.ingest.registry import INGESTERS, check_inputs
from unimm.sources import parse_sources
from unimm.workdir import ingest_images, ingest_table, temp_path

# below this much JSON, starting worker processes costs more than it saves
_PARALLEL_MIN_BYTES = 32 * 2**20
DEFAULT_MEMORY_BUDGET = 4 * 2**30


@dataclass
class _Staged:
    result: IngestResult
    tmp_table: Path
    tmp_images: Path


def _ingest_one(name: str, data_root: Path, tmp_table: Path, tmp_images: Path, work: Path) -> _Staged:
    """Read one source and write its tables to the given temporary paths."""
    t0 = time.perf_counter()
    tables = INGESTERS[name].read(Path(data_root))
    tmp_table.parent.mkdir(parents=True, exist_ok=True)
    try:
        tables.annotations.write_parquet(tmp_table, compression="zstd", statistics=True)
        tables.images.write_parquet(tmp_images, compression="zstd", statistics=True)
    except BaseException:
        tmp_table.unlink(missing_ok=True)
        tmp_images.unlink(missing_ok=True)
        raise
    result = IngestResult(
        source=name,
        files=tables.files,
        images=tables.images.height,
        annotations=kind_counts(tables.annotations),
        seconds=round(time.perf_counter() - t0, 3),
        table=str(ingest_table(work, name)),
        images_table=str(ingest_images(work, name)),
    )
    return _Staged(result, tmp_table, tmp_images)


def _worker(name: str, data_root: str, tmp_table: str, tmp_images: str, work: str) -> tuple[str, object]:
    """Process-pool entry: UnimmErrors travel back as plain data (their constructors are keyword-rich)."""
    try:
        return "ok", _ingest_one(name, Path(data_root), Path(tmp_table), Path(tmp_images), Path(work))
    except InputError as e:
        return "input", (e.file, e.message, e.record, e.field)
    except MissingFilesError as e:
        return "missing", e.missing
    except UnimmError as e:
        return "unimm", str(e)


def _rebuild(kind: str, payload: object) -> _Staged:
    if kind == "ok":
        assert isinstance(payload, _Staged)
        return payload
    if kind == "input":
        file, message, record, field = payload  # type: ignore[misc]
        raise InputError(file, message, record=record, field=field)
    if kind == "missing":
        raise MissingFilesError(payload)  # type: ignore[arg-type]
    raise UnimmError(str(payload))


def _estimated_peak(input_bytes: int) -> int:
    """Peak RSS of one worker: measured ~3x the JSON it decodes (VG full size: 0.8 GB -> 2.4 GB) + runtime."""
    return 3 * input_bytes + 250 * 2**20


def _input_bytes(name: str, data_root: Path) -> int:
    return sum((data_root / f.path).stat().st_size for f in INGESTERS[name]._present(data_root))


def run_ingest(
    data_root: Path,
    work: Path,
    sources: list[str],
    jobs: int = 2,
    progress: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_done: Callable[[IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest `sources` from `data_root` into `work/ingest/`; all tables appear together or none.

    Raises MissingFilesError before reading anything if a source lacks files, InputError on bad
    input (nothing written). With `jobs > 1`, sources run in worker processes, a new one starting
    only while the estimated peak RSS of those running stays within `memory_budget` bytes.
    `on_done` is called in the parent as each source finishes.
    """
    data_root, work = Path(data_root), Path(work)
    names = parse_sources(list(sources))
    check_inputs(data_root, names)
    sizes = {n: _input_bytes(n, data_root) for n in names}
    names = sorted(names, key=lambda n: -sizes[n])
    tmps = {n: (temp_path(ingest_table(work, n)), temp_path(ingest_images(work, n))) for n in names}
    (work / "ingest").mkdir(parents=True, exist_ok=True)
    staged: dict[str, _Staged] = {}
    errors: dict[str, BaseException] = {}
    bar = _progress(progress)
    try:
        with bar if bar is not None else nullcontext():
            tasks = {n: bar.add_task(n, total=1, start=False) for n in names} if bar is not None else {}

            def finished(name: str, outcome: Callable[[], _Staged]) -> None:
                try:
                    staged[name] = outcome()
                except BaseException as e:  # kept and re-raised below, after every worker has stopped
                    errors[name] = e
                    if bar is not None:
                        bar.update(tasks[name], description=f"{name} [red]failed[/]", completed=1)
                    return
                if bar is not None:
                    r = staged[name].result
                    bar.update(tasks[name], description=f"{name} [green]{r.total:,} rows[/]", completed=1)
                if on_done is not None:
                    on_done(staged[name].result)

            if jobs <= 1 or len(names) <= 1 or sum(sizes.values()) < _PARALLEL_MIN_BYTES:
                for n in names:
                    if bar is not None:
                        bar.start_task(tasks[n])
                    finished(n, lambda n=n: _ingest_one(n, data_root, *tmps[n], work))
                    if errors:
                        break
            else:
                ctx = multiprocessing.get_context("spawn")  # polars' thread pool does not survive fork
                with ProcessPoolExecutor(
                    max_workers=min(jobs, len(names)), mp_context=ctx, max_tasks_per_child=1
                ) as pool:
                    pending = list(names)
                    running: dict[Future, str] = {}
                    while pending or running:
                        # admit the next source only while the estimated peaks of those running fit the budget
                        while pending and len(running) < jobs and not errors:
                            load = sum(_estimated_peak(sizes[n]) for n in running.values())
                            if running and load + _estimated_peak(sizes[pending[0]]) > memory_budget:
                                break
                            n = pending.pop(0)
                            running[
                                pool.submit(_worker, n, str(data_root), *map(str, tmps[n]), str(work))
                            ] = n
                            if bar is not None:
                                bar.start_task(tasks[n])
                        if not running:
                            break
                        done, _ = wait(running, return_when=FIRST_COMPLETED)
                        for fut in done:
                            finished(running.pop(fut), lambda fut=fut: _rebuild(*fut.result()))
        if errors:
            raise errors[next(n for n in names if n in errors)]
        for n in names:
            os.replace(staged[n].tmp_table, ingest_table(work, n))
            os.replace(staged[n].tmp_images, ingest_images(work, n))
    finally:
        for a, b in tmps.values():
            a.unlink(missing_ok=True)
            b.unlink(missing_ok=True)
    order = {n: i for i, n in enumerate(parse_sources(list(sources)))}
    return sorted((s.result for s in staged.values()), key=lambda r: order[r.source])


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("ingest {task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
