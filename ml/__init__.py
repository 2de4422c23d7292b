"""The runtime package: packages by lifecycle stage (training, validation, promotion,
scoring, monitoring) and the shared modules they use. Layout and rules: README.md
("Repository layout")."""
