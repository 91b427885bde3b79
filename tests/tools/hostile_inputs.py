#!/usr/bin/env python3
"""Hostile inputs against the uotflow command line, as a careless or hostile user would give them.

Each family draws fresh variants from its seed (a new seed gives new variants): numbers past the
range of every integer and float key of every method's config, output paths that are not regular
files or belong to a run, resumes of runs whose files were edited, torn or corrupted, malformed
.npy files, and number flags out of range. Every command runs under an address-space limit, and is
sent SIGTERM after --timeout seconds (a long but well-behaved run then stops at the end of its
step and exits 0) and SIGKILL 30 s later. Each variant is classified:

  hang       needed SIGKILL
  crash      ended by a signal, or an exit code other than 0, 1, 2
  raw        an error that is not exactly one `uotflow: error:` line, or that carries a library's
             text (LibTorch's enforce/allocator messages, nlohmann, std::, filesystem errors)
  unnamed    a refused setting (exit 2) whose message names neither the key, the flag nor the file
  loss       a protected file changed, a device/FIFO/folder was replaced, a resume started over or
             lost checkpoints, or an input that must be refused was accepted (exit 0)

Prints a table of counts per family and exits 1 when any variant is bad.

  python3 tests/tools/hostile_inputs.py build/uotflow --variants 40 --seed 7
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

RAW = re.compile(
    r"enforce fail|alloc_cpu|c10::|\[json\.exception|nlohmann|std::|basic_string|terminate called|"
    r"Error code \d+|what\(\)|Exception raised from|filesystem error|stoll|stoi|vector::|"
    r"AddressSanitizer|runtime error:|Segmentation|core dumped|INTERNAL ASSERT|overflowed|"
    r"Expected .* to be|Tensor|at::|torch::")

QUADRATIC = '{"target": {"name": "quadratic", "params": {}}}'

# Small, fast settings of each method: the base every variant changes one thing of.
BASE = {
    "uotm": ["--steps", "3", "--set", "train.batch_size=64", "--set", "generator.width=32",
             "--set", "potential.width=32"],
    "sjko": ["--set", "method=sjko", "--set", "sjko.n_phases=2", "--set", "sjko.iterations=2",
             "--set", "sjko.init_iterations=2", "--set", "train.batch_size=64",
             "--set", "generator.width=32", "--set", "potential.width=32"],
    "swjko": ["--set", "method=swjko", "--set", "functional.params=" + QUADRATIC,
              "--set", "swjko.n_phases=2", "--set", "swjko.iterations=2",
              "--set", "swjko.batch_size=64", "--set", "swjko.n_projections=50",
              "--set", "parametrization.realnvp.width=16"],
    "jko_icnn": ["--set", "method=jko_icnn", "--set", "functional.params=" + QUADRATIC,
                 "--set", "jko_icnn.n_phases=2", "--set", "jko_icnn.iterations=2",
                 "--set", "jko_icnn.batch_size=64", "--set", "icnn.width=16"],
}
COMMON = ["--set", "eval.n=200", "--set", "eval.n_projections=50", "--set", "eval.at_start=false"]

INT_VALUES = [2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1, 0, -1]
FLOAT_VALUES = ["1e300", "-1e300", "1e39", "-1e39", "-1.0", "0.0", "1e-320", "1e30", "1e999"]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Runner:
    def __init__(self, binary, timeout, memory):
        self.binary = os.path.abspath(binary)
        self.timeout = timeout
        self.memory = memory

    def limit(self):
        if self.memory > 0:  # 0: none (AddressSanitizer reserves terabytes of address space)
            resource.setrlimit(resource.RLIMIT_AS, (self.memory, self.memory))
        os.setsid()

    def run(self, args, cwd):
        """(exit code or -signal, output, killed)."""
        proc = subprocess.Popen([self.binary] + args, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, preexec_fn=self.limit)
        killed = False
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
                killed = True
        return proc.returncode, out.decode("utf-8", "replace"), killed


def classify(code, out, killed, names=(), must_refuse=False):
    """The list of what is wrong with one outcome (empty: fine)."""
    if killed:
        return ["hang"]
    if code < 0 or code not in (0, 1, 2):
        return ["crash"]
    bad = []
    errors = [line for line in out.splitlines() if line.startswith("uotflow: error:")]
    if code != 0:
        if len(errors) != 1 or RAW.search(out):
            bad.append("raw")
        elif code == 2 and names and not any(n in errors[0] for n in names):
            bad.append("unnamed")
    elif must_refuse:
        bad.append("loss")
    return bad


def key_names(key):
    last = key.split(".")[-1]
    return (key, "'" + last + "'", last + " ", last + "=", last + ":", "." + last)


def config_keys(runner, method, tmp):
    """The integer and float keys of a method's resolved config."""
    code, out, _ = runner.run(["train", "--dry-run"] + BASE[method], tmp)
    assert code == 0, out
    config = json.loads(out[out.index("{"):])
    ints, floats = [], []

    def walk(node, key):
        if isinstance(node, dict):
            for name, child in node.items():
                walk(child, key + "." + name if key else name)
        elif isinstance(node, bool):
            pass
        elif isinstance(node, int):
            ints.append(key)
        elif isinstance(node, float):
            floats.append(key)

    walk(config, "")
    return ints, floats


