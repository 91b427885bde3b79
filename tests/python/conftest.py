"""Shared fixtures of the Python module's tests: the CLI next to the module, tiny configs."""
import os
import subprocess

import pytest


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("UOTFLOW_CLI")
    if not path or not os.path.exists(path):
        pytest.skip("UOTFLOW_CLI does not name the uotflow program (ctest sets it)")

    # The CLI on this interpreter's BLAS kernels (it would start itself again on better ones where
    # OpenBLAS fell back to its generic kernels; docs/python.md): kernels round differently, and
    # runs resumed across the two must be bit-identical.
    import uotflow

    env = dict(os.environ)
    core = uotflow.info()["blas"]
    if core != "not OpenBLAS":
        env["OPENBLAS_CORETYPE"] = core

    def run(*args, check=True):
        result = subprocess.run([path, *map(str, args)], capture_output=True, text=True, env=env)
        if check and result.returncode != 0:
            raise AssertionError(f"uotflow {' '.join(map(str, args))} failed:\n{result.stderr}")
        return result

    return run


def tiny_config(steps=40):
    """A small UOTM config (MLP nets, 8 Gaussians, constant lr) that trains in seconds."""
    return {
        "method": "uotm",
        "seed": 123,
        "data": {"name": "8gaussians"},
        "generator": {"net": "mlp", "width": 32, "depth": 2, "nz": 2},
        "potential": {"net": "mlp", "width": 32, "depth": 2},
        "loss": {"r1_gamma": 0.2, "cost_scale": 0.1},
        "train": {"steps": steps, "batch_size": 64, "d_steps": 2, "log_every": 5,
                  "eval_every": 10, "snapshot_every": 10, "checkpoint_every": 10},
        "eval": {"n": 200, "n_projections": 50, "metrics": ["sw2"]},
    }
