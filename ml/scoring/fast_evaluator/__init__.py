"""A numba evaluator of fitted scikit-learn forests that gives scikit-learn's numbers
(within ``kernels.TOLERANCE``) faster; scoring checks it against scikit-learn before use
(README "Measured results")."""
