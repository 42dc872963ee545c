"""Feature extractors, temporal encoders, heads, the pipeline and its training."""
