"""Validation of trained versions: the promotion gates and the metrics report
(``fraud-metrics``)."""
