#!/usr/bin/env python3
"""Tables (Markdown) and the stability figure (SVG) of docs/methods/uotm.md, from the runs of
scripts/uotm_claims.sh. Needs numpy and the uotflow CLI (for the reference data sets and the
2-D metrics).

    python3 scripts/uotm_claims_summary.py [--root claims] [--uotflow build/uotflow] [--svg FILE]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

GMM_1D = '{"means": [1.0, -1.0], "stds": 0.1, "weights": [0.99, 0.01]}'
OUTLIERS_2D = np.array([[5.0, 5.0], [-5.0, -5.0]], dtype=np.float32)
RADIUS_8G = 2.0 * math.sqrt(2.0)
CENTRES_8G = np.array([[RADIUS_8G * math.cos(k * math.pi / 4), RADIUS_8G * math.sin(k * math.pi / 4)]
                       for k in range(8)], dtype=np.float32)
STD_8G = 0.5 / math.sqrt(2.0)


def cli(args, uotflow):
    return subprocess.run([uotflow] + args, check=True, capture_output=True, text=True).stdout


def data_samples(uotflow, tmp, name, n, seed, params="{}"):
    path = os.path.join(tmp, f"{name}-{n}-{seed}.npy")
    if not os.path.exists(path):
        cli(["data", "--dataset", name, "--params", params, "--n", str(n), "--seed", str(seed),
             "--out", path], uotflow)
    return path


def mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    return f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}"


def runs_of(root, group):
    folder = os.path.join(root, group)
    if not os.path.isdir(folder):
        return {}
    return {f[:-4]: os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".npy")}


def w2_1d(a, b):
    """Exact W2 between two 1-D sample sets of equal size (sorted pairs)."""
    return float(np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2)))


def kl_hist(samples, data, lo=-2.0, hi=2.5, bins=450):
    """KL(samples | data) from histograms on a common grid (bins the data leave empty are skipped)."""
    p, edges = np.histogram(samples, bins=bins, range=(lo, hi))
    q, _ = np.histogram(data, bins=edges)
    p = p / p.sum()
    q = q / q.sum()
    keep = (p > 0) & (q > 0)
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


def print_group_means(per_model, formats):
    """One "mean ± std" row per model of the per-seed rows collected in per_model."""
    for model, rows in per_model.items():
        cells = [mean_std(col) if f == "ms" else f"{np.mean(col):{f}}" for col, f in zip(zip(*rows), formats)]
        print(f"| {model} | mean ± std | " + " | ".join(cells) + " |")
    print()


def outliers1d(root, group="outliers1d", split=0.0, window=None):
    """Mass below `split` (the outlier side) and the inliers' mean and std of each run of `group`; with
    a `window` (lo, hi) around the main mode, also the share of samples in it and their mean and std
    there (the main mode without the bridge a generator lays between the modes)."""
    runs = runs_of(root, group)
    if not runs:
        return
    print(f"### {group} (data: 0.0100 below {split:g})\n")
    extra = f" | share in {window} | mean there | std there" if window else ""
    print(f"| model | seed | mass below {split:g} | inlier mean | inlier std{extra} |")
    print("|---|---|---|---|---|" + ("---|---|---|" if window else ""))
    per_model = {}
    for name, path in runs.items():
        model, seed = name.rsplit("_s", 1)
        x = np.load(path).ravel().astype(np.float64)
        inl = x[x > split]
        row = ((x < split).mean(), inl.mean(), inl.std())
        if window:
            main = x[(x > window[0]) & (x < window[1])]
            row += (main.size / x.size, main.mean(), main.std())
        per_model.setdefault(model, []).append(row)
        print(f"| {model} | {seed} | " + " | ".join(f"{v:.4f}" if k in (0, 3) else f"{v:.3f}"
                                                   for k, v in enumerate(row)) + " |")
    print_group_means(per_model, ["ms"] * len(next(iter(per_model.values()))[0]))


def outliers2d(root, uotflow, tmp):
    runs = runs_of(root, "outliers2d")
    if not runs:
        return
    centres = os.path.join(tmp, "centres8.npy")
    outliers = os.path.join(tmp, "outliers2.npy")
    np.save(centres, CENTRES_8G)
    np.save(outliers, OUTLIERS_2D)
    reference = data_samples(uotflow, tmp, "8gaussians", 10000, 99)
    print("### 2-D outliers (data: 0.0200 near the two outlier modes)\n")
    print("| model | seed | outlier mass | inlier modes (of 8) | within 3 std | SW2 to the inliers |")
    print("|---|---|---|---|---|---|")
    per_model = {}
    for name, path in runs.items():
        model, seed = name.rsplit("_s", 1)
        m = json.loads(cli(["eval", "--samples", path, "--reference", reference, "--metrics",
                            "outlier_mass,modes,hq_fraction,sw2", "--centres", centres, "--mode-std",
                            str(STD_8G), "--outliers", outliers, "--radius", "1.5"], uotflow))
        row = (m["outlier_mass"], m["modes"], m["hq_fraction"], m["sw2"])
        per_model.setdefault(model, []).append(row)
        print(f"| {model} | {seed} | {row[0]:.4f} | {row[1]:.0f} | {row[2]:.3f} | {row[3]:.3f} |")
    print_group_means(per_model, ["ms", ".1f", "ms", "ms"])


def read_curves(folder):
    """{metric: (steps, values)} from eval.jsonl of the run directory inside `folder` (one read)."""
    run_dir = [os.path.join(folder, d) for d in os.listdir(folder) if d[0].isdigit()][0]
    curves = {}
    with open(os.path.join(run_dir, "eval.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            steps, values = curves.setdefault(row["metric"], ([], []))
            steps.append(row["step"])
            values.append(row["value"])
    return {m: (np.array(steps), np.array(values)) for m, (steps, values) in curves.items()}


def read_curve(run_npy, metric):
    """One metric of the run whose samples are `run_npy` (its folder is the name without .npy)."""
    return read_curves(run_npy[:-4]).get(metric, (np.array([]), np.array([])))


def images(root):
    """classifier_fid and outlier_fraction of each image run (eval.jsonl) at its evaluated steps, and their
    mean ± std over seeds at the last step every run of a model evaluated (runs without their .done
    mark were stopped before the end)."""
    folder = os.path.join(root, "images")
    if not os.path.isdir(folder):
        return
    names = sorted(f for f in os.listdir(folder) if os.path.isdir(os.path.join(folder, f)))
    if not names:
        return
    print("### images (data: 0.05 digits)\n")
    print("| model | seed | evaluated at steps | classifier_fid | outlier_fraction |")
    print("|---|---|---|---|---|")
    per_model = {}
    for name in names:
        model, seed = name.rsplit("_s", 1)
        run = os.path.join(folder, name)
        curves = read_curves(run)
        empty = (np.array([]), np.array([]))
        steps, fid = curves.get("classifier_fid", empty)
        outl = curves.get("outlier_fraction", empty)[1]
        stopped = "" if os.path.exists(run + ".done") else " (stopped)"
        cells = [" / ".join(map(str, steps)) + stopped, " / ".join(f"{v:.1f}" for v in fid),
                 " / ".join(f"{v:.4f}" for v in outl)]
        print(f"| {model} | {seed} | " + " | ".join(cells) + " |")
        if len(steps):
            per_model.setdefault(model, []).append((steps, fid, outl))
    print()
    print("| model | seeds | at step | classifier_fid | outlier_fraction |")
    print("|---|---|---|---|---|")
    for model, runs in per_model.items():
        step = min(steps[-1] for steps, _, _ in runs)
        rows = [(fid[k], outl[k]) for steps, fid, outl in runs for k in np.flatnonzero(steps == step)]
        print(f"| {model} | {len(rows)} | {step} | " + " | ".join(mean_std(col) for col in zip(*rows)) + " |")
    print()


def stability(root, uotflow, tmp, svg_path):
    runs = runs_of(root, "stability")
    if not runs:
        return
    groups = {}
    for name, path in runs.items():
        group, _ = name.rsplit("_s", 1)
        groups.setdefault(group, []).append(read_curve(path, "sw2"))
    print("### Stability on 8 Gaussians: sw2 (2,000 EMA samples) over seeds\n")
    print("| model | seeds | sw2 at 1000 | 2000 | 3000 | 4000 | 5000 | largest rise after step 2000 |")
    print("|---|---|---|---|---|---|---|---|")
    curves = {}
    for group, rows in sorted(groups.items()):
        steps = rows[0][0]
        values = np.stack([v for _, v in rows])  # [seeds, evals]
        curves[group] = (steps, values)
        cells = []
        for s in (1000, 2000, 3000, 4000, 5000):
            k = int(np.searchsorted(steps, s))
            cells.append(mean_std(values[:, k]) if k < len(steps) and steps[k] == s else "-")
        late = values[:, steps >= 2000]
        rise = np.max(np.diff(late, axis=1)) if late.shape[1] > 1 else float("nan")
        print(f"| {group} | {values.shape[0]} | " + " | ".join(cells) + f" | {rise:.3f} |")
    print()
    if svg_path:
        write_svg(svg_path, curves)


def write_svg(path, curves):
    """Mean (line) and min-max over seeds (band) of sw2 against steps, one colour per group."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    width, height, left, right, top, bottom = 760, 420, 70, 240, 30, 50
    x_max = max(s.max() for s, _ in curves.values())
    y_all = np.concatenate([v.ravel() for _, v in curves.values()])
    y_min, y_max = math.log10(max(y_all.min(), 1e-3)), math.log10(y_all.max())
    y_min, y_max = math.floor(y_min * 2) / 2, math.ceil(y_max * 2) / 2

    def px(x):
        return left + (width - left - right) * x / x_max

    def py(y):
        return top + (height - top - bottom) * (y_max - math.log10(max(y, 1e-3))) / (y_max - y_min)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for e in np.arange(y_min, y_max + 1e-9, 0.5):
        y = py(10 ** e)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:.3g}</text>')
    for s in range(0, int(x_max) + 1, 1000):
        x = px(s)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{s}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 10}" text-anchor="middle">step</text>')
    out.append(f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(top + height - bottom) / 2})">sw2 (log scale)</text>')
    for k, (group, (steps, values)) in enumerate(sorted(curves.items())):
        colour = palette[k % len(palette)]
        lo, hi, mean = values.min(0), values.max(0), values.mean(0)
        band = [f"{px(s):.1f},{py(v):.1f}" for s, v in zip(steps, hi)]
        band += [f"{px(s):.1f},{py(v):.1f}" for s, v in zip(steps[::-1], lo[::-1])]
        out.append(f'<polygon points="{" ".join(band)}" fill="{colour}" fill-opacity="0.18"/>')
        line = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in zip(steps, mean))
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        y = top + 10 + 20 * k
        out.append(f'<line x1="{width - right + 12}" x2="{width - right + 36}" y1="{y}" y2="{y}" '
                   f'stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{width - right + 42}" y="{y + 4}">{group} ({values.shape[0]} seeds)</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" '
               f'height="{height - top - bottom}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{(left + width - right) / 2}" y="18" text-anchor="middle">8 Gaussians: '
               f'sw2 against steps (line: mean over seeds, band: min to max)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def tau(root, uotflow, tmp):
    runs = runs_of(root, "tau")
    if not runs:
        return
    data = np.load(data_samples(uotflow, tmp, "gmm", 100000, 98, GMM_1D)).ravel().astype(np.float64)
    source = np.random.default_rng(0).standard_normal(100000)
    w2_source_data = w2_1d(source, data)
    print("### cost_scale sweep, UOTM kl/kl, 1-D outlier toy, seed 0\n")
    print(f"W2(source, data)^2 = {w2_source_data ** 2:.4f}\n")
    print("| cost_scale | mass below 0 | mass below -0.5 (outliers) | inlier mean | W2(generated, data) | "
          "KL(generated, data) | bound cost_scale W2(source, data)^2 |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name, path in runs.items():
        scale = float(name.split("_c", 1)[1])
        x = np.load(path).ravel().astype(np.float64)
        rows.append((scale, (x < 0).mean(), (x < -0.5).mean(), x[x > 0].mean(), w2_1d(x, data),
                     kl_hist(x, data), scale * w2_source_data ** 2))
    for r in sorted(rows):
        print(f"| {r[0]:g} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:.3f} | {r[4]:.4f} | {r[5]:.4f} | {r[6]:.4f} |")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="claims")
    parser.add_argument("--uotflow", default="build/uotflow")
    parser.add_argument("--svg", default="", help="write the stability figure here")
    args = parser.parse_args()
    if not os.path.isdir(args.root):
        sys.exit(f"{args.root}: no such folder (run scripts/uotm_claims.sh first)")
    with tempfile.TemporaryDirectory() as tmp:
        outliers1d(args.root)
        outliers1d(args.root, "far1d", split=-1.0, window=(0.5, 1.5))
        outliers2d(args.root, args.uotflow, tmp)
        stability(args.root, args.uotflow, tmp, args.svg)
        tau(args.root, args.uotflow, tmp)
        images(args.root)


if __name__ == "__main__":
    main()
