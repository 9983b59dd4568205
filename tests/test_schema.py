from pathlib import Path

from unimm.commands.schema import schema_documents

from .conftest import REPO


def test_committed_schemas_match_models():
    """Fails when a model changes without `make schemas` (the committed files are the contract)."""
    for name, text in schema_documents().items():
        committed = REPO / "schemas" / name
        assert committed.exists(), f"{committed} missing: run `make schemas`"
        assert committed.read_text() == text, f"{committed} drifted from unimm.schema: run `make schemas`"


def test_schema_export_cli(cli, tmp_path: Path):
    r = cli("schema", "export", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(schema_documents())
