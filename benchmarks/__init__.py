"""Benchmarks of the data loader, training and prediction (`make bench`).

`python3 -m benchmarks.bench` measures and writes `benchmarks/results.json`; see
`benchmarks/README.md` for what each number means.
"""
