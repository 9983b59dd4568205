from unimm.cli import run

run()
