import re
import subprocess
import sys

from fastdnn import cli


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
