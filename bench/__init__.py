"""The benchmark harness (``fraud-bench``, ``make bench``; README "Benchmark (`make bench`)"):
measures the project against a notebook, a one-query limit (limit_query.sql) and the targets
in targets.yml. A tool, not part of the runtime package ``ml``."""
