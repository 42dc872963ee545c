"""Shards of the prediction inputs and the tables that join them.

`select_shard` picks the block of inputs a shard owns (`--num_shards`/`--shard_id`,
`--items_per_shard`, SLURM_ARRAY_TASK_ID); `write_shard_record` records its inputs in
`shards/<shard>.json`. In the `ssvp` layout, `write_manifests` writes
`manifests/<split>_features.tsv` (`video_name, length, label`, from
`manifest_fields`), and `merge_manifests` joins the shards' tables into one each,
checking that every input of every shard is there exactly once.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, StrictInt, StrictStr, model_validator

from evaluation.output_files import read_rows, write_rows
from evaluation.prediction import PredictionInput
from evaluation.records import Record, validated
from utils.errors import DataError, UserError, quote
from utils.files import read_text, write_output

FRAMES_FILE = "frames.csv"
MANIFEST_HEADER = ["video_name", "length", "label"]
# A sample without a split (a bare video, a root without a split column).
NO_SPLIT = "all"
#: The most missing shards or inputs a message lists.
MAX_LISTED = 5


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the inputs `start:end` (in input order)."""

    index: int
    count: int
    start: int
    end: int

    @property
    def tag(self) -> str:
        """The shard's part of its file names."""
        return f"shard-{self.index:05d}-of-{self.count:05d}"


@dataclass(frozen=True)
class ShardRequest:
    """Which shard of the inputs to predict (`predict.py`'s shard options).

    Attributes:
        num_shards: cut the inputs in this many blocks (with `shard_id`).
        items_per_shard: cut them in blocks of this many inputs.
        shard_id: this shard's index; with `items_per_shard`, None reads
            SLURM_ARRAY_TASK_ID.
    """

    num_shards: int | None = None
    items_per_shard: int | None = None
    shard_id: int | None = None


def select_shard(request: ShardRequest, total: int) -> Shard | None:
    """The shard the command line asks for (None: every input).

    `--num_shards N --shard_id I` cuts the inputs into N contiguous blocks;
    `--items_per_shard K` into blocks of K, the index from `--shard_id` or
    `SLURM_ARRAY_TASK_ID`.

    Raises:
        UserError: the index is missing or out of range.
    """
    if request.num_shards is None and request.items_per_shard is None:
        if request.shard_id is not None:
            raise UserError("--shard_id needs --num_shards or --items_per_shard")
        return None
    index = request.shard_id
    if index is None:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        if request.items_per_shard is None or task is None or not task.isdigit():
            raise UserError(
                "--shard_id: give the shard's index (or run in a SLURM array with "
                "--items_per_shard, which reads SLURM_ARRAY_TASK_ID)"
            )
        index = int(task)
    if request.items_per_shard is not None:
        count = max(1, math.ceil(total / request.items_per_shard))
        start = index * request.items_per_shard
        end = min(total, start + request.items_per_shard)
    else:
        count = request.num_shards
        start, end = index * total // count, (index + 1) * total // count
    if index >= count:
        raise UserError(
            f"--shard_id {index}: {total} inputs make {count} shards "
            f"(0..{count - 1})"
        )
    return Shard(index, count, start, end)


def write_shard_record(output: Path, shard: Shard, names: list[str]) -> None:
    """Record the inputs shard `shard` owns in `OUTPUT_DIR/shards/<tag>.json`, which
    `merge_manifests` checks the tables against."""
    data = json.dumps(
        {"index": shard.index, "count": shard.count, "items": names}
    ).encode("utf-8")
    write_output(output / "shards" / f"{shard.tag}.json", lambda file: file.write(data))


class ShardRecord(Record):
    """`shards/<tag>.json`, as `write_shard_record` writes it: the shard's index of
    `count` and its inputs' names."""

    index: Annotated[StrictInt, Field(ge=0)]
    count: Annotated[StrictInt, Field(ge=1)]
    items: list[StrictStr]

    @model_validator(mode="after")
    def _index_below_count(self) -> ShardRecord:
        if self.index >= self.count:
            raise ValueError(f"index: {self.index} is not below count {self.count}")
        return self

    @property
    def tag(self) -> str:
        """The tag of its file's name."""
        return Shard(self.index, self.count, 0, 0).tag


def read_shard_record(path: Path) -> ShardRecord:
    """A shard record, checked.

    Raises:
        DataError: naming the file (and line) when it is not a readable JSON
            object of `ShardRecord`'s fields, or not the shard its name says.
    """
    try:
        data = json.loads(read_text(path, "shard record"))
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}:{error.lineno}: the shard record is not JSON ({error.msg})"
        ) from None
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: the shard record is not a JSON object of index, count and "
            f"items, got {quote(data)}"
        )
    record = validated(ShardRecord, data, str(path))
    if record.tag != path.stem:
        raise DataError(
            f"{path}: the record is of {record.tag}, not of the shard its name says"
        )
    return record


