"""The transaction classifier: time-ordered split, model families, card precision@k, training
(README "The transaction classifier")."""
