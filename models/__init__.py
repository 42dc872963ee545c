"""Feature extractors, temporal encoders, heads and the pipeline: plain torch."""
