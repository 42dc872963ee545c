"""Per-frame feature extractors; importing this package registers them."""

from models.feature_extractors import cnn  # noqa: F401  (registers the extractors)
