"""The package installs outside the repository: build the sdist and the wheel, install the wheel into a fresh
virtual environment in a temporary folder, and run `vlmsearch setup` and `vlmsearch demo` from there, as a
user who never cloned the project would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlmsearch import __version__
from vlmsearch.config import default_cache_dir

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str | Path, cwd: Path, timeout: float = 900) -> str:
    """The command's output, stdout then stderr (the CLI prints progress and notes on stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLMSEARCH_STORE", "VIRTUAL_ENV", "PYTHONPATH"))}
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env | {"HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.mark.slow  # ~6 min on 2 cores: pip installs torch and the rest into the fresh environment
def test_wheel_installs_and_runs_the_demo_outside_the_repository(tmp_path: Path):
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp_path / "dist", ROOT, cwd=ROOT)
    wheel = tmp_path / "dist" / f"vlmsearch-{__version__}-py3-none-any.whl"
    assert wheel.is_file() and (tmp_path / "dist" / f"vlmsearch-{__version__}.tar.gz").is_file()

    run(sys.executable, "-m", "venv", tmp_path / "env", cwd=tmp_path)
    bin_dir = tmp_path / "env" / "bin"
    # llama-cpp-python compiles from source; setup.sh keeps the wheel it built in the cache, so use it if there.
    built = [f"--find-links={p.parent}" for p in (default_cache_dir() / "wheels").glob("*/llama_cpp_python-*.whl")][:1]
    run(bin_dir / "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", *built, wheel, cwd=tmp_path)

    installed = run(bin_dir / "python", "-c", "import vlmsearch; print(vlmsearch.__file__)", cwd=tmp_path)
    assert installed.strip().startswith(str(tmp_path / "env")), installed  # the wheel's copy, not the checkout
    assert run(bin_dir / "vlmsearch", "--version", cwd=tmp_path).strip() == f"vlmsearch {__version__}"
    assert "offline chat model ready" in run(bin_dir / "vlmsearch", "setup", cwd=tmp_path)

    out = run(bin_dir / "vlmsearch", "--store", tmp_path / "store", "demo", "--out", tmp_path / "demo", "--images", "6", cwd=tmp_path)
    assert "ask (llm) chelsea.png 'what kind of animal is this?'" in out and "caption " in out
    report = (tmp_path / "demo" / "report.html").read_text(encoding="utf-8")
    assert "Answers (llm and vlm pipeline)" in report and "vlm-clipart-mlp" in report  # the package's own weights served