def tiny_run(runner, tmp):
    code, out, _ = runner.run(
        ["train", "--out", "runs", "--name", "base", "--seed", "5", "--set",
         "train.checkpoint_every=2", "--set", "train.eval_every=2", "--set", "train.log_every=1",
         "--set", "train.steps=6"] + BASE["uotm"][2:] + COMMON, tmp)
    assert code == 0, out
    return os.path.join(tmp, "runs", "00000-base")


def family_numbers(rng, runner, tmp, n, keys):
    """Every integer and float key of every method, set past its range."""
    results = []
    for i in range(n):
        method = rng.choice(sorted(keys))
        ints, floats = keys[method]
        if rng.random() < 0.5:
            key = rng.choice(ints)
            value = str(rng.choice(INT_VALUES + [10 ** rng.randint(9, 18)]))
        else:
            key = rng.choice(floats)
            value = rng.choice(FLOAT_VALUES + ["%.3g" % 10 ** rng.uniform(-320, 308)])
        out_dir = os.path.join(tmp, "num-%d" % i)
        args = ["train", "--out", out_dir] + BASE[method] + COMMON + ["--set", key + "=" + value]
        code, out, killed = runner.run(args, tmp)
        results.append((" ".join(args[-2:]) + " [" + method + "]", code, out,
                        classify(code, out, killed, key_names(key))))
        shutil.rmtree(out_dir, ignore_errors=True)
    return results


def family_outputs(rng, runner, tmp, n, run):
    """--out of sample, data, eval-free commands at paths that are not theirs to replace."""
    results = []
    for i in range(n):
        work = os.path.join(tmp, "out-%d" % i)
        os.makedirs(work)
        kind = rng.choice(["fifo", "device", "folder", "existing", "final", "checkpoint",
                           "samples-of-run", "missing-folder"])
        target = os.path.join(work, "target.npy")
        must_refuse = True
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "device":
            try:
                os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
            except PermissionError:
                os.mkfifo(target)  # not root: a FIFO stands in for the device
        elif kind == "folder":
            os.makedirs(os.path.join(target, "keep"))
        elif kind == "existing":
            with open(target, "w") as f:
                f.write("keep")
        elif kind == "final":
            target = os.path.join(run, "final", "generator_ema.safetensors")
        elif kind == "checkpoint":
            target = sorted(os.listdir(os.path.join(run, "checkpoints")))[-1]
            target = os.path.join(run, "checkpoints", target)
        elif kind == "samples-of-run":
            target = os.path.join(run, "samples", rng.choice(os.listdir(os.path.join(run, "samples"))))
        elif kind == "missing-folder":
            target = os.path.join(work, "no", "such", "folder", "x.npy")
            must_refuse = False  # made, or refused with a clear line
        overwrite = rng.random() < 0.5 and kind not in ("existing",)
        command = rng.choice([
            ["sample", "--run", run, "--n", "5"],
            ["data", "--dataset", "8gaussians", "--n", "5"],
        ])
        args = command + ["--out", target] + (["--overwrite"] if overwrite else [])
        before = snapshot(target)
        code, out, killed = runner.run(args, tmp)
        bad = classify(code, out, killed, ("'" + target + "'", "--out", "output"), must_refuse)
        if before is not None and snapshot(target) != before:
            bad.append("loss")
        results.append((kind + (" --overwrite" if overwrite else "") + " <- " + command[0], code,
                        out, sorted(set(bad))))
    return results


