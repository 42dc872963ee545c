"""Precomputed features in the SSVP-SLT layout: its manifests -> annotation rows, its
feature files -> `(N, D)` rows, for the `precomputed` extractor.

A root in this layout::

    ROOT/manifests/{train,val,test}_features.tsv   (or one all_features.tsv)
    ROOT/features/0/<video_name[:5]>/<video_name without its suffix>.pt

A manifest line is `video_name<TAB>length<TAB>label`: `length` is the rows of the
clip's feature file, `label` its sentence, the label of the config's first text
head. An optional header line starting `video_name` may name more columns: the
labels of the heads they are named after (a sequence head's cells `27+82+5`, see
`utils.labels`), `split` and `signer`. A file's rows are its split; without
`val_features.tsv` the train rows are split into train and val as any unsplit rows
are (`datasets.sign_data`), and so are the rows of `all_features.tsv` without a
`split` column.

A feature file holds one tensor, `(N, D)` or `(D,)` (one row), of any float type
(float16 too). Unlike SSVP-SLT, which skips bad lines, every bad line is an error
naming `file:line`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from config.registry import EXTRACTOR_FACTS, model_settings
from config.schema import AnnotationSource, SignpipeConfig
from utils.annotations import (
    MAX_REPORTED,
    SPLITS,
    AnnotationRow,
    check_sample_name,
    normalise_title,
    resolve_title,
)
from utils.errors import ConfigError, DataError
from utils.files import NOT_FOUND, describe_load_error, path_problem, read_text
from utils.labels import Label, missing_label, parse_cell

MANIFESTS = "manifests"
FEATURES = "features"
MANIFEST_SUFFIX = "_features.tsv"
#: The manifest of every split at once (its rows split as unsplit rows are).
ALL_SPLITS = "all"
#: The first columns of every manifest, as its header names them.
COLUMNS = ("video_name", "length", "label")
LAYOUT = (
    "manifests/<split>_features.tsv (video_name<TAB>length<TAB>label) and "
    "features/0/<video_name[:5]>/<video_name>.pt"
)


def is_ssvp_root(root: str | Path) -> bool:
    """Whether `root` is in the SSVP-SLT feature layout: a `manifests/` folder
    holding `*_features.tsv` files, and a `features/` folder."""
    root = Path(root)
    manifests = root / MANIFESTS
    return (
        manifests.is_dir()
        and (root / FEATURES).is_dir()
        and any(manifests.glob(f"*{MANIFEST_SUFFIX}"))
    )


def feature_path(root: Path, video_name: str) -> Path:
    """Where SSVP-SLT keeps the features of a manifest's `video_name`."""
    stem = os.path.splitext(video_name)[0]
    return root / FEATURES / "0" / video_name[:5] / f"{stem}.pt"


def check_ssvp_root(
    config: SignpipeConfig, root: Path, annotation_file: AnnotationSource
) -> None:
    """Refuse a root that does not fit the config's extractor: an SSVP-SLT root
    without an extractor of precomputed features, or such an extractor on another
    root; and an `annotation_file` for an SSVP-SLT root.

    Raises:
        ConfigError: saying which and what to set.
    """
    name = config.feature_extractor.name
    if not is_ssvp_root(root):
        manifests = root / MANIFESTS
        lacks = (
            f"has no {FEATURES}/ folder"
            if manifests.is_dir() and any(manifests.glob(f"*{MANIFEST_SUFFIX}"))
            else f"has no {MANIFESTS}/*{MANIFEST_SUFFIX}"
        )
        raise ConfigError(
            f"general_parameters.data_path: {root} {lacks}, but feature_extractor."
            f"name {name} reads precomputed features in the SSVP-SLT layout "
            f"({LAYOUT}); point data_path at such a root, or choose an extractor "
            "of frames or landmarks for this one"
        )
    if not config.uses_features():
        raise ConfigError(
            f"feature_extractor.name: {name} reads frames or landmarks, but "
            f"general_parameters.data_path {root} holds precomputed features in the "
            "SSVP-SLT layout; set feature_extractor.name: precomputed and "
            "feature_extractor.feature_dim: the width of its feature rows"
        )
    if annotation_file is not None:
        raise ConfigError(
            f"general_parameters.annotation_file: {root} is an SSVP-SLT feature root, "
            f"whose {MANIFESTS}/*{MANIFEST_SUFFIX} hold the labels; set "
            "annotation_file: null for it"
        )


