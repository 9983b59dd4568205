"""`python benchmarks/fullscale --out DIR [--scale full]` (or `python -m fullscale` from benchmarks/)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/, home of the package

from fullscale import main  # noqa: E402

if __name__ == "__main__":
    main()