def snapshot(path):
    """What must not change at path: its type and, for a regular file, its bytes."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(st.st_mode):
        return ("file", sha(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", tuple(sorted(os.listdir(path))))
    return (stat.S_IFMT(st.st_mode), st.st_rdev)


def family_resume(rng, runner, tmp, n, run):
    """Resumes of a copy of a run whose files were edited, torn or corrupted."""
    results = []
    for i in range(n):
        copy = os.path.join(tmp, "resume-%d" % i)
        shutil.copytree(run, copy)
        fault = rng.choice(["method", "number", "added-key", "torn-eval", "torn-metrics",
                            "bit-flip", "truncate", "all-corrupt", "no-final", "renamed"])
        ckpts = sorted(os.listdir(os.path.join(copy, "checkpoints")))
        newest = os.path.join(copy, "checkpoints", ckpts[-1])
        names = ("config.json", ".ckpt", "checkpoint", "resume")
        if fault in ("method", "number", "added-key"):
            with open(os.path.join(copy, "config.json")) as f:
                config = json.load(f)
            if fault == "method":
                config["method"] = rng.choice(["sjko", "swjko", "otm", "jko_icnn"])
                names = ("method",)
            elif fault == "number":
                config["train"]["lr_g"] = rng.choice([0.5, 1e300, -1.0])
                names = ("train.lr_g",)
            else:
                config["train"]["bogus"] = 1
                names = ("bogus",)
            with open(os.path.join(copy, "config.json"), "w") as f:
                json.dump(config, f, indent=2)
        elif fault in ("torn-eval", "torn-metrics"):
            path = os.path.join(copy, "eval.jsonl" if fault == "torn-eval" else "metrics.jsonl")
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:
                f.write(data[:-rng.randint(2, 40)])
        elif fault in ("bit-flip", "truncate", "all-corrupt"):
            targets = [os.path.join(copy, "checkpoints", c) for c in ckpts]
            for path in (targets if fault == "all-corrupt" else [newest]):
                with open(path, "r+b") as f:
                    size = os.path.getsize(path)
                    if fault == "truncate":
                        f.truncate(rng.randint(0, size - 1))
                    else:
                        offset = rng.randrange(size)
                        f.seek(offset)
                        byte = f.read(1)[0]
                        f.seek(offset)
                        f.write(bytes([byte ^ (1 << rng.randrange(8))]))
        elif fault == "no-final":
            shutil.rmtree(os.path.join(copy, "final"))
        elif fault == "renamed":
            os.rename(newest, os.path.join(copy, "checkpoints", "step-00000001.ckpt"))
        last_good = rng.random() < 0.5
        before = checkpoint_files(copy)
        rows_before = steps_of(os.path.join(copy, "metrics.jsonl"))
        args = ["train", "--resume", copy, "--steps", "8"] + (
            ["--resume-from-last-good"] if last_good else [])
        code, out, killed = runner.run(args, tmp)
        bad = classify(code, out, killed, names)
        after = checkpoint_files(copy)
        # Checkpoints are never deleted by a failed resume, nor all set aside without a word.
        if code != 0 and after != before:
            bad.append("loss")
        if code == 0:
            rows = steps_of(os.path.join(copy, "metrics.jsonl"))
            if rows and rows_before and rows[0] != rows_before[0]:
                bad.append("loss")  # the history was dropped: the run started over
            if rows != sorted(set(rows)):
                bad.append("loss")
        results.append((fault + (" last-good" if last_good else ""), code, out, sorted(set(bad))))
        shutil.rmtree(copy, ignore_errors=True)
    return results


def checkpoint_files(run):
    folder = os.path.join(run, "checkpoints")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def steps_of(path):
    steps = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    steps.append(json.loads(line)["step"])
                except (ValueError, KeyError, TypeError):
                    pass
    return steps


def family_npy(rng, runner, tmp, n):
    """.npy files with damaged headers, given to eval."""
    good = os.path.join(tmp, "good.npy")
    code, out, _ = runner.run(["data", "--dataset", "8gaussians", "--n", "50", "--out", good], tmp)
    assert code == 0, out
    with open(good, "rb") as f:
        data = f.read()
    results = []
    for i in range(n):
        shape = rng.choice(["(-1, 2)", "(50, -2)", "(99999999999999999999, 2)", "(50, 2, 3)",
                            "(5e1, 2)", "()", "(50,)", "(0, 2)", "(4611686018427387904, 4)",
                            "(50, 0)", "(%d, 2)" % rng.randint(51, 10**6)])
        descr = rng.choice(["'<f4'", "'<f8'", "'|O'", "'<c8'", "'>f4'", "'<U3'", "'<f4'"])
        text = "{'descr': %s, 'fortran_order': False, 'shape': %s, }" % (descr, shape)
        text += " " * (-(10 + len(text) + 1) % 64) + "\n"
        blob = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")
        blob += data[data.index(b"\n") + 1:]  # the 50 x 2 float32 payload of the good file
        path = os.path.join(tmp, "bad-%d.npy" % i)
        with open(path, "wb") as f:
            f.write(blob)
        code, out, killed = runner.run(["eval", "--metrics", "sw2,mean_error", "--samples", path,
                                        "--reference", good], tmp)
        results.append((descr + " " + shape, code, out, classify(code, out, killed, (path,))))
    return results


def fits(flag, value):
    """Whether a flag's type holds the value (an integer flag: digits only, up to its maximum)."""
    if flag in ("--epsilon",):
        try:
            return abs(float(value)) < float("inf") and "x" not in value.lower()
        except ValueError:
            return False
    if not value.isdigit():
        return False
    return int(value) <= (2**64 - 1 if flag == "--seed" else 2**63 - 1)