def read_ssvp_root(
    config: SignpipeConfig, root: Path, annotation_file: AnnotationSource
) -> list[AnnotationRow]:
    """The rows of an SSVP-SLT root for the config's active heads, after
    `check_ssvp_root` (which refuses a root that does not fit the extractor)."""
    check_ssvp_root(config, root, annotation_file)
    return read_ssvp_rows(root, config.head_labels())


def manifest_files(root: Path) -> dict[str, Path]:
    """The manifests of a root by their prefix (`train`, `val`, `test`, `all`).

    Raises:
        DataError: a manifest of another name, or `all_features.tsv` beside the
            files of single splits.
    """
    found = {
        path.name[: -len(MANIFEST_SUFFIX)]: path
        for path in sorted((root / MANIFESTS).glob(f"*{MANIFEST_SUFFIX}"))
    }
    for prefix, path in found.items():
        if prefix not in (*SPLITS, ALL_SPLITS):
            raise DataError(
                f"{path}: not a manifest name of the SSVP-SLT layout; name the files "
                f"{', '.join(f'{s}{MANIFEST_SUFFIX}' for s in SPLITS)} (or one "
                f"{ALL_SPLITS}{MANIFEST_SUFFIX})"
            )
    if ALL_SPLITS in found and len(found) > 1:
        raise DataError(
            f"{found[ALL_SPLITS]}: holds every split, but {root / MANIFESTS} also "
            "holds manifests of single splits; keep one or the other"
        )
    return found


def _header_columns(
    header: list[str], kinds: dict[str, str], text_head: str | None, where: str
) -> dict[str, int]:
    """Head (and `split`, `signer`) -> its column in a manifest with this header."""
    if [normalise_title(title) for title in header[:3]] != list(COLUMNS):
        raise DataError(
            f"{where}: a header starts with {', '.join(COLUMNS)} (tab-separated); "
            f"found {', '.join(header[:3])}"
        )
    titles = [resolve_title(title) for title in header[3:]]
    twice = sorted({title for title in titles if titles.count(title) > 1})
    if twice:
        raise DataError(f"{where}: column {twice[0]!r} appears twice")
    if text_head in titles:
        raise DataError(
            f"{where}: column {text_head!r} names the first text head, whose label "
            "is the label column already"
        )
    columns = {title: 3 + index for index, title in enumerate(titles)}
    columns = {
        key: index
        for key, index in columns.items()
        if key in kinds or key in ("split", "signer")
    }
    if text_head is not None:
        columns[text_head] = 2
    return columns


def _parse_line(  # pylint: disable=too-many-arguments
    cells: list[str],
    columns: dict[str, int],
    width: int,
    kinds: dict[str, str],
    where: str,
    root: Path,
) -> AnnotationRow:
    """One manifest line as an annotation row (its split as its cells say)."""
    if len(cells) != width:
        raise DataError(
            f"{where}: {len(cells)} tab-separated cells, but the manifest has "
            f"{width} columns ({', '.join(COLUMNS)}, then the header's)"
        )
    video_name, length = cells[0].strip(), cells[1].strip()
    check_sample_name(video_name, where)
    if not length.isdigit() or int(length) == 0:
        raise DataError(
            f"{where}: length {length!r} is not a row count (a whole number > 0)"
        )
    labels: dict[str, Label] = {
        head: parse_cell(cells[columns[head]], head, kind, where)
        for head, kind in kinds.items()
        if head in columns
    }
    split = cells[columns["split"]].strip().lower() if "split" in columns else ""
    if split and split not in SPLITS:
        raise DataError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
    signer = cells[columns["signer"]].strip() if "signer" in columns else ""
    return AnnotationRow(
        os.path.splitext(video_name)[0],
        0,
        int(length) - 1,
        labels,
        where,
        split or None,
        signer or None,
        features=feature_path(root, video_name),
    )


