"""The floors (docs/architecture.md): import-linter's contracts hold, an upward import
breaks them, the evaluation scripts run without Lightning, and an extractor declares
its own training-time preparation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import train
from config.loader import parse_config
from config.registry import ModelFacts
from models.pipeline import build_pipeline
from models.registry import (
    FEATURE_EXTRACTORS,
    FeatureExtractor,
    NothingToPrepare,
    TemporalEncoder,
    missing_members,
)

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = (
    "utils",
    "config",
    "datasets",
    "models",
    "data_preprocessing",
    "training",
    "evaluation",
    "benchmarks",
    "sweeps",
    "serving",
)


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """import-linter with the repository's contracts, over the packages in `cwd`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / ".importlinter"), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


needs_lint_imports = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is not installed (make venv)"
)


@needs_lint_imports
def test_the_repository_keeps_its_floors() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def _skeleton(root: Path, imports: dict[str, str]) -> None:
    """One module per package, `imports` giving a module's import line."""
    for package in PACKAGES:
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("", encoding="utf-8")
        line = imports.get(package, "")
        (root / package / "part.py").write_text(line + "\n", encoding="utf-8")


@needs_lint_imports
@pytest.mark.parametrize(
    ("package", "line", "broken"),
    [
        ("utils", "import training.part", "utils is not allowed to import training"),
        ("config", "import models.part", "config is not allowed to import models"),
        ("models", "import datasets.part", "models is not allowed to import datasets"),
        ("datasets", "import lightning", "datasets.part -> lightning"),
        ("evaluation", "import lightning", "evaluation.part -> lightning"),
    ],
)
def test_an_upward_or_lightning_import_breaks_a_contract(
    tmp_path: Path, package: str, line: str, broken: str
) -> None:
    # lightning itself must be importable for the forbidden contract to see it.
    site = Path(torch.__file__).parents[1]
    _skeleton(tmp_path, {package: line})
    (tmp_path / "lightning").symlink_to(site / "lightning")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout


@needs_lint_imports
def test_a_downward_import_keeps_the_contracts(tmp_path: Path) -> None:
    site = Path(torch.__file__).parents[1]
    _skeleton(
        tmp_path,
        {
            "training": "import lightning\nimport evaluation.part\nimport models.part",
            "evaluation": "import datasets.part\nimport data_preprocessing.part",
            "datasets": "import utils.part\nimport config.part",
            "config": "import utils.part",
        },
    )
    (tmp_path / "lightning").symlink_to(site / "lightning")
    result = lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout


def run_help_then(script: str, after: str) -> subprocess.CompletedProcess:
    """A fresh interpreter runs `script --help` (stdout kept aside as `out`), then
    the Python lines `after`."""
    code = (
        "import contextlib, io, runpy, sys\n"
        f"sys.argv = ['{script}', '--help']\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        f"        runpy.run_path('{script}', run_name='__main__')\n"
        "    except SystemExit:\n"
        "        pass\n" + after
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


SCRIPTS = ("train.py", "test.py", "predict.py", "export.py", "demo.py", "sweep.py")
LOADED_LIGHTNING = (
    "[m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')]"
)


EVALUATION_SCRIPTS = ("test.py", "predict.py", "export.py", "demo.py")


def test_evaluation_scripts_do_not_import_lightning() -> None:
    """Each evaluation script's --help, then the evaluation modules, in one fresh
    interpreter: none loads Lightning (the first that did would be named)."""
    lines = ""
    for script in EVALUATION_SCRIPTS[1:]:
        lines += (
            "sys.argv = ['" + script + "', '--help']\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            "        runpy.run_path('" + script + "', run_name='__main__')\n"
            "    except SystemExit:\n"
            "        pass\n"
            f"print('{script}', {LOADED_LIGHTNING}[:3])\n"
        )
    result = run_help_then(
        EVALUATION_SCRIPTS[0],
        f"print('{EVALUATION_SCRIPTS[0]}', {LOADED_LIGHTNING}[:3])\n"
        + lines
        + "import evaluation.evaluator, evaluation.writers, evaluation.prediction\n"
        "import evaluation.export, evaluation.onnx_backend, serving.app\n"
        f"print('modules', {LOADED_LIGHTNING}[:3])\n",
    )
    assert result.returncode == 0, result.stderr
    expected = [f"{name} []" for name in (*EVALUATION_SCRIPTS, "modules")]
    assert result.stdout.splitlines() == expected, result.stdout


class Clip3DExtractor(NothingToPrepare, nn.Module):
    """A 3-D CNN over the whole clip with a `.backbone` (5-D weights), as a video
    network is: it declares no training-time preparation."""

    def __init__(self, *, representation_size: int) -> None:
        super().__init__()
        self.backbone = nn.Conv3d(3, representation_size, kernel_size=3, padding=1)
        self.out_dim = representation_size

    def forward(self, batch: dict) -> torch.Tensor:
        """`(B, T, D)` features from the clip `(B, T, C, H, W)`."""
        frames = batch["frames"].float().div(255.0).transpose(1, 2)  # (B, C, T, H, W)
        features = self.backbone(frames).mean(dim=(3, 4)).transpose(1, 2)
        return features * batch["mask"].unsqueeze(-1).to(features.dtype)


def test_a_3d_extractor_trains_with_channels_last_on(
    tiny_config, write_config, monkeypatch
) -> None:
    monkeypatch.setitem(
        FEATURE_EXTRACTORS._entries,  # pylint: disable=protected-access
        "test_clip3d",
        Clip3DExtractor,
    )
    monkeypatch.setitem(
        FEATURE_EXTRACTORS.facts._facts,  # pylint: disable=protected-access
        "test_clip3d",
        ModelFacts("test_clip3d"),
    )
    tiny_config["feature_extractor"] = {
        "name": "test_clip3d",
        "representation_size": 16,
    }
    tiny_config["trainer"] = {**tiny_config.get("trainer", {}), "channels_last": True}
    config_path = write_config(tiny_config)
    assert train.main(["--model_config_path", str(config_path)]) == 0
    weights = Path(tiny_config["general_parameters"]["path_to_save"])
    assert (weights / "checkpoints" / "last.ckpt").is_file()


def test_a_2d_backbone_declares_channels_last(tiny_config) -> None:
    config = parse_config(tiny_config)
    model = build_pipeline(config, {"gloss": 3})
    model.prepare_for_training(channels_last=True, compile_model=False)
    weight = next(
        p for p in model.feature_extractor.backbone.parameters() if p.dim() == 4
    )
    assert weight.is_contiguous(memory_format=torch.channels_last)


def test_every_registered_extractor_and_encoder_satisfies_its_protocol(
    tiny_config,
) -> None:
    config = parse_config(tiny_config)
    model = build_pipeline(config, {"gloss": 3})
    assert isinstance(model.feature_extractor, FeatureExtractor)
    assert isinstance(model.transformer, TemporalEncoder)
    assert not missing_members(model.feature_extractor, FeatureExtractor)


def test_an_extractor_without_the_interface_is_refused(
    tiny_config, monkeypatch
) -> None:
    class Bare(nn.Module):  # pylint: disable=abstract-method
        """An extractor without `prepare_for_training`."""

        def __init__(self, *, representation_size: int) -> None:
            super().__init__()
            self.out_dim = representation_size

    monkeypatch.setitem(
        FEATURE_EXTRACTORS._entries, "test_bare", Bare  # pylint: disable=W0212
    )
    monkeypatch.setitem(
        FEATURE_EXTRACTORS.facts._facts,  # pylint: disable=protected-access
        "test_bare",
        ModelFacts("test_bare"),
    )
    tiny_config["feature_extractor"] = {"name": "test_bare", "representation_size": 16}
    with pytest.raises(TypeError, match="test_bare.*prepare_for_training"):
        build_pipeline(parse_config(tiny_config), {"gloss": 3})


def test_the_random_weights_warning_names_the_backbone_built(
    tiny_config, write_config, capsys
) -> None:
    tiny_config["train_parameters"]["epochs"] = 1
    assert train.main(["--model_config_path", str(write_config(tiny_config))]) == 0
    model_path = tiny_config["feature_extractor"]["model_path"]
    assert f"{model_path} starts from random weights" in capsys.readouterr().err


def test_scripts_are_thin() -> None:
    """The scripts parse arguments and call the library."""
    for script in SCRIPTS:
        text = (ROOT / script).read_text(encoding="utf-8")
        assert not re.search(r"^class \w+[(:]", text, re.M), f"{script} has a class"
        assert text.count("\n") < 260, f"{script} has {text.count(chr(10))} lines"


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_loading_torch(script: str) -> None:
    result = run_help_then(
        script, "print('usage' in out.getvalue(), 'torch' in sys.modules)\n"
    )
    assert result.stdout.split() == ["True", "False"], result.stdout + result.stderr
