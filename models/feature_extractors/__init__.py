"""Per-frame feature extractors; importing this package registers them."""

from models.feature_extractors import (
    cnn,
    landmark_encoders,
    landmarks,
)  # noqa: F401  (registers them)
