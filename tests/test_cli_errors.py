"""`score-geometry analyse` on bad input: one line naming the argument or file and what was expected, exit code 2,
no traceback (unless --debug or SCORE_GEOMETRY_DEBUG=1) and nothing written to --out.

Most cases call `cli.main` in this process (a subprocess per case would import torch each time); the few that
are about the process itself (the traceback, --version) run the installed command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import E2E_TIMEOUT
from score_geometry import __version__, io
from score_geometry.cli import CHECKPOINT_ADVICE, check_images, main
from score_geometry.models import pca_oracle_checkpoint

EXE = str(Path(sys.executable).with_name("score-geometry"))
SHAPE = (1, 8, 8)

MODELS = """
    import torch

    class Half(torch.nn.Module):  # eps_hat = x / 2
        def forward(self, x, t):
            return 0.5 * x

    def good():
        return Half()

    def nan_band():  # finite except for 0.05 < t < 0.2
        def net(x, t):
            band = ((t > 0.05) & (t < 0.2)).view(-1, 1, 1, 1)
            return torch.where(band, torch.full_like(x, float("nan")), 0.5 * x)
        return net

    def nan():
        return lambda x, t: x * float("nan")

    def flat():
        return lambda x, t: x.flatten(1)

    def pair():
        return lambda x, t: (x, t)

    def three():
        return 3

    def broken():
        raise RuntimeError("no weights here")
    """


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A model module, good images and a text file, shared by the tests of this module (read only)."""
    d = tmp_path_factory.mktemp("cli_inputs")
    (d / "models.py").write_text(textwrap.dedent(MODELS))
    np.save(d / "x.npy", np.linspace(-1, 1, 2 * 64, dtype=np.float32).reshape(2, *SHAPE))
    (d / "text.npy").write_text("not an array\n")
    return d


def _main(capsys, *args: str) -> tuple[int, str]:
    """`score-geometry analyse ARGS --device cpu` in this process: its exit code and stderr."""
    try:
        code = main(["analyse", *args])
    except SystemExit as e:  # argparse
        code = e.code
    return code, capsys.readouterr().err


def _callable(files, name: str) -> list[str]:
    return ["--source", "callable", "--path", f"{files / 'models.py'}:{name}"]


def _assert_usage_error(code: int, err: str, *needles: str, out: Path | None = None) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    if out is not None:
        assert not out.exists(), "something was written to --out"


@pytest.mark.parametrize(("args", "needle"), [
    (["--times", "1.5"], "argument --times: expected a time in (0, 1], got '1.5'"),
    (["--times", "-0.1"], "argument --times: expected a time in (0, 1], got '-0.1'"),
    (["--times", "0"], "argument --times: expected a time in (0, 1]"),
    (["--times", "nan"], "argument --times: expected a time in (0, 1]"),
    (["--times", "0.3", "0.1"], "--times 0.3 0.1: expected strictly increasing"),
    (["--times", "0.1", "0.1"], "no duplicates"),
    (["--kappa", "-1"], "argument --kappa: expected a finite number >= 0, got '-1'"),
    (["--seed", "-3"], "argument --seed: expected an integer >= 0, got '-3'"),
    (["--seed", "1.5"], "argument --seed: expected an integer >= 0"),
    (["--n-images", "0"], "argument --n-images: expected an integer >= 1, got '0'"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--beta-min", "30"], "--beta-min 30.0 must be < --beta-max 20.0"),
])
def test_arguments_are_checked_by_the_config_schemas_rules(files, tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    code, err = _main(capsys, *_callable(files, "good"), "--images", str(files / "x.npy"), *args, "--out", str(out))
    _assert_usage_error(code, err, needle, out=out)


@pytest.mark.parametrize(("array", "needle"), [
    (np.full((2, *SHAPE), np.nan, np.float32), "128 of 128 values are NaN or infinite"),
    (np.full((2, *SHAPE), np.inf, np.float32), "NaN or infinite"),
    (np.zeros((0, *SHAPE), np.float32), "no images"),
    (np.zeros(5, np.float32), "expected (n, C, H, W), or (n, H, W)"),
    (np.full((2, *SHAPE), 200.0, np.float32), "values in [200, 200]: expected [-1, 1]"),
    (np.zeros((2, *SHAPE), np.int64), "dtype int64: expected floating values in [-1, 1], or uint8"),
])
def test_bad_images_are_one_line_naming_the_file(files, tmp_path, capsys, array, needle):
    np.save(tmp_path / "bad.npy", array)
    out = tmp_path / "out"
    code, err = _main(capsys, *_callable(files, "good"), "--images", str(tmp_path / "bad.npy"), "--out", str(out))
    _assert_usage_error(code, err, f"--images {tmp_path / 'bad.npy'}", needle, out=out)


def test_a_file_that_is_not_an_array_gets_no_advice_to_unpickle_it(files, tmp_path, capsys):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "two.npz", a=np.zeros(3))
    for name, needle in (("text.npy", "not a .npy file of numbers"), ("objects.npy", "not a .npy file of numbers"),
                         ("two.npz", "an .npz archive")):
        path = (files if name == "text.npy" else tmp_path) / name
        code, err = _main(capsys, *_callable(files, "good"), "--images", str(path), "--out", str(tmp_path / "out"))
        _assert_usage_error(code, err, f"--images {path}", needle, out=tmp_path / "out")
        assert "pickle" not in err, err


def test_uint8_images_are_rescaled_with_a_note(files, tmp_path, capsys):
    pixels = np.arange(2 * 64, dtype=np.uint8).reshape(2, *SHAPE) * 2
    np.save(tmp_path / "u8.npy", pixels)
    np.save(tmp_path / "f.npy", pixels.astype(np.float32) / 127.5 - 1)
    code, err = _main(capsys, *_callable(files, "good"), "--images", str(tmp_path / "u8.npy"), "--times", "0.3",
                      "--device", "cpu", "--out", str(tmp_path / "u8"))
    assert code == 0, err
    assert "note: --images" in err and "uint8 pixels in [0, 255] rescaled to [-1, 1]" in err
    code, err = _main(capsys, *_callable(files, "good"), "--images", str(tmp_path / "f.npy"), "--times", "0.3",
                      "--device", "cpu", "--out", str(tmp_path / "f"))
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "u8/diagnostics.parquet"),
                                  pd.read_parquet(tmp_path / "f/diagnostics.parquet"))


