import os
import re
import subprocess
import sys

import pytest

from fastdnn import cli, compile_ahead, config


def test_demo_reaches_the_promised_accuracy(capsys):
    accuracy = cli.demo(verbose=0)
    assert accuracy >= 0.96
    assert re.search(r"Test accuracy: 0\.9[6-9]|Test accuracy: 1\.0", capsys.readouterr().out)


def test_console_entry_point_runs_the_demo():
    result = subprocess.run(
        [sys.executable, "-m", "fastdnn", "demo", "--epochs", "2", "--verbose", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/2" in result.stdout and "Test accuracy:" in result.stdout


def test_bad_arguments_exit_with_usage():
    result = subprocess.run([sys.executable, "-m", "fastdnn", "demo", "--optimizer", "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_demo_mentions_compilation_only_when_kernels_were_compiled(capsys):
    cli.demo(epochs=1, verbose=1)
    capsys.readouterr()
    cli.demo(epochs=1, verbose=1)  # every kernel is compiled in this process by now
    out = capsys.readouterr().out
    assert re.search(r"Trained 1 epochs in \d+\.\d\d s\n", out), out
    assert "compil" not in out


def test_compile_ahead_fills_the_cache_so_that_the_demo_compiles_nothing(tmp_path):
    # One empty numba cache for both processes: `fastdnn compile` fills it, then the demo only loads.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    compiled = subprocess.run(
        [sys.executable, "-m", "fastdnn", "compile", "--family", "dense"], capture_output=True, text=True, timeout=600, env=env
    )
    assert compiled.returncode == 0, compiled.stderr
    lines = compiled.stdout.splitlines()
    assert lines[0] == "Compiling fastdnn's kernels for: dense"
    count = int(re.fullmatch(r"  dense +float32: +(\d+) kernels compiled in +\d+\.\d s", lines[1]).group(1))
    assert count > 0
    assert re.fullmatch(rf"Compiled {count} kernels in \d+\.\d s, cached in {re.escape(str(tmp_path))}.*", lines[2]), lines[2]
    assert any(path.suffix == ".nbi" for path in tmp_path.rglob("*"))
    demo = subprocess.run(
        [sys.executable, "-m", "fastdnn", "demo", "--epochs", "1"], capture_output=True, text=True, timeout=600, env=env
    )
    assert demo.returncode == 0, demo.stderr
    assert re.search(r"Trained 1 epochs in \d+\.\d\d s\n", demo.stdout) and "compil" not in demo.stdout, demo.stdout


def test_compile_refuses_when_the_disk_cache_is_off(monkeypatch, capsys):
    monkeypatch.setattr(config, "CACHE", False)
    assert cli.main(["compile"]) == 2
    assert "FASTDNN_CACHE=0" in capsys.readouterr().err


def test_compile_ahead_names_unknown_families_and_dtypes():
    with pytest.raises(ValueError, match=r"families: expected names among \['dense', .*received \['dens'\]"):
        compile_ahead.compile_ahead(["dens"])
    with pytest.raises(ValueError, match=r"dtypes: expected float32 and/or float64, received \['float16'\]"):
        compile_ahead.compile_ahead(["dense"], ["float16"])
