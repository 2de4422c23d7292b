"""Real-time scoring (issue 13): online feature state, the request-time feature computation
that equals gold.transaction_risk_features, the champion/challenger model holder, the decision
log and the ``fraud-serve`` HTTP service. Serving may import scoring, never the reverse."""