def manifest_fields(
    inputs: list[PredictionInput],
    label_names: dict,
    sequence_labels: dict[str, str] | None = None,
) -> dict:
    """name -> (label, split) of each input for the manifests, from its annotated
    labels: the sentence of the first text head when the model has one (SSVP-SLT's
    translation target), else the gloss sequence of the first sequence head (class
    names joined by spaces), else the class name of the gloss head (else the first
    head); and its split. Tabs and line breaks in a label become spaces.

    Args:
        inputs: the prediction inputs (a sample of an annotated root has labels).
        label_names: head -> class names.
        sequence_labels: the sequence heads' label kinds (`sequence`, `text`).
    """
    sequence_labels = sequence_labels or {}
    by_kind = {
        kind: next((h for h, k in sequence_labels.items() if k == kind), None)
        for kind in ("text", "sequence")
    }
    classes = [head for head in label_names if head not in sequence_labels]
    head = by_kind["text"] or by_kind["sequence"]
    if head is None and classes:
        head = "gloss" if "gloss" in classes else classes[0]
    fields = {}
    for item in inputs:
        sample = item.sample
        label = ""
        if sample is not None and head is not None:
            label = _label_text(sample.labels.get(head), label_names[head])
        split = (sample.split if sample is not None else None) or NO_SPLIT
        fields[item.name] = (" ".join(label.split()), split)
    return fields


def _label_text(value: object, names: list[str]) -> str:
    """A sample's label as manifest text: a sentence as it is, class ids (one or a
    sequence) as class names; "" when missing."""
    if isinstance(value, str):
        return value
    ids = [value] if isinstance(value, int) else list(value or ())
    return " ".join(names[i] for i in ids if 0 <= i < len(names))


def write_manifests(
    table: Callable[[str], Path],
    records: list[dict],
    manifest: dict[str, tuple[str, str]],
) -> None:
    """Write `manifests/<split>_features.tsv` of the written inputs.

    Args:
        table: a table's name -> its path (with the shard's tag).
        records: the written inputs' records (`name`, `length`), in input order.
        manifest: name -> (label, split), from `manifest_fields`.
    """
    splits: dict[str, list[list]] = {}
    for record in records:
        label, split = manifest.get(record["name"], ("", NO_SPLIT))
        splits.setdefault(split, []).append([record["name"], record["length"], label])
    for split, rows in splits.items():
        name = f"manifests/{split}_features.tsv"
        write_rows(table(name), [MANIFEST_HEADER, *rows], "\t")


def merge_manifests(output: Path) -> int:
    """`predict.py --merge_manifests OUTPUT_DIR`: join the shards' manifests (and
    predictions.csv, frames.csv) into one file each, checking that every shard ran
    and that every input of every shard is there exactly once.

    Raises:
        UserError: a shard is missing, an input is missing or written twice.
    """
    records = sorted((output / "shards").glob("shard-*-of-*.json"))
    if not records:
        raise UserError(
            f"--merge_manifests: {output / 'shards'} holds no shard records; run "
            "predict.py with --num_shards/--items_per_shard into OUTPUT_DIR first"
        )
    shards = [read_shard_record(path) for path in records]
    count = shards[0].count
    cut = next((shard for shard in shards if shard.count != count), None)
    if cut is not None:
        raise UserError(
            f"--merge_manifests: the shards were cut differently ({shards[0].tag} "
            f"and {cut.tag}); merge the shards of one run"
        )
    ran = {shard.index for shard in shards}
    missing = list(
        itertools.islice((i for i in range(count) if i not in ran), MAX_LISTED)
    )
    if missing:
        more = ", ..." if count - len(ran) > len(missing) else ""
        raise UserError(
            f"--merge_manifests: shards {', '.join(map(str, missing))}{more} of "
            f"{count} have not run"
        )
    expected = [name for shard in shards for name in shard.items]
    tags = [path.stem for path in records]
    tables: dict[str, list[list[str]]] = {}
    for tag in tags:
        for path in sorted(output.glob(f"**/*.{tag}.*")):
            if path.suffix not in (".csv", ".tsv"):
                continue
            merged = path.with_name(path.name.replace(f".{tag}", ""))
            rows = read_rows(path, "\t" if path.suffix == ".tsv" else ",")
            table = tables.setdefault(str(merged), rows[:1])
            table += rows[1:]
    manifests = {k: v for k, v in tables.items() if k.endswith("_features.tsv")}
    if manifests:
        seen = [row[0] for rows in manifests.values() for row in rows[1:]]
    else:
        seen = [row[0] for row in tables.get(str(output / FRAMES_FILE), [])[1:]]
    counts = collections.Counter(seen)
    absent = [name for name in expected if name not in counts]
    twice = sorted(name for name, n in counts.items() if n > 1)
    if absent or twice:
        raise UserError(
            f"--merge_manifests: {len(absent)} of {len(expected)} inputs are missing"
            + (
                f" ({', '.join(absent[:MAX_LISTED])}"
                f"{', ...' if len(absent) > MAX_LISTED else ''})"
                if absent
                else ""
            )
            + (
                f"; written more than once: {', '.join(twice[:MAX_LISTED])}"
                if twice
                else ""
            )
            + "; run the shards that did not finish again"
        )
    for path, rows in tables.items():
        write_rows(Path(path), rows, "\t" if path.endswith(".tsv") else ",")
        print(f"wrote {path} ({len(rows) - 1} rows)", file=sys.stderr)
    print(f"merged {count} shards: {len(expected)} inputs, each once")
    return 0
