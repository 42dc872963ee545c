"""Samples, decoding, temporal sampling, transforms, the sign dataset and the split.

Plain torch. This package shadows Hugging Face's `datasets`; nothing in signpipe uses
the latter.
"""
