"""Feature extractors (per frame, or per clip for the video networks); importing
this package registers them."""

from models.feature_extractors import (
    cnn,
    landmark_encoders,
    landmarks,
    precomputed,
    video,
)  # noqa: F401  (registers them)
