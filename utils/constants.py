"""Constants shared by several floors, each defined once."""

#: The label of a sample without a label for a head: the loss and the metrics skip it.
IGNORE_INDEX = -100

#: Image files read as frames (case-insensitive suffixes).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

#: File name suffixes taken for videos when a folder is given (compared lower-case).
VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".3gp",
        ".ogv",
        ".ts",
        ".mts",
    }
)

#: What `predict.py --embedding_kind` writes per input.
EMBEDDING_KINDS = ("spatial", "temporal", "CLS", "probabilities")
