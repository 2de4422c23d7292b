"""The source-data simulator: deterministic synthetic card transactions, customers and
merchants as landing Parquet files (``fraud-generate``, ``make data``; README "The two
commands"). A tool, not part of the runtime package ``ml``."""
