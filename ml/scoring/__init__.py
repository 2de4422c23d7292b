"""Batch scoring of gold.fraud_scores: which version (``selection``), scores and reason
codes (``batch``, ``reason_codes``), the compiled evaluator (``fast_evaluator``) and the
prediction-log format (``prediction_log``). A real-time server would be a sibling package
(``ml/serving/``) reusing ``selection`` and ``fast_evaluator``."""
