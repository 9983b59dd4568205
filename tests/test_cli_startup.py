"""`unimm --help` (and every command's `--help`) must not import the heavy libraries or the stage
libraries: the command modules import those inside the commands that run them (issue 11)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = {
    "polars",
    "pyarrow",
    "numpy",
    "torch",
    "openai",
    "webdataset",
    "datasets",
    "matplotlib",
    "PIL",
    "msgspec",
    "rapidfuzz",
    "llama_cpp",
    "ray",
}
# what the command modules may import of unimm itself: the CLI, and the light modules their option
# defaults come from; any other unimm module is a stage library (pydantic models, polars, ...)
LIGHT_UNIMM = {"unimm", "unimm.cli", "unimm.errors", "unimm.sources", "unimm.workdir", "unimm.train"}

PROBE = textwrap.dedent(
    """
    import json, sys
    import typer
    from typer.testing import CliRunner
    from unimm.cli import app

    def loaded():
        heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
        stage = sorted(
            m for m in sys.modules
            if m.split(".")[0] == "unimm" and m not in LIGHT and not m.startswith("unimm.commands")
        )
        return {"heavy": heavy, "stage": stage, "pydantic": "pydantic" in sys.modules}

    runner = CliRunner()
    res = runner.invoke(app, ["--help"], prog_name="unimm")
    report = {"top": {"exit": res.exit_code, "usage": "Usage" in res.output, **loaded()}}

    def paths(cmd, prefix):
        subs = getattr(cmd, "commands", None)
        if not subs:
            yield prefix
        else:
            for name, sub in subs.items():
                yield from paths(sub, [*prefix, name])

    failed = {}
    for path in paths(typer.main.get_command(app), []):
        r = runner.invoke(app, [*path, "--help"], prog_name="unimm")
        if r.exit_code != 0 or "Usage" not in r.output:
            failed[" ".join(path)] = r.output[-500:]
    report["all"] = {"commands": len(list(paths(typer.main.get_command(app), []))), "failed": failed,
                     **loaded()}
    print(json.dumps(report))
    """
)


def _probe() -> dict:
    code = f"HEAVY = {sorted(HEAVY)!r}\nLIGHT = {sorted(LIGHT_UNIMM)!r}\n{PROBE}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_imports_no_heavy_module() -> None:
    rep = _probe()
    top, every = rep["top"], rep["all"]
    assert top["exit"] == 0 and top["usage"]
    assert top["heavy"] == [], f"`unimm --help` imported {top['heavy']}"
    assert top["stage"] == [], f"`unimm --help` imported stage libraries {top['stage']}"
    # `unimm --help` never parses an option value, so nothing imports pydantic (Typer does so for a
    # subcommand, to coerce values: that part is Typer's own, not checked below)
    assert not top["pydantic"], "`unimm --help` imported pydantic"
    assert every["commands"] >= 15 and every["failed"] == {}, every["failed"]
    assert every["heavy"] == [], f"`unimm CMD --help` imported {every['heavy']}"
    assert every["stage"] == [], f"`unimm CMD --help` imported stage libraries {every['stage']}"