def test_check_images_takes_grey_stacks_and_clips_round_off():
    grey = np.full((3, 4, 5), 1.0005, np.float32)
    images, note = check_images(grey)
    assert images.shape == (3, 1, 4, 5) and images.dtype == np.float32 and note is None
    assert images.max() == 1.0
    with pytest.raises(ValueError, match=r"values in \[1.01, 1.01\]"):
        check_images(np.full((1, 1, 2, 2), 1.01))


def test_a_score_that_is_nan_on_a_band_of_t_is_caught_at_the_analysed_time(files, tmp_path, capsys):
    """Finite at t = 0.01 and 0.3 (the fixed check times), NaN at the analysed t = 0.1."""
    out = tmp_path / "out"
    code, err = _main(capsys, *_callable(files, "nan_band"), "--images", str(files / "x.npy"), "--times", "0.01",
                      "0.1", "--device", "cpu", "--out", str(out))
    _assert_usage_error(code, err, "models.py:nan_band", "non-finite values at t = 0.1", out=out)


@pytest.mark.parametrize(("name", "needle"), [
    ("nan", "non-finite values at t = 0.01"),
    ("flat", "returned shape (2, 1, 2, 64) for inputs (2, 1, 8, 8)"),
    ("pair", "failed on inputs (2, 1, 8, 8) at t = 0.01: TypeError"),
    ("three", "it returned int"),
    ("broken", "calling it with kwargs {} failed (RuntimeError: no weights here)"),
    ("missing", "cannot import it (ValueError: model.path: "),
])
def test_callable_errors_name_the_source_and_the_file(files, tmp_path, capsys, name, needle):
    out = tmp_path / "out"
    code, err = _main(capsys, *_callable(files, name), "--images", str(files / "x.npy"), "--times", "0.01",
                      "--device", "cpu", "--out", str(out))
    _assert_usage_error(code, err, f"callable model {files / 'models.py'}:{name}: ", needle,
                        "expected 'package.module:function' or 'file.py:function'", out=out)


@pytest.mark.parametrize(("path", "needle"), [("nowhere.py:build", "no such file nowhere.py"),
                                              ("no_colon", "must be 'module:function'"),
                                              ("no_such_package.module:build", "No module named 'no_such_package'")])
def test_a_missing_or_malformed_callable_path(files, tmp_path, capsys, path, needle):
    code, err = _main(capsys, "--source", "callable", "--path", path, "--images", str(files / "x.npy"),
                      "--device", "cpu", "--out", str(tmp_path / "out"))
    _assert_usage_error(code, err, f"callable model {path}: cannot import it", needle, out=tmp_path / "out")


@pytest.mark.parametrize(("source", "needle"), [("torchscript", "not a torch.jit.save file"),
                                                ("export", "not a torch.export.save program (.pt2)")])
def test_a_file_of_another_format_names_the_source_and_what_it_expects(files, tmp_path, capsys, source, needle):
    code, err = _main(capsys, "--source", source, "--path", str(files / "text.npy"), "--images",
                      str(files / "x.npy"), "--device", "cpu", "--out", str(tmp_path / "out"))
    _assert_usage_error(code, err, f"{source} model {files / 'text.npy'}: {needle}", "; expected a ",
                        out=tmp_path / "out")
    assert "miniz" not in err and "BadZipFile" not in err


