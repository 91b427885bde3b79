"""uotflow: unbalanced optimal transport for generative modeling and Wasserstein gradient flows.

The C++ library's OT metrics, differentiable losses and training runs, on torch tensors (no
copies: the module shares LibTorch with this interpreter's torch).

    import torch, uotflow
    x, y = torch.randn(10000, 2), torch.randn(10000, 2) + 1
    uotflow.sliced_wasserstein(x, y, n_projections=500, seed=0)   # tensor []
    run = uotflow.train({"method": "uotm", "data": {"name": "8gaussians"}},
                        steps=2000, seed=0, out=None)            # in memory
    samples = run.sample(1000, seed=1)                            # [1000, 2]

Groups: metrics (sliced_wasserstein, wasserstein, exact_ot, sinkhorn, sinkhorn_divergence, mmd,
energy, gaussian_w2, fid_from_features, metric), losses (sliced_wasserstein_loss, psi_star,
semidual_potential_loss, semidual_generator_loss, gradient_penalty, sliced_energy) and training
(train, load_run, Run, resolve_config, default_config, sample_run, info). docs/python.md has more.
"""

import json as _json
import os as _os
import sys as _sys

import torch  # noqa: F401  (LibTorch and the tensor type the module is linked against)

from . import _uotflow
from ._uotflow import (  # noqa: F401
    energy,
    exact_ot,
    fid_from_features,
    gaussian_w2,
    gradient_penalty,
    metric,
    mmd,
    psi_star,
    random_directions,
    semidual_generator_loss,
    semidual_potential_loss,
    sinkhorn,
    sinkhorn_cost,
    sinkhorn_divergence,
    sliced_energy,
    sliced_wasserstein,
    sliced_wasserstein_loss,
    squared_euclidean_cost,
    wasserstein,
)

__version__ = _uotflow.__version__


def _accepting_numpy(fn):
    """fn with NumPy arrays among its arguments turned into tensors (sharing their memory)."""
    import functools

    def convert(v):
        return _as_tensor(v) if type(v).__module__ == "numpy" and hasattr(v, "dtype") else v

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*[convert(a) for a in args], **{k: convert(v) for k, v in kwargs.items()})

    return wrapper


# The metrics take NumPy arrays too (as torch.from_numpy would give them: no copy).
for _name in ("energy", "exact_ot", "fid_from_features", "gaussian_w2", "metric", "mmd", "sinkhorn",
              "sinkhorn_cost", "sinkhorn_divergence", "sliced_wasserstein", "wasserstein"):
    globals()[_name] = _accepting_numpy(getattr(_uotflow, _name))
del _name

__all__ = [
    "Run", "default_config", "energy", "exact_ot", "fid_from_features", "gaussian_w2",
    "gradient_penalty", "info", "load_run", "map_run", "metric", "mmd", "psi_star",
    "random_directions",
    "resolve_config",
    "sample_run", "semidual_generator_loss", "semidual_potential_loss", "sinkhorn",
    "sinkhorn_cost", "sinkhorn_divergence", "sliced_energy", "sliced_wasserstein",
    "sliced_wasserstein_loss", "squared_euclidean_cost", "train", "wasserstein",
]


def _as_tensor(data):
    """A torch tensor from a tensor or anything numpy can read (no copy for tensors)."""
    if data is None or isinstance(data, torch.Tensor):
        return data
    import numpy as np

    return torch.from_numpy(np.ascontiguousarray(data))


