"""The one model resolver (``sruscale.weights._resolve``) and loading hostile or damaged weights files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import sruscale
from sruscale.errors import CheckpointError, NonFiniteOutputError, UnknownModelError
from sruscale.tiling import upscale_tensor
from sruscale.weights import load_model, model_scale

REPO = Path(__file__).resolve().parents[1]


def tiny(scale: int = 2) -> sruscale.SRModel:
    return sruscale.create_model("fsrcnn", scale=scale, d=8, s=4, m=1)


def hostile(path: Path, state: dict[str, torch.Tensor], **meta: str) -> Path:
    """A safetensors file with sruscale metadata overridden by ``meta``."""
    base = {"format": "sruscale", "format_version": "1", "arch": "fsrcnn", "scale": "2",
            "hparams": json.dumps({"d": 8, "s": 4, "m": 1})}
    save_file(state, str(path), metadata={**base, **meta})
    return path


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SRUSCALE_DEBUG": ""}
    return subprocess.run([sys.executable, "-m", "sruscale", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def state() -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in tiny().state_dict().items()}


# ------------------------------------------------------------------ validated construction


def test_huge_hparams_are_refused_before_any_allocation(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    path = hostile(tmp_path / "big.safetensors", state, hparams=json.dumps({"d": 10**9, "s": 4, "m": 1}))
    assert path.stat().st_size < 60_000
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"hparams.d = 1000000000 is out of range") as info:
        load_model(weights=path)
    assert time.perf_counter() - t0 < 5 and "\n" not in str(info.value)


def test_hparams_within_bounds_must_match_the_tensors(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    # d = 2048 is a legal FSRCNN width, but these tensors are for d = 8: the shapes are
    # compared on the meta device, so nothing of the 2048-wide model is allocated
    path = hostile(tmp_path / "wide.safetensors", state, hparams=json.dumps({"d": 2048, "s": 4, "m": 1}))
    with pytest.raises(CheckpointError, match="weights do not fit fsrcnn x2: shape mismatch"):
        load_model(weights=path)


@pytest.mark.parametrize(
    ("hparams", "needle"),
    [
        ({"d": 8, "s": 4, "m": 1, "bogus": 3}, "no hyperparameter 'bogus'"),
        ({"d": "8", "s": 4, "m": 1}, "expected an integer"),
        ({"d": 8, "s": 4, "m": 1, "residual": 1}, "expected true/false"),
    ],
)
def test_hparams_types_and_names(tmp_path: Path, state: dict[str, torch.Tensor], hparams: dict, needle: str) -> None:
    path = hostile(tmp_path / "h.safetensors", state, hparams=json.dumps(hparams))
    with pytest.raises(CheckpointError, match=needle):
        load_model(weights=path)


def test_every_default_hparam_is_within_bounds() -> None:
    """The bounds never refuse an architecture's own defaults (plainsr included)."""
    from sruscale.weights._checkpoint import check_hparams

    for name in sruscale.list_models():
        model = sruscale.create_model(name, scale=max(sruscale.models.REGISTRY[name].scales))
        hp = {k: v for k, v in model.hparams.items() if k != "scale"}
        assert check_hparams(name, hp, source="t") == hp


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    model = tiny()
    with torch.no_grad():
        model.deconv.weight[0, 0, 0, 0] = float("nan")
    path = sruscale.save_model(model, tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="NaN or Inf values .*deconv.weight"):
        load_model(weights=path)


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"hparams": "{not json"}, "hparams is not JSON"),
        ({"hparams": "[1, 2]"}, "hparams must be a JSON object"),
        ({"scale": "abc"}, "scale must be an integer, got 'abc'"),
        ({"card": "}"}, "card is not JSON"),
    ],
)
def test_malformed_metadata_is_one_line(
    tmp_path: Path, state: dict[str, torch.Tensor], meta: dict[str, str], needle: str
) -> None:
    path = hostile(tmp_path / "bad.safetensors", state, **meta)
    with pytest.raises(CheckpointError, match=needle) as info:
        load_model(weights=path)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match=needle):
        model_scale(weights=path)  # what --dry-run asks


