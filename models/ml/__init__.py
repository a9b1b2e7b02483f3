"""Machine-learning models: features, labels, purged cross-validation, training, artifacts."""