def _read_config(config):
    """A config as a dict: None (built-in defaults), a dict, or the path of a JSON file."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return config
    if isinstance(config, (str, _os.PathLike)):
        # The library's reader: comments allowed, duplicate keys refused, one-line errors.
        return _json.loads(_uotflow.read_config_file(_os.fspath(config)))
    raise TypeError(f"config must be a dict, a path or None, not {type(config).__name__}")


def resolve_config(config=None, sets=(), *, method="uotm", steps=None, seed=None, device=None):
    """The fully resolved config (dict) of `config` (dict, JSON path or None) with `sets`
    ("key.path=value" strings) and the keyword overrides; raises ValueError naming a bad key."""
    sets = list(sets)
    if steps is not None:
        sets.append(f"train.steps={int(steps)}")
    if seed is not None:
        sets.append(f"seed={int(seed)}")
    if device is not None:
        sets.append(f"device={_json.dumps(str(device))}")
    return _json.loads(_uotflow.resolve_config(_json.dumps(_read_config(config)), sets, method))


def default_config(method="uotm"):
    """The built-in defaults of every key a run of `method` accepts (dict)."""
    return _json.loads(_uotflow.default_config(method))


class Run:
    """One training run: step it, sample it, read its metrics. Made by train() or load_run().

    Attributes: dir (the run directory, None in memory), config (resolved, dict), current_step,
    total_steps, finished, metrics (metrics.jsonl rows as dicts), evaluations (eval.jsonl rows).
    """

    def __init__(self, trainer):
        self._trainer = trainer

    def step(self, n=1):
        """Up to n more steps (fewer at the run's end); returns the steps done in all.
        Ctrl-C stops at the next step, writes a checkpoint and raises KeyboardInterrupt."""
        return self._trainer.step(int(n))

    def run(self):
        """Trains to the end of the run; returns self."""
        self._trainer.step(self._trainer.total_steps - self._trainer.current_step)
        return self

    def checkpoint(self):
        """Writes a checkpoint of the current step (runs with a directory)."""
        self._trainer.checkpoint()

    def sample(self, n, seed=0, ema=True):
        """n samples [n, D] (CPU) of the model as it is now; the same seed gives the same samples."""
        return self._trainer.sample(int(n), int(seed), bool(ema))

    def map(self, x, seed=0, ema=True):
        """The images of given source points under the run's map as it is now: x [n, D] (or
        [n, C, H, W] images; tensor or NumPy array) -> [n, D] (CPU), row i the image of row i. The
        map's noise (the z of T(x, z)) comes from `seed`. Methods with a map of inputs only (uotm,
        sjko, jko_icnn); others raise ValueError."""
        return self._trainer.map(_as_tensor(x), int(seed), bool(ema))

    def evaluate(self):
        """An evaluation now (the run's metrics), as a list of dicts; not recorded."""
        return [_json.loads(r) for r in self._trainer.evaluate()]

    def weights(self):
        """{group: {name: tensor}}: what final/ holds, as the model is now."""
        return self._trainer.weights()

    @property
    def metrics(self):
        return [_json.loads(r) for r in self._trainer.metrics()]

    @property
    def evaluations(self):
        return [_json.loads(r) for r in self._trainer.evaluations()]

    @property
    def dir(self):
        return self._trainer.run_dir or None

    @property
    def config(self):
        return _json.loads(self._trainer.config_json)

    @property
    def current_step(self):
        return self._trainer.current_step

    @property
    def total_steps(self):
        return self._trainer.total_steps

    @property
    def finished(self):
        return self._trainer.finished

    def close(self):
        """Releases the run directory's lock (also when the object is collected)."""
        self._trainer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        where = self.dir or "in memory"
        return f"<uotflow.Run {where}: step {self.current_step}/{self.total_steps}>"


def _command_line():
    return " ".join(["python"] + [str(a) for a in _sys.argv])


def train(config=None, data=None, *, source=None, out="runs", name=None, sets=(), steps=None,
          seed=None, device=None, method="uotm", progress=True, run=True, distributed=False):
    """Trains a run and returns its Run.

    config: dict, path of a JSON config, or None (built-in defaults of `method`).
    data: the target data set as a tensor [N, D] (or images [N, C, H, W] in [-1, 1]), or a NumPy
        array; None uses the config's "data" section (a flow's: its sw_data term's params.data). A
        resume must pass it again.
    source: the source data set mu the same way (a translation from your own points); None uses
        the config's "source" section (by default the Gaussian prior).
    out: parent folder of the new run directory (auto-numbered, as the CLI's --out), or None to
        keep the run in memory only (no files, no checkpoints).
    sets: "key.path=value" overrides; steps, seed, device: as the CLI's flags.
    progress: tick lines on stderr. run: False returns the Run before its first step.
    distributed: train data parallel with the processes the environment names (WORLD_SIZE, RANK,
        MASTER_ADDR, MASTER_PORT, as torchrun sets them; docs/distributed.md). Every process calls
        train() with the same config and seed; rank 0 keeps the run directory.
    Config errors raise ValueError with the library's one-line message, before anything is written.
    """
    resolved = resolve_config(config, sets, method=method, steps=steps, seed=seed, device=device)
    trainer = _uotflow.Trainer(_json.dumps(resolved), _as_tensor(data),
                               out="" if out is None else str(out), name=name or "",
                               progress=bool(progress), command_line=_command_line(),
                               source=_as_tensor(source), distributed=bool(distributed))
    result = Run(trainer)
    return result.run() if run else result


def load_run(path, data=None, *, source=None, steps=None, progress=True):
    """Reopens a run directory at its newest verified checkpoint (exact resume): step() continues
    it (steps: a new length, as the CLI's --resume --steps), sample() draws from it. A run trained
    on data (or a source) held in memory needs the same again."""
    flags = [("train.steps", str(int(steps)))] if steps is not None else []
    trainer = _uotflow.Trainer("{}", _as_tensor(data), progress=bool(progress),
                               command_line=_command_line(), resume_dir=str(path), flags=flags,
                               source=_as_tensor(source))
    return Run(trainer)


def sample_run(path, n, seed=0, ema=True, phase=-1):
    """n samples [n, D] from a finished run's final/ weights (or those of a phase), as the CLI's
    `uotflow sample`."""
    return _uotflow.sample_run(str(path), int(n), int(seed), bool(ema), int(phase))


def map_run(path, x, seed=0, ema=True, phase=-1):
    """The images of given source points x [n, D] under a finished run's map (final/ weights, or
    those of a phase), in order, as the CLI's `uotflow sample --input`; the run's source and data
    are not needed."""
    return _uotflow.map_run(str(path), _as_tensor(x), int(seed), bool(ema), int(phase))


def info():
    """Version, LibTorch, BLAS kernels and every registry's names: a dict."""
    out = {"version": __version__, "torch": _uotflow.torch_version,
           "blas": _uotflow.blas_core() or "not OpenBLAS"}
    for title, entries in _uotflow.registries():
        out[title] = {name: text for name, text in entries}
    return out
