"""The data-parallel equality table: every layer family of tests/mpi/families.py trained under
``mpirun -n R`` against one process on the same global batches.

usage: python scripts/data_parallel_table.py [--ranks 2 3]

For each family and rank count: the largest difference between rank 0's weights and one process's
(absolute, and relative to the largest weight of that array), and the largest difference between any
rank's weights and rank 0's (0 means every rank holds the same model bit for bit). The test
(tests/test_distributed.py) asserts the same quantities; this prints them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPI_TESTS = os.path.join(ROOT, "tests", "mpi")


def _launch(ranks, folder):
    environment = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                       PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    command = ["mpirun", "--oversubscribe", "-n", str(ranks), sys.executable, os.path.join(MPI_TESTS, "families_on_ranks.py"), folder]
    subprocess.run(command, check=True, env=environment, capture_output=True, text=True, timeout=900)


def _weights(folder, name, rank):
    with np.load(os.path.join(folder, f"{name}-rank{rank}.npz")) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)], json.loads(str(saved["history"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 3])
    args = parser.parse_args(argv)
    sys.path.insert(0, MPI_TESTS)
    import families

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for ranks in args.ranks:
            folder = os.path.join(scratch, str(ranks))
            os.makedirs(folder)
            _launch(ranks, folder)
            for name in families.FAMILIES:
                single, history = families.train(name)
                expected = single.get_weights()
                rank0, logged = _weights(folder, name, 0)
                absolute = max(float(np.max(np.abs(a - b))) for a, b in zip(rank0, expected))
                relative = max(float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) for a, b in zip(rank0, expected))
                between = max(
                    float(np.max(np.abs(a - b))) for r in range(1, ranks) for a, b in zip(_weights(folder, name, r)[0], rank0)
                )
                same_history = all(
                    np.allclose(logged[key], history[key], rtol=1e-5, atol=1e-6) for key in history
                ) and sorted(logged) == sorted(history)
                rows.append((name, ranks, absolute, relative, between, same_history))
    print(f"{'family':<12} {'ranks':>5} {'max |w - one process|':>22} {'relative':>10} {'max |w_r - w_0|':>16} {'history equal':>14}")
    for name, ranks, absolute, relative, between, same in rows:
        print(f"{name:<12} {ranks:>5} {absolute:>22.2e} {relative:>10.2e} {between:>16.1e} {str(same):>14}")


if __name__ == "__main__":
    main()
