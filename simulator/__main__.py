"""``python -m simulator``: the same as ``fraud-generate``."""

from simulator.generate import main

raise SystemExit(main())
