import json
import subprocess
import sys

import pytest

from cvae.__main__ import main


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cvae", *args], capture_output=True, text=True, env=env)


def test_info_json(capsys):
    assert main(["info", "--profile", "full", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 1_155_993 and info["profile"] == "full"
    assert info["config"]["latent_dim"] == 128


def test_info_with_override(capsys):
    assert main(["info", "--set", "latent_dim=64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"] == 1_094_425


def test_data_json_on_the_stand_in(stand_in_dir, capsys):
    assert main(["data", "--profile", "smoke", "--data-dir", str(stand_in_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["global_classes"] == 21
    assert result["octmnist"] == {"train": 160, "val": 160, "test": 160, "classes": 4, "md5_ok": False}
    assert result["synthetic"] is True


def test_synth_writes_the_stand_in(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--per-class", "2"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["octmnist.npz", "pathmnist.npz", "tissuemnist.npz"]


@pytest.mark.parametrize("args, message", [
    (["info", "--profile", "huge"], "unknown profile 'huge'"),
    (["info", "--set", "latentdim=3"], "unknown config key 'latentdim'"),
    (["train", "--profile", "smoke", "--set", "epochs=many"], "epochs must be an integer"),
    (["ablate", "nonexistent"], "unknown ablation 'nonexistent'"),
    (["train", "--profile", "smoke", "--set", "datasets=pathmnist,organmnist3d"],
     "datasets must be distinct 2D MedMNIST flags"),
])
def test_user_errors_exit_nonzero_with_one_clear_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_train_prints_the_run_folder_last(stand_in_dir, runs_dir):
    result = run_cli("train", "--profile", "smoke", "--data-dir", str(stand_in_dir), "--set", "epochs=1",
                     "--set", "encoder_channels=8,16,32", "--set", "hidden_dim=32",
                     env={**__import__("os").environ, "CVAE_RUNS_DIR": str(runs_dir)})
    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.startswith(str(runs_dir)) and (runs_dir / last_line.split("/")[-1] / "summary.json").exists()