def test_malformed_metadata_with_dry_run_on_the_cli(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    path = hostile(tmp_path / "bad.safetensors", state, scale="abc")
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    res = cli("upscale", img, "-o", tmp_path / "out", "--weights", path, "--dry-run")
    assert res.returncode == 1, res.stderr
    assert "scale must be an integer" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (os.getcwd, ())


def test_unsafe_pickle_is_refused_without_torchs_advice(tmp_path: Path) -> None:
    torch.save({"head.weight": torch.zeros(1), "x": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused") as info:
        load_model("fsrcnn", scale=2, weights=tmp_path / "evil.pt")
    message = str(info.value)
    assert "weights_only" not in message and "\n" not in message and "getcwd" in message
    res = cli("upscale", tmp_path / "evil.pt", "-o", tmp_path / "o", "--model", "fsrcnn", "--scale", "2",
              "--weights", tmp_path / "evil.pt")
    assert res.returncode == 1 and "weights_only" not in res.stderr and "Traceback" not in res.stderr


# ------------------------------------------------------------------ non-finite output


class _NaNModel(sruscale.SRModel):
    name = "nan-test"

    def __init__(self) -> None:
        super().__init__(scale=2, in_channels=3)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 3, 2 * x.shape[2], 2 * x.shape[3]), float("nan"))


def test_non_finite_output_in_fp32_fails_with_a_clear_message() -> None:
    with pytest.raises(NonFiniteOutputError, match="NaN/Inf .* even in fp32"):
        upscale_tensor(_NaNModel(), torch.rand(1, 3, 8, 8), tile=0, precision="fp32", device="cpu")


# ------------------------------------------------------------------ one resolver


def test_training_checkpoint_loads_its_ema_weights(tmp_path: Path) -> None:
    raw, ema = tiny(), tiny()
    ckpt = {
        "format": "sruscale-train", "version": 1, "iteration": 10,
        "config": {"model": {"name": "fsrcnn", "scale": 2, "hparams": {"d": 8, "s": 4, "m": 1}}},
        "model": raw.state_dict(), "ema": ema.state_dict(), "optimizer": {},
    }
    torch.save(ckpt, tmp_path / "iter_00000010.pt")
    loaded = load_model(weights=tmp_path / "iter_00000010.pt")
    x = torch.rand(1, 1, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ema(x))
    assert model_scale(weights=tmp_path / "iter_00000010.pt") == 2
    with pytest.raises(CheckpointError, match="expected architecture 'espcn'"):
        load_model("espcn", weights=tmp_path / "iter_00000010.pt")


def _manifest(folder: Path, rows: list[tuple[str, int, dict[str, float]]], extra: str = "") -> None:
    import hashlib

    text = extra
    for name, scale, numbers in rows:
        path = sruscale.save_model(tiny(scale), folder / f"{name}.safetensors")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        fields = "".join(f"{k} = {v}\n" for k, v in numbers.items())
        text += (f'[[weights]]\nname = "{name}"\nfile = "{path.name}"\narch = "fsrcnn"\nscale = {scale}\n'
                 f'sha256 = "{digest}"\n{fields}\n')
    (folder / "manifest.toml").write_text(text)


def test_fast_and_best_aliases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sruscale.weights._manifest import resolve_alias

    _manifest(tmp_path, [
        ("slow-good", 2, {"set5_psnr": 37.0, "gflops_per_mp": 9.0}),
        ("quick", 2, {"set5_psnr": 36.0, "gflops_per_mp": 1.0}),
        ("other-x3", 3, {"set5_psnr": 33.0}),
    ], extra='[aliases]\nmine = "other-x3"\n')
    monkeypatch.setenv("SRUSCALE_WEIGHTS_DIR", str(tmp_path))
    assert resolve_alias("best", 2).name == "slow-good"
    assert resolve_alias("fast", 2).name == "quick"
    assert resolve_alias("mine", 2).name == "other-x3"
    assert resolve_alias("fsrcnn", 2) is None
    assert load_model("fast", scale=2).hparams["d"] == 8
    assert load_model("mine").scale == 3
    with pytest.raises(UnknownModelError, match="alias 'fast': no bundled weights at x3"):
        load_model("fast", scale=3)


def _family(folder: Path) -> tuple[sruscale.SRModel, sruscale.SRModel]:
    """A manifest with a clean x4 model, a two-file ``realworld`` family (denoise 0 and 1) and a
    one-file ``realworld-gan`` family."""
    import hashlib

    torch.manual_seed(0)
    light, strong = tiny(4), tiny(4)
    with torch.no_grad():
        for w in strong.parameters():  # far apart, so the blend shows in the pixels
            w.add_(torch.randn_like(w) * 0.5)
    text = ""
    for name, model, extra in (
        ("clean-x4", tiny(4), "set5_psnr = 30.0\ngflops_per_mp = 1.0\n"),
        ("rw-light", light, 'family = "realworld"\ndenoise = 0.0\n'),
        ("rw-strong", strong, 'family = "realworld"\ndenoise = 1.0\n'),
        ("rw-gan", tiny(4), 'family = "realworld-gan"\n'),  # a one-file family: no denoise control
    ):
        path = sruscale.save_model(model, folder / f"{name}.safetensors")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        text += (f'[[weights]]\nname = "{name}"\nfile = "{path.name}"\narch = "fsrcnn"\nscale = 4\n'
                 f'sha256 = "{digest}"\n{extra}\n')
    (folder / "manifest.toml").write_text(text)
    return light, strong


def test_family_blends_weights_by_denoise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sruscale.weights._manifest import bundled_models, resolve_alias

    light, strong = _family(tmp_path)
    monkeypatch.setenv("SRUSCALE_WEIGHTS_DIR", str(tmp_path))
    # a family never serves as the default, an alias's pick or an architecture's weights
    assert bundled_models() == [("clean-x4", 4)]
    assert resolve_alias("fast", 4).name == "clean-x4"
    assert load_model("fsrcnn", scale=4).state_dict()["body.0.weight"].equal(
        sruscale.load_model("clean-x4").state_dict()["body.0.weight"]
    )
    key = "body.0.weight"
    a, b = light.state_dict()[key], strong.state_dict()[key]
    assert load_model("realworld", denoise=0.0).state_dict()[key].equal(a)
    assert load_model("realworld", denoise=1.0).state_dict()[key].equal(b)
    for d in (0.25, 0.5):
        got = load_model("realworld", denoise=d).state_dict()[key]
        torch.testing.assert_close(got, (1 - d) * a + d * b)
    torch.testing.assert_close(load_model("realworld").state_dict()[key], 0.25 * a + 0.75 * b)  # default 0.75
    assert model_scale("realworld") == 4
    with pytest.raises(sruscale.ConfigError, match=r"--denoise must be in \[0, 1\], got 1.5"):
        load_model("realworld", denoise=1.5)
    with pytest.raises(sruscale.ConfigError, match="--denoise applies to"):
        load_model("clean-x4", denoise=0.5)
    with pytest.raises(UnknownModelError, match="'realworld' is bundled at x4, not at x2"):
        load_model("realworld", scale=2)
    with pytest.raises(UnknownModelError, match=r"a model family \(realworld, realworld-gan\)"):
        load_model("nope")
    gan = load_model("realworld-gan")  # one file: loaded as it is
    assert gan.state_dict()[key].equal(sruscale.load_model("rw-gan").state_dict()[key])
    with pytest.raises(sruscale.ConfigError, match="'realworld-gan' at x4 has no denoise control"):
        load_model("realworld-gan", denoise=0.5)


def test_upscale_denoise_changes_output_monotonically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--denoise`` moves the output steadily from the light to the strong model's."""
    from typer.testing import CliRunner

    from sruscale.cli import app

    (tmp_path / "w").mkdir()
    _family(tmp_path / "w")
    monkeypatch.setenv("SRUSCALE_WEIGHTS_DIR", str(tmp_path / "w"))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    outs = {}
    for d in ("0", "0.5", "1"):
        res = CliRunner().invoke(
            app, ["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / d), "--model", "realworld", "--denoise", d]
        )
        assert res.exit_code == 0, res.output
        outs[d] = np.asarray(Image.open(next((tmp_path / d).glob("*.png"))), dtype=np.float64)
    gap = np.abs(outs["1"] - outs["0"]).mean()
    assert gap > 1.0
    assert np.abs(outs["0.5"] - outs["0"]).mean() < gap and np.abs(outs["0.5"] - outs["1"]).mean() < gap
    res = CliRunner().invoke(app, ["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "x"), "--denoise", "2"])
    assert res.exit_code == 2
