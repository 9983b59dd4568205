"""Errors a user can act on. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from pathlib import Path


def _restore(cls: type, args: tuple, state: dict) -> Exception:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class UnimmError(Exception):
    """Base for every error the CLI reports as one clear line (exit status 2)."""

    exit_code = 2

    def __reduce__(self) -> tuple:
        # Errors cross process boundaries (worker processes, Ray tasks) whole: their constructors
        # take other arguments than `args`, so they are rebuilt from their attributes.
        return (_restore, (type(self), self.args, self.__dict__))


class InputError(UnimmError):
    """Bad input: names the file, the record index and the field where known."""

    def __init__(
        self, file: str | Path, message: str, *, record: int | str | None = None, field: str | None = None
    ) -> None:
        self.file = str(file)
        self.record = record
        self.field = field
        self.message = message
        where = [self.file]
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(": ".join(where) + f": {message}")


class MissingFilesError(UnimmError):
    """Expected source files are absent; lists each one and where it is officially published."""

    def __init__(self, missing: list[tuple[str, str]]) -> None:
        self.missing = missing
        lines = [f"{path} (published at {url})" for path, url in missing]
        super().__init__("missing input files: " + "; ".join(lines))


class ConfigError(UnimmError):
    """A pipeline config or option that cannot work as given."""


class MissingStageOutputError(UnimmError):
    """A stage was asked to run before the stage it reads from."""

    def __init__(self, path: str | Path, needs: str) -> None:
        super().__init__(f"{path} not found: run `{needs}` first")


class IncompleteError(UnimmError):
    """A run that did all it could but is not finished (e.g. the LLM server was unreachable for
    some requests). Everything received is kept; rerunning the same command retries the rest."""

    exit_code = 3


class WorkDirBusyError(UnimmError):
    """Another process holds the work directory's lock; names it and since when."""

    def __init__(self, work: str | Path, holder: dict) -> None:
        self.work = str(work)
        self.holder = holder
        if holder.get("pid"):
            who = (
                f"pid {holder['pid']} on {holder.get('host', '?')} since {holder.get('since', '?')}"
                f" ({holder.get('command', '?')})"
            )
        else:
            who = "another process (it has not recorded itself yet)"
        super().__init__(f"work directory {self.work} is in use by {who}; wait for it to finish or stop it")
