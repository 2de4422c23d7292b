"""The per-customer models trained on gold.transaction_features (README "Models, scores
and explanations")."""
