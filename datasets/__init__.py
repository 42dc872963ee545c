"""Annotations, the sign dataset, transforms, temporal sampling and the DataModule.

This package shadows Hugging Face's `datasets`; nothing in signpipe uses the latter.
"""