def test_a_diffusers_directory_without_a_unet_explains_the_layout(files, tmp_path, capsys):
    pytest.importorskip("diffusers")
    (tmp_path / "empty").mkdir()
    code, err = _main(capsys, "--source", "diffusers", "--path", str(tmp_path / "empty"), "--images",
                      str(files / "x.npy"), "--device", "cpu", "--out", str(tmp_path / "out"))
    _assert_usage_error(code, err, f"diffusers model {tmp_path / 'empty'}: no UNet2DModel", "unet/", "scheduler/",
                        "unet.save_pretrained alone", out=tmp_path / "out")


def test_model_that_is_not_a_checkpoint_says_so_without_workflow_advice(files, tmp_path, capsys):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    for path, needle in ((files / "text.npy", CHECKPOINT_ADVICE),
                         (tmp_path / "tensor.pt", "a model reference is a dict")):
        code, err = _main(capsys, "--model", str(path), "--images", str(files / "x.npy"), "--device", "cpu",
                          "--out", str(tmp_path / "out"))
        _assert_usage_error(code, err, f"--model {path}", needle, out=tmp_path / "out")
        assert "forcerun" not in err and "snakemake" not in err


def test_a_workflow_model_of_another_image_shape_names_both(files, tmp_path, capsys):
    images = torch.randn(20, 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    cfg = {"sde": {"beta_min": 0.1, "beta_max": 20.0}, "model": {"oracle_rank": 3}}
    io.save_checkpoint(tmp_path / "oracle.pt", pca_oracle_checkpoint(images, cfg))
    code, err = _main(capsys, "--model", str(tmp_path / "oracle.pt"), "--images", str(files / "x.npy"), "--device",
                      "cpu", "--out", str(tmp_path / "out"))
    _assert_usage_error(code, err, f"--model {tmp_path / 'oracle.pt'}: the score model's image shape (1, 28, 28) "
                                   "differs from the data's (1, 8, 8)", out=tmp_path / "out")


def test_load_checkpoint_advice_fits_the_caller(files):
    with pytest.raises(io.CorruptFileError, match="--forcerun"):  # the workflow's own file
        io.load_checkpoint(files / "text.npy")
    with pytest.raises(io.CorruptFileError) as info:
        io.load_checkpoint(files / "text.npy", advice="not one of ours")
    assert str(info.value).endswith("not a complete zip archive; not one of ours") and "forcerun" not in str(info.value)


@pytest.mark.parametrize(("out", "needle"), [("file", "exists and is not a directory"),
                                             ("file/out", "is not a directory, so the output directory")])
def test_an_unusable_out_is_refused_before_any_model_is_loaded(files, tmp_path, capsys, out, needle):
    (tmp_path / "file").write_text("")
    out = tmp_path / out
    # the model would fail too: --out is checked first
    code, err = _main(capsys, "--source", "callable", "--path", "no_such_package.module:build", "--images",
                      str(files / "x.npy"), "--out", str(out))
    _assert_usage_error(code, err, f"--out {out}", needle)
    assert (tmp_path / "file").read_text() == ""


def test_cuda_when_there_is_none_is_a_clear_error(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = _main(capsys, *_callable(files, "good"), "--images", str(files / "x.npy"), "--device", "cuda",
                      "--out", str(tmp_path / "out"))
    _assert_usage_error(code, err, "--device cuda: ", "no usable CUDA device", out=tmp_path / "out")


def test_times_help_shows_the_rule_and_the_default(capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyse", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "each in (0, 1], strictly increasing, as the config's sample.times (default: 0.01 0.03 0.05 0.15 0.3)" \
        in text


def test_the_installed_command_prints_a_traceback_only_when_asked(files, tmp_path):
    args = [EXE, "analyse", *_callable(files, "three"), "--images", str(files / "x.npy"), "--device", "cpu",
            "--out", str(tmp_path / "out")]
    env = {k: v for k, v in os.environ.items() if k != "SCORE_GEOMETRY_DEBUG"}
    for extra, extra_env, traceback in (([], {}, False), (["--debug"], {}, True),
                                        ([], {"SCORE_GEOMETRY_DEBUG": "1"}, True)):
        proc = subprocess.run(args + extra, capture_output=True, text=True, timeout=E2E_TIMEOUT,
                              env={**env, **extra_env})
        assert proc.returncode == 2, proc.stderr
        assert ("Traceback" in proc.stderr) == traceback, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].endswith("it returned int; expected 'package.module:function' "
                                                              "or 'file.py:function', a function returning a "
                                                              "ScoreModel or a net(x, t) that returns a tensor of "
                                                              "x's shape"), proc.stderr
    assert not (tmp_path / "out").exists()
    proc = subprocess.run([EXE, "--version"], capture_output=True, text=True, timeout=E2E_TIMEOUT)
    assert proc.returncode == 0 and proc.stdout.strip() == f"score-geometry {__version__}"
