"""A trained checkpoint at work: its pipeline, the evaluator and metrics of `test.py`,
and the inputs of `predict.py`. No Lightning."""