def _read_manifest(
    path: Path, root: Path, kinds: dict[str, str], split: str | None
) -> tuple[list[AnnotationRow], list[str]]:
    """The rows of one manifest and its bad lines (`file:line: why`); a row's split
    is `split` unless its `split` cell gives one (which must agree)."""
    text_head = next((head for head, kind in kinds.items() if kind == "text"), None)
    lines = [
        (number, line.split("\t"))
        for number, line in enumerate(read_text(path, "manifest").splitlines(), 1)
        if line.strip()
    ]
    columns = {} if text_head is None else {text_head: 2}
    width = len(COLUMNS)
    if lines and normalise_title(lines[0][1][0]) == COLUMNS[0]:
        number, header = lines.pop(0)
        columns = _header_columns(header, kinds, text_head, f"{path}:{number}")
        width = len(header)
    unread = [head for head in kinds if head not in columns]
    if unread:
        raise DataError(
            f"{path}: no column for head {', '.join(unread)}; the label column is the "
            "first text head's, and a header (video_name<TAB>length<TAB>label<TAB>"
            "<head>...) names the columns of the others"
        )
    rows, errors = [], []
    for number, cells in lines:
        where = f"{path}:{number}"
        try:
            row = _parse_line(cells, columns, width, kinds, where, root)
            if split is not None and row.split not in (None, split):
                raise DataError(
                    f"{where}: split column says {row.split!r}, but the row is in the "
                    f"{split} manifest"
                )
            row.split = row.split or split
            rows.append(row)
        except DataError as error:
            errors.append(str(error))
    if not lines:
        errors.append(f"{path}: no samples in the manifest")
    return rows, errors


def read_ssvp_rows(root: str | Path, kinds: dict[str, str]) -> list[AnnotationRow]:
    """Every manifest row of an SSVP-SLT root, each with its feature file and
    every head's label (missing where the manifests give none).

    Args:
        root: the root (see the module docstring).
        kinds: each active head -> what its label is (class, sequence, text); the
            first text head's label is the `label` column.

    Raises:
        DataError: listing every bad line (`file:line: why`) together.
    """
    root = Path(root)
    files = manifest_files(root)
    rows, errors, names = [], [], {}
    for prefix, path in files.items():
        keep = prefix != ALL_SPLITS and (prefix != "train" or "val" in files)
        found, bad = _read_manifest(path, root, kinds, prefix if keep else None)
        errors += bad
        for row in found:
            if row.name in names:
                errors.append(
                    f"{row.source}: sample {row.name} is listed again (first at "
                    f"{names[row.name]})"
                )
                continue
            names[row.name] = row.source
            for head, kind in kinds.items():
                row.labels.setdefault(head, missing_label(kind))
            rows.append(row)
    if errors:
        more = len(errors) - MAX_REPORTED
        tail = [f"... and {more} more bad lines"] if more > 0 else []
        raise DataError("\n".join(errors[:MAX_REPORTED] + tail))
    return rows


def features_problem(row: AnnotationRow) -> str | None:
    """What is wrong with a row's feature file (missing, empty, not a file), or
    None."""
    problem = path_problem(row.features, empty_ok=False)
    if problem == NOT_FOUND:
        return f"{row.source}: no features for {row.name} (expected {row.features})"
    return problem and f"{row.source}: feature file {row.features} {problem}"


def configured_feature_dim(config: SignpipeConfig) -> int | None:
    """The width of the feature rows the config's extractor reads (its
    `feature_dim` setting); None when it reads no features or declares no width."""
    if not config.uses_features():
        return None
    settings = model_settings(
        config.feature_extractor, EXTRACTOR_FACTS, config.general_parameters.plugins
    )
    return getattr(settings, "feature_dim", None)


def load_features(path: Path, *, rows: int, dim: int | None) -> torch.Tensor:
    """The `(rows, dim)` float32 feature rows of a file (a `(D,)` tensor is one row).

    Args:
        path: the `.pt` file.
        rows: the row count its manifest line gives.
        dim: the configured width (`feature_extractor.feature_dim`), or None.

    Raises:
        DataError: naming the file: unreadable, not a float tensor of one or two
            dimensions, not finite, another row count or another width.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pylint: disable=broad-exception-caught
        raise DataError(
            f"{path}: cannot read the features ({describe_load_error(error)})"
        ) from None
    if (
        not isinstance(data, torch.Tensor)
        or data.dim() not in (1, 2)
        or not data.is_floating_point()
    ):
        found = (
            f"a {data.dtype} tensor of shape {tuple(data.shape)}"
            if isinstance(data, torch.Tensor)
            else f"a {type(data).__name__}"
        )
        raise DataError(
            f"{path}: expected one float tensor of feature rows, (N, D) or (D,); "
            f"found {found}"
        )
    data = data.reshape(1, -1) if data.dim() == 1 else data
    if dim is not None and data.shape[1] != dim:
        raise DataError(
            f"{path}: rows of {data.shape[1]} features, but feature_extractor."
            f"feature_dim is {dim}; set it to the width of the files' rows"
        )
    if data.shape[0] != rows:
        raise DataError(
            f"{path}: {data.shape[0]} feature rows, but its manifest line gives the "
            f"length {rows}"
        )
    data = data.float()
    if not torch.isfinite(data).all():
        raise DataError(f"{path}: holds NaN or infinite features")
    return data
