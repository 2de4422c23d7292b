"""``python -m bench``: the same as ``fraud-bench`` (also runs the harness's workers)."""

from bench.harness import main

raise SystemExit(main())
