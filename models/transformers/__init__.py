"""Temporal encoders; importing this package registers them."""

from models.transformers import hubert, sign_language_transformer  # noqa: F401
