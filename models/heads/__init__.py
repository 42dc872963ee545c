"""Head kinds, the named heads and the multi-head loss; importing this package
registers the head kinds."""

from models.heads.classification import (  # noqa: F401
    IGNORE_INDEX,
    MultiHeadClassifier,
    head_kind,
    weighted_multi_head_loss,
)
