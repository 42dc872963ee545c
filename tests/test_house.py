"""House rules a grep can check: the config is parsed in one place (`config/`)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Folders that hold no project code (or may parse configs: the tests).
SKIPPED = {"config", "tests", "site", "runs", "data", "docs", "node_modules"}
#: What parses a config (or any YAML) anew.
PARSES = (
    "yaml.safe_load",
    "yaml.load",
    "parse_config(",
    "SignpipeConfig.model_validate",
)


def project_files() -> list[Path]:
    """The repository's Python files outside `SKIPPED` and hidden folders."""
    files = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in SKIPPED or any(part.startswith(".") for part in parts):
            continue
        files.append(path)
    return files


def test_the_config_is_parsed_only_in_config() -> None:
    files = project_files()
    assert len(files) > 50  # the walk found the packages
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if any(pattern in line for pattern in PARSES)
    ]
    assert not found, (
        "parse the config once (config/) and pass the SignpipeConfig object; "
        "found:\n" + "\n".join(found)
    )