def family_flags(rng, runner, tmp, n, run):
    """Number flags given what they cannot hold."""
    values = ["-1", "0", "1e12", "99999999999999999999", "0x10", "inf", "nan", "", "2.5",
              "18446744073709551616", "9223372036854775808", " 7", "-0"]
    commands = [
        (["train", "--dry-run", "--seed"], "--seed"),
        (["train", "--dry-run", "--steps"], "--steps"),
        (["train", "--dry-run", "--threads"], "--threads"),
        (["sample", "--run", run, "--out", "x.npy", "--n"], "--n"),
        (["sample", "--run", run, "--out", "y.npy", "--n", "3", "--phase"], "--phase"),
        (["data", "--dataset", "8gaussians", "--out", "z.npy", "--n"], "--n"),
        (["eval", "--samples", "good.npy", "--reference", "good.npy", "--projections"],
         "--projections"),
        (["eval", "--samples", "good.npy", "--reference", "good.npy", "--metrics", "sinkhorn",
          "--epsilon"], "--epsilon"),
    ]
    results = []
    for i in range(n):
        command, flag = rng.choice(commands)
        value = rng.choice(values)
        work = os.path.join(tmp, "flags-%d" % i)
        os.makedirs(work)
        shutil.copy(os.path.join(tmp, "good.npy"), work)
        code, out, killed = runner.run(command + [value], work)
        bad = classify(code, out, killed, (flag, "'" + value + "'", flag.lstrip("-")))
        # A value that does not fit its flag is never clamped or wrapped into one that does.
        if code == 0 and not fits(flag, value):
            bad.append("loss")
        results.append((" ".join([command[0], flag, repr(value)]), code, out, sorted(set(bad))))
        shutil.rmtree(work, ignore_errors=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("--variants", type=int, default=20, help="variants per family")
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--memory-gib", type=float, default=8,
                        help="address-space limit of each command (0: none)")
    parser.add_argument("--families", default="numbers,outputs,resume,npy,flags")
    parser.add_argument("--verbose", action="store_true", help="print every variant")
    a = parser.parse_args()
    seed = a.seed if a.seed is not None else int(time.time())
    runner = Runner(a.binary, a.timeout, int(a.memory_gib * 2**30))
    tmp = tempfile.mkdtemp(prefix="uotflow-hostile-")
    try:
        run = tiny_run(runner, tmp)
        families = a.families.split(",")
        keys = {}
        if "numbers" in families:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                found = pool.map(lambda m: (m, config_keys(runner, m, tmp)), sorted(BASE))
            keys = dict(found)
        makers = {
            "numbers": lambda r, n: family_numbers(r, runner, tmp, n, keys),
            "outputs": lambda r, n: family_outputs(r, runner, tmp, n, run),
            "resume": lambda r, n: family_resume(r, runner, tmp, n, run),
            "npy": lambda r, n: family_npy(r, runner, tmp, n),
            "flags": lambda r, n: family_flags(r, runner, tmp, n, run),
        }
        if "flags" in families and "npy" not in families:
            family_npy(random.Random(0), runner, tmp, 0)  # writes good.npy
        print("seed %d, %d variants per family, timeout %g s, address space %g GiB" %
              (seed, a.variants, a.timeout, a.memory_gib))
        header = ("family", "variants", "exit 0", "exit 2", "exit 1", "hang", "crash", "raw",
                  "unnamed", "loss")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        failures = []
        for index, family in enumerate(families):
            rng = random.Random(seed * 1000 + index)
            started = time.time()
            results = makers[family](rng, a.variants)
            counts = {k: 0 for k in header[2:]}
            for what, code, out, bad in results:
                if code in (0, 1, 2):
                    counts["exit %d" % code] += 1
                for b in bad:
                    counts[b] += 1
                if bad:
                    failures.append((family, what, code, ",".join(bad), out.strip()[-400:]))
                if a.verbose:
                    print("  %s: %s -> %d %s %s" % (family, what, code, bad,
                                                    out.strip().splitlines()[-1:]))
            print("| %s | %d | %s | (%.0f s)" % (family, len(results), " | ".join(
                str(counts[k]) for k in header[2:]), time.time() - started))
        for family, what, code, bad, out in failures:
            print("\n%s: %s -> exit %d: %s\n  %s" % (family, what, code, bad,
                                                   out.replace("\n", "\n  ")))
        return 1 if failures else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
