"""Training from Python: in memory and in run directories, resume between Python and the CLI
(bit-identical on CPU), the caller's random numbers left alone, config errors, Ctrl-C."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import uotflow
from conftest import tiny_config


def final_bytes(run_dir):
    d = os.path.join(run_dir, "final")
    return {f: open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))}


def test_version_and_info():
    assert uotflow.__version__.count(".") == 2
    info = uotflow.info()
    assert info["version"] == uotflow.__version__
    flat = json.dumps(info)
    for name in ("uotm", "sjko", "swjko", "sw2", "kl"):
        assert f'"{name}"' in flat


def test_train_in_memory_learns():
    cfg = tiny_config(300)
    cfg["eval"]["at_start"] = True
    cfg["train"].update({"eval_every": 300, "lr_g": 1e-3, "lr_d": 1e-3, "ema_decay": 0.9})
    torch.manual_seed(0)
    data = torch.randn(2000, 2) * 0.2 + torch.tensor([3.0, -1.0])
    run = uotflow.train(cfg, data=data, out=None, progress=False)
    assert run.dir is None and run.finished and run.current_step == 300
    sw2 = [r["value"] for r in run.evaluations if r["metric"] == "sw2"]
    assert len(sw2) == 2
    assert sw2[-1] < 0.15 * sw2[0], sw2  # from N(0, I) to N((3, -1), 0.2^2 I): 1.91 -> 0.16
    x = run.sample(500, seed=1)
    assert x.shape == (500, 2) and x.dtype == torch.float32
    assert torch.equal(x, run.sample(500, seed=1))
    assert (x.mean(0) - torch.tensor([3.0, -1.0])).norm() < 0.3
    assert [m["step"] for m in run.metrics] == list(range(5, 301, 5))
    assert set(run.weights()) == {"generator", "generator_ema", "potential"}


def test_the_callers_random_numbers_are_left_alone():
    torch.manual_seed(42)
    expected = torch.rand(6)
    torch.manual_seed(42)
    run = uotflow.train(tiny_config(20), out=None, progress=False)
    run.sample(10)
    assert torch.equal(torch.rand(6), expected)


def test_config_errors_are_value_errors_and_write_nothing(tmp_path):
    cfg = tiny_config()
    cfg["train"]["no_such_key"] = 1
    with pytest.raises(ValueError) as e:
        uotflow.train(cfg, out=tmp_path / "runs")
    assert "train.no_such_key" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown phi .nope. .known: chi2, kl, linear, softplus"):
        uotflow.train(tiny_config(), sets=["loss.phi1=nope"], out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")
    with pytest.raises(ValueError):
        uotflow.load_run(tmp_path / "not_a_run")


def test_python_to_cli_resume_is_bit_identical(tmp_path, cli):
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(tiny_config(40)))
    straight = cli("train", "--config", cfg_path, "--out", tmp_path / "a").stdout.split()[-1]
    run = uotflow.train(cfg_path, out=tmp_path / "b", progress=False, run=False)
    assert run.step(17) == 17
    run.checkpoint()
    run_dir = run.dir
    run.close()
    cli("train", "--resume", run_dir)
    assert final_bytes(run_dir) == final_bytes(straight)
    assert torch.equal(uotflow.sample_run(run_dir, 100, seed=3),
                       uotflow.sample_run(straight, 100, seed=3))


def test_cli_to_python_resume_is_bit_identical(tmp_path, cli):
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(tiny_config(40)))
    straight = uotflow.train(cfg_path, out=tmp_path / "a", progress=False)
    first = cli("train", "--config", cfg_path, "--steps", 20, "--out", tmp_path / "b")
    run_dir = first.stdout.split()[-1]
    run = uotflow.load_run(run_dir, steps=40, progress=False)
    assert run.current_step == 20
    run.run()
    assert run.finished
    straight_dir = straight.dir
    straight.close()
    run.close()
    assert final_bytes(run_dir) == final_bytes(straight_dir)


def test_ctrl_c_stops_with_a_checkpoint(tmp_path):
    cfg = tiny_config(1_000_000)
    cfg["train"]["checkpoint_every"] = 0
    cfg["train"]["eval_every"] = 0
    cfg["train"]["snapshot_every"] = 0
    script = (
        "import json, sys, uotflow\n"
        "print('started', flush=True)\n"
        f"uotflow.train(json.loads({json.dumps(json.dumps(cfg))}), out={str(tmp_path)!r},"
        " progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    assert proc.stdout.readline().strip() == "started"
    run_dir = None
    for _ in range(600):  # the run directory appears once the config is accepted
        dirs = [d for d in os.listdir(tmp_path)] if tmp_path.exists() else []
        if dirs and os.path.exists(tmp_path / dirs[0] / "metrics.jsonl"):
            run_dir = tmp_path / dirs[0]
            break
        time.sleep(0.1)
    assert run_dir is not None, proc.stderr.read() if proc.poll() is not None else "no run"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err, err
    assert any(f.endswith(".ckpt") for f in os.listdir(run_dir / "checkpoints"))
    assert "interrupted at step" in (run_dir / "log.txt").read_text()
    run = uotflow.load_run(run_dir, progress=False)  # resumable where it stopped
    assert 0 < run.current_step < 1_000_000
    run.close()


def test_translation_from_a_source_in_memory_maps_given_rows(tmp_path, cli):
    torch.manual_seed(1)
    source = torch.randn(1000, 2) * 0.2 + torch.tensor([-2.0, 0.0])
    data = torch.randn(1000, 2) * 0.2 + torch.tensor([2.0, 0.0])
    run = uotflow.train(tiny_config(40), data=data, source=source, out=str(tmp_path),
                        progress=False)
    assert run.config["source"]["name"] == "in_memory"
    assert any(r["metric"] == "transport_cost" for r in run.evaluations)
    x = torch.tensor([[-2.0, 0.1], [-1.8, -0.2], [-2.2, 0.0]], dtype=torch.float64)
    y = run.map(x, seed=4)
    assert y.shape == (3, 2) and y.dtype == torch.float32
    assert torch.equal(y, run.map(x.numpy(), seed=4))  # NumPy arrays too
    run.close()
    # A finished run maps them the same way, from Python and from the CLI, without the source.
    run_dir = str(next(p for p in tmp_path.iterdir() if p.is_dir()))
    assert torch.equal(y, uotflow.map_run(run_dir, x, seed=4))
    np.save(tmp_path / "x.npy", x.numpy())
    cli("sample", "--run", run_dir, "--input", tmp_path / "x.npy", "--seed", 4,
        "--out", tmp_path / "y.npy")
    assert torch.equal(y, torch.from_numpy(np.load(tmp_path / "y.npy")))
    with pytest.raises(ValueError, match="shape"):
        uotflow.map_run(run_dir, torch.zeros(4, 3))


def test_two_python_processes_train_data_parallel_as_one_of_two_shards(tmp_path, cli):
    # Two interpreters joined as torchrun joins them (the environment), each calling train() with
    # the same config: the weights of one CLI process of two shards, bit for bit.
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(tiny_config(20)))
    shards = cli("train", "--config", cfg_path, "--set", "train.shards=2", "--out",
                 tmp_path / "a").stdout.split()[-1]
    script = ("import sys, uotflow\n"
              "run = uotflow.train(sys.argv[1], out=sys.argv[2], progress=False, distributed=True)\n"
              "print(run.dir)\n")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), UOTFLOW_DIST_TIMEOUT="60")
        procs.append(subprocess.Popen([sys.executable, "-c", script, str(cfg_path),
                                       str(tmp_path / "b")], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env))
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    run_dir = outputs[0][0].split()[-1]
    assert outputs[1][0].strip() == "None", "only rank 0 keeps a run directory"
    assert final_bytes(run_dir) == final_bytes(shards)


def test_distributed_without_the_environment_is_a_value_error(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="set WORLD_SIZE"):
        uotflow.train(tiny_config(5), out=tmp_path, distributed=True)
    assert not any(tmp_path.iterdir())
