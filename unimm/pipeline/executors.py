"""Executors run units of work: `local` (this process, or a pool of processes sized to the machine)
and `ray` (tasks on a Ray cluster). Both run the same task body, `run_task`, so their outputs are
the same bytes; the work directory must be reachable from every worker (a shared file system on a
cluster).

A task is a chain of steps for one unit (e.g. generate -> filter -> dedup_sign for partition
00003): one partition flows through its steps without waiting for the others.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import NamedTuple, Protocol

from unimm.errors import ConfigError, UnimmError
from unimm.pipeline.step import Context, Outcome
from unimm.procexit import end_process


class Task(NamedTuple):
    """Steps (in order) to run for one unit, and the estimated peak memory of the first."""

    steps: list[str]
    unit: str
    memory: int = 0


class TaskError(NamedTuple):
    """A task that raised a user-facing error, carried back as a value (never lost in a pool)."""

    outcomes: list[Outcome]
    error: UnimmError


def run_task(ctx: Context, task: Task) -> list[Outcome] | TaskError:
    """Run `task.steps` for `task.unit` in order, stopping after a unit that could not finish."""
    from unimm import handoff
    from unimm.pipeline.steps import BY_NAME

    outcomes: list[Outcome] = []
    try:
        for name in task.steps:
            outcome = BY_NAME[name].execute(ctx, task.unit, ctx.fps[f"{name}/{task.unit}"])
            outcomes.append(outcome)
            if outcome.status == "incomplete":
                break
    except UnimmError as e:
        return TaskError(outcomes, e)
    finally:
        handoff.forget()  # the partition's records and dialogues served its chain; free them
    return outcomes


class Executor(Protocol):
    def run(
        self, ctx: Context, tasks: list[Task], spread: bool = True, uneven: bool = False
    ) -> Iterator[list[Outcome] | TaskError]:
        """Run every task (`spread`: worth spreading over processes; `uneven`: units differ
        several-fold in size, so the largest ends up running alone); yield each one's result as
        it finishes."""
        ...


def machine_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# polars' allocator (jemalloc) returns freed pages to the system within a second (polars writes
# `dirty_decay_ms:500,muzzy_decay_ms:1000` into `_RJEM_MALLOC_CONF` on import), and the next
# table faults them in again: merge spent 2.9 of its 18 CPU-s in the kernel on 1.4M page faults.
# Workers keep freed pages 10 s: 1.4 CPU-s, 0.6M faults, ~60 MB more peak per worker. Not when
# units differ several-fold (ingest): the worker that ran VG's regions would hold their pages
# while it goes on with small units (ingest peak 2.75 -> 3.13 GB). jemalloc takes the last value
# of a repeated option and polars appends a user's own setting to its default, so a decay the
# user chose shows up twice.
_DECAY = ("dirty_decay_ms", "muzzy_decay_ms")
_KEEP_PAGES = ",".join(f"{name}:10000" for name in _DECAY)


def _allocator_conf() -> str:
    conf = os.environ.get("_RJEM_MALLOC_CONF", "")
    if any(conf.count(name) > 1 for name in _DECAY):
        return conf
    return f"{conf},{_KEEP_PAGES}" if conf else _KEEP_PAGES


@contextlib.contextmanager
def _child_env(threads: int, keep_pages: bool) -> Iterator[None]:
    """Processes spawned meanwhile size polars' thread pool to `threads` (each would start one
    thread per core: the workers' threads would then contend for them) and, with `keep_pages`,
    keep freed pages for reuse; what the user set wins."""
    before = {name: os.environ.get(name) for name in ("POLARS_MAX_THREADS", "_RJEM_MALLOC_CONF")}
    os.environ.setdefault("POLARS_MAX_THREADS", str(threads))
    if keep_pages:
        os.environ["_RJEM_MALLOC_CONF"] = _allocator_conf()
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _exit_without_teardown() -> None:
    """Pool initializer: the worker ends without tearing its interpreter down (`procexit`), once
    its results are delivered; the command waited ~0.2 s for ingest's workers to free their heaps."""
    # atexit runs the last registered first: handlers a unit registers still run; those of the
    # modules imported before (multiprocessing's, which the worker's bootstrap has already run)
    # are skipped with the teardown
    atexit.register(end_process, 0)


