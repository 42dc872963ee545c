"""Head kinds, the named heads and the multi-head loss; importing this package
registers the head kinds."""

from models.heads.classification import (  # noqa: F401
    IGNORE_INDEX,
    MultiHeadClassifier,
    head_kind,
    weighted_multi_head_loss,
)
from models.heads import ctc, t5  # noqa: F401  pylint: disable=unused-import
