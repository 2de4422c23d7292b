"""Training: one sub-package per kind of model (``customer_models``: the per-customer
IsolationForest and RandomForest) and the dbt entry point of the training models.
A new model family (e.g. transaction-level) gets its own sub-package beside
``customer_models`` and a line in ``dbt_entry._TRAINERS``."""
