"""Classification heads and the multi-head loss."""

from models.heads.classification import (  # noqa: F401
    IGNORE_INDEX,
    MultiHeadClassifier,
    weighted_multi_head_loss,
)