class LocalExecutor:
    """Tasks in this process when one at a time would do, else in a pool of fresh processes
    (spawned: polars' thread pool does not survive fork), admitting a task only while the
    estimated peaks of those running fit `memory_budget` bytes."""

    def __init__(self, workers: int | None, memory_budget: int) -> None:
        self.workers = workers or machine_workers()
        self.memory_budget = memory_budget

    def run(
        self, ctx: Context, tasks: list[Task], spread: bool = True, uneven: bool = False
    ) -> Iterator[list[Outcome] | TaskError]:
        if self.workers <= 1 or len(tasks) <= 1 or not spread:
            for task in tasks:
                result = run_task(ctx, task)
                yield result
                if isinstance(result, TaskError):
                    return
            return
        # Progress bars of several processes would overwrite each other.
        quiet = dataclasses.replace(ctx, progress=False)
        pending = sorted(tasks, key=lambda t: -t.memory)  # the largest first, not left to run alone
        pool_ctx = multiprocessing.get_context("spawn")
        workers = min(self.workers, len(tasks))
        # Uneven units: the largest's last stretch runs alone, so each worker may use every core
        # (ingest: VG's table work then uses the core VQAv2 and COCO left idle, 13.4 -> 12.4 s;
        # even units would only contend for the cores).
        threads = machine_workers() if uneven else max(1, machine_workers() // workers)
        # A worker runs unit after unit: a unit leaves its memory to the allocators, which give
        # it back (see _DECAY; a chain drops its partition's records, `handoff.forget`), and a
        # fresh process per unit cost ~1 s of imports each (ingest: VG's parts and COCO waited
        # ~3 s for them; the full-scale build's peak stayed at 3.0 GB with shared workers).
        with (
            _child_env(threads, keep_pages=not uneven),
            ProcessPoolExecutor(
                max_workers=workers, mp_context=pool_ctx, initializer=_exit_without_teardown
            ) as pool,
        ):
            running: dict[Future, Task] = {}
            failed = False
            while pending or running:
                while pending and len(running) < self.workers and not failed:
                    load = sum(t.memory for t in running.values())
                    if running and load + pending[0].memory > self.memory_budget:
                        break
                    task = pending.pop(0)
                    running[pool.submit(run_task, quiet, task)] = task
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    running.pop(fut)
                    result = fut.result()
                    failed = failed or isinstance(result, TaskError)
                    yield result


class RayExecutor:
    """Each task a Ray task (one CPU, its memory estimate reserved) on the cluster at `address`
    (`auto`: the one `ray start` runs here; None: a local instance, or the one already joined)."""

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'unimm[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)

    def run(
        self, ctx: Context, tasks: list[Task], spread: bool = True, uneven: bool = False
    ) -> Iterator[list[Outcome] | TaskError]:
        ray = self.ray
        remote = ray.remote(run_task)
        quiet = dataclasses.replace(ctx, progress=False)
        ctx_ref = ray.put(quiet)
        refs = [
            remote.options(num_cpus=1, memory=t.memory or None, max_retries=0).remote(ctx_ref, t)
            for t in tasks
        ]
        while refs:
            done, refs = ray.wait(refs, num_returns=1)
            yield ray.get(done[0])


def make_executor(kind: str, workers: int | None, memory_gb: float, ray_address: str | None) -> Executor:
    """The executor a config names."""
    if kind == "ray":
        return RayExecutor(ray_address)
    return LocalExecutor(workers, int(memory_gb * 2**30))
