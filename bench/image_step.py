#!/usr/bin/python3
"""The UOTM image step of bench/bench_image_step.cpp written in plain PyTorch, as the Python baseline.

Same nets (module for module, same parameter names and registration order as uotflow's dcgan,
ncsnpp and small_conv), losses, optimisers and settings as `uotflow train` with those nets on 32x32
RGB images: kl/kl, cost 0.001 * sum, R1 0.2 (double backward), Adam 1e-4 betas (0.5, 0.9), EMA 0.999,
one potential step per generator step, the same three `.item()` calls. The data are a fixed pool of
random images in [-1, 1] (nothing is loaded while timing).

  --config dcgan|ncsnpp   prints one JSON line: {"img_per_s": ..., "it_per_s": ..., ...}
  --parity                prints names, shapes and counts of the parameters of both pairs and their
                          outputs for deterministic weights and inputs (see bench_image_step
                          --image_parity=1)
Run with Debian's /usr/bin/python3.
"""
import argparse
import copy
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS, SIDE = 3, 32
DIM = CHANNELS * SIDE * SIDE
POOL = 512
COST_SCALE = 0.001
R1_GAMMA = 0.2
LR = 1e-4
BETAS = (0.5, 0.9)
EMA_DECAY = 0.999
PRIOR_STD = 1.0
INV_SQRT2 = 1.0 / math.sqrt(2.0)

CONFIGS = {
    "dcgan": dict(batch=32, generator=dict(net="dcgan", width=32, nz=100),
                  potential=dict(net="dcgan", width=32)),
    "ncsnpp": dict(batch=16,
                   generator=dict(net="ncsnpp", nf=32, ch_mult=[1, 2, 2], num_res_blocks=1,
                                  attn_resolutions=[16], nz=100, z_emb_dim=256, n_mlp=3),
                   potential=dict(net="small_conv", nf=32, ch_mult=[1, 2, 2, 2], stddev_group=4)),
}


# ---- shared layers (src/nets/image_nets.cpp)

def group_norm_groups(channels):
    return min(channels // 4, 32)


def variance_scaling_init_(weight, scale=1.0):
    """Uniform, fan_avg, variance scale / ((fan_in + fan_out) / 2); scale 0 means 1e-10."""
    s = 1e-10 if scale == 0.0 else scale
    receptive = weight[0][0].numel() if weight.dim() > 2 else 1
    fan_in = weight.size(1) * receptive
    fan_out = weight.size(0) * receptive
    bound = math.sqrt(3.0 * s / ((fan_in + fan_out) / 2.0))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def reference_conv(cin, cout, kernel, init_scale=1.0, bias=True):
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias)
    variance_scaling_init_(conv.weight, init_scale)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


def reference_linear(cin, cout, init_scale=1.0):
    linear = nn.Linear(cin, cout)
    variance_scaling_init_(linear.weight, init_scale)
    nn.init.zeros_(linear.bias)
    return linear


def fir_kernel(like, channels, gain):
    """[1, 3, 3, 1] x [1, 3, 3, 1] scaled to sum `gain`, one copy per channel: [C, 1, 4, 4]."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=like.dtype, device=like.device)
    k2 = torch.outer(k, k) * (gain / 64.0)
    return k2.expand(channels, 1, 4, 4).contiguous()


def fir_filter(x, stride, padding):
    channels = x.size(1)
    return F.conv2d(x, fir_kernel(x, channels, 1.0), None, stride, padding, 1, channels)


def fir_downsample(x):
    return fir_filter(x, 2, 1)


def fir_upsample(x):
    channels = x.size(1)
    return F.conv_transpose2d(x, fir_kernel(x, channels, 4.0), None, 2, 1, 0, channels)


def minibatch_stddev(x, group):
    batch, channels, height, width = x.shape
    g = min(group, batch)
    while batch % g != 0:
        g -= 1
    grouped = x.reshape(g, batch // g, channels, height, width)
    stddev = torch.sqrt(grouped.var(0, unbiased=False) + 1e-8)
    stddev = stddev.mean([1, 2, 3], keepdim=True)
    stddev = stddev.repeat(g, 1, height, width)
    return torch.cat([x, stddev], 1)


def leaky(x):
    return F.leaky_relu(x, 0.2)


def strided_conv4(cin, cout):
    return nn.Conv2d(cin, cout, 4, stride=2, padding=1)


def to_image(flat):
    """[B, 3072] -> [B, 3, 32, 32] (32x32 needs no padding in any of the nets here)."""
    return flat.reshape(flat.size(0), CHANNELS, SIDE, SIDE)


def to_flat(image):
    return image.reshape(image.size(0), -1)


class AdaptiveGroupNorm(nn.Module):
    def __init__(self, channels, style_dim):
        super().__init__()
        self.channels = channels
        self.style = reference_linear(style_dim, 2 * channels)

    def forward(self, h, w):
        gamma, beta = self.style(w).unsqueeze(2).unsqueeze(3).chunk(2, 1)
        normed = F.group_norm(h, group_norm_groups(self.channels), None, None, 1e-6)
        return normed * (1 + gamma) + beta


# ---- DCGAN-like nets (working size 32: 3 halvings to 4x4)

LEVELS = 3


class DcganGenerator(nn.Module):
    def __init__(self, width, nz):
        super().__init__()
        self.nz = nz
        self.enc_convs, self.enc_norms, self.dec_convs, self.dec_norms = [], [], [], []

        def add_encoder(conv, channels):
            i = len(self.enc_convs)
            norm = nn.GroupNorm(group_norm_groups(channels), channels)
            self.add_module(f"enc_conv{i}", conv)
            self.add_module(f"enc_norm{i}", norm)
            self.enc_convs.append(conv)
            self.enc_norms.append(norm)

        add_encoder(nn.Conv2d(CHANNELS, width, 3, padding=1), width)
        for l in range(1, LEVELS + 1):
            add_encoder(strided_conv4(width << (l - 1), width << l), width << l)
        self.z_embed = nn.Linear(nz, 16 * (width << LEVELS))
        for l in range(LEVELS, 0, -1):
            cin = width << l if l == LEVELS else 2 * (width << l)
            cout = width << (l - 1)
            i = len(self.dec_convs)
            conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
            norm = nn.GroupNorm(group_norm_groups(cout), cout)
            self.add_module(f"dec_conv{i}", conv)
            self.add_module(f"dec_norm{i}", norm)
            self.dec_convs.append(conv)
            self.dec_norms.append(norm)
        self.output = nn.Conv2d(2 * width, CHANNELS, 3, padding=1)

    def forward(self, x, z):
        skips = []
        h = to_image(x)
        for conv, norm in zip(self.enc_convs, self.enc_norms):
            h = F.silu(norm(conv(h)))
            skips.append(h)
        skips.pop()
        h = h + self.z_embed(z).view_as(h)
        for conv, norm in zip(self.dec_convs, self.dec_norms):
            h = F.silu(norm(conv(h)))
            h = torch.cat([h, skips.pop()], 1)
        return to_flat(torch.tanh(self.output(h)))


class DcganPotential(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.convs = []
        cin = CHANNELS
        for l in range(LEVELS):
            conv = strided_conv4(cin, width << l)
            self.add_module(f"conv{l}", conv)
            self.convs.append(conv)
            cin = width << l
        self.head = nn.Linear(16 * cin, 1)

    def forward(self, y):
        h = to_image(y)
        for conv in self.convs:
            h = leaky(conv(h))
        return self.head(h.flatten(1)).squeeze(-1)


# ---- small discriminator

class SmallConvPotential(nn.Module):
    def __init__(self, nf, ch_mult, stddev_group):
        super().__init__()
        self.stddev_group = stddev_group
        cin = nf * ch_mult[0]
        self.stem = reference_conv(CHANNELS, cin, 1)
        self.blocks = []
        for i, mult in enumerate(ch_mult):
            cout = nf * mult
            conv1 = reference_conv(cin, cout, 3)
            conv2 = reference_conv(cout, cout, 3, 0.0)
            skip = reference_conv(cin, cout, 1, 1.0, False)
            self.add_module(f"block{i}_conv1", conv1)
            self.add_module(f"block{i}_conv2", conv2)
            self.add_module(f"block{i}_skip", skip)
            self.blocks.append((conv1, conv2, skip, i > 0))
            cin = cout
        self.final_conv = reference_conv(cin + 1, cin, 3, 0.0)
        self.head = reference_linear(cin, 1)

    def forward(self, y):
        h = self.stem(to_image(y))
        for conv1, conv2, skip_conv, downsample in self.blocks:
            out = leaky(conv1(leaky(h)))
            skip = h
            if downsample:
                out = fir_downsample(out)
                skip = fir_downsample(skip)
            h = (conv2(out) + skip_conv(skip)) * INV_SQRT2
        h = leaky(self.final_conv(minibatch_stddev(h, self.stddev_group)))
        return self.head(h.sum((2, 3))).squeeze(-1)


# ---- NCSN++ generator (src/nets/ncsnpp.cpp), skip_rescale on, progressive_input "residual"

def skip_sum(a, b):
    return (a + b) * INV_SQRT2


class ResBlock(nn.Module):
    def __init__(self, cin, cout, style_dim, resample=None):
        super().__init__()
        self.resample = resample  # None, "up" or "down"
        self.norm0 = AdaptiveGroupNorm(cin, style_dim)
        self.conv0 = reference_conv(cin, cout, 3)
        self.norm1 = AdaptiveGroupNorm(cout, style_dim)
        self.dropout = nn.Dropout(0.0)
        self.conv1 = reference_conv(cout, cout, 3, 0.0)
        self.skip = reference_conv(cin, cout, 1) if cin != cout or resample else None

    def _resample(self, x):
        return fir_upsample(x) if self.resample == "up" else fir_downsample(x)

    def forward(self, x, w):
        h = F.silu(self.norm0(x, w))
        skip = x
        if self.resample:
            h = self._resample(h)
            skip = self._resample(skip)
        h = self.conv0(h)
        h = self.dropout(F.silu(self.norm1(h, w)))
        h = self.conv1(h)
        if self.skip is not None:
            skip = self.skip(skip)
        return skip_sum(skip, h)


class SelfAttention(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm = nn.GroupNorm(group_norm_groups(channels), channels, eps=1e-6)
        self.query = reference_conv(channels, channels, 1)
        self.key = reference_conv(channels, channels, 1)
        self.value = reference_conv(channels, channels, 1)
        self.project = reference_conv(channels, channels, 1, 0.0)

    def forward(self, x):
        batch, channels, height, width = x.shape
        h = self.norm(x)
        q = self.query(h).flatten(2)
        k = self.key(h).flatten(2)
        v = self.value(h).flatten(2)
        weights = torch.softmax(torch.bmm(q.transpose(1, 2), k) / math.sqrt(channels), -1)
        attended = torch.bmm(v, weights.transpose(1, 2)).view(batch, channels, height, width)
        return skip_sum(x, self.project(attended))


def pixel_norm(z):
    return z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)


class NcsnppNetwork(nn.Module):
    def __init__(self, nf, ch_mult, num_res_blocks, attn_resolutions, nz, z_emb_dim, n_mlp):
        super().__init__()
        self.nz = nz
        layers = [reference_linear(nz, z_emb_dim), nn.SiLU()]
        for _ in range(n_mlp):
            layers += [reference_linear(z_emb_dim, z_emb_dim), nn.SiLU()]
        self.mapping = nn.Sequential(*layers)

        def has_attention(level):
            return (SIDE >> level) in attn_resolutions

        def block(name, cin, cout, resample=None):
            m = ResBlock(cin, cout, z_emb_dim, resample)
            self.add_module(name, m)
            return m

        def attention(name, channels):
            m = SelfAttention(channels)
            self.add_module(name, m)
            return m

        # Down path: per level (blocks, attention list, downsample block, pyramid conv).
        self.stem = reference_conv(CHANNELS, nf, 3)
        skip_channels = [nf]
        cin, pyramid_in = nf, CHANNELS
        self.down_levels = []
        for l, mult in enumerate(ch_mult):
            prefix = f"down{l}_"
            blocks, attns, downsample, pyramid = [], [], None, None
            for b in range(num_res_blocks):
                cout = nf * mult
                blocks.append(block(f"{prefix}block{b}", cin, cout))
                cin = cout
                if has_attention(l):
                    attns.append(attention(f"{prefix}attention{b}", cin))
                skip_channels.append(cin)
            if l + 1 < len(ch_mult):
                downsample = block(f"{prefix}downsample", cin, cin, "down")
                pyramid = nn.Conv2d(pyramid_in, cin, 3, stride=2)
                variance_scaling_init_(pyramid.weight)
                nn.init.zeros_(pyramid.bias)
                self.add_module(f"{prefix}pyramid", pyramid)
                pyramid_in = cin
                skip_channels.append(cin)
            self.down_levels.append((blocks, attns, downsample, pyramid))
        self.middle = [block("middle_block0", cin, cin), block("middle_block1", cin, cin)]
        self.middle_attention = attention("middle_attention", cin)

        # Up path, built from the last level; indexed by level.
        self.up_levels = [None] * len(ch_mult)
        for l in reversed(range(len(ch_mult))):
            prefix = f"up{l}_"
            blocks = []
            for b in range(num_res_blocks + 1):
                cout = nf * ch_mult[l]
                blocks.append(block(f"{prefix}block{b}", cin + skip_channels.pop(), cout))
                cin = cout
            attn = attention(f"{prefix}attention", cin) if has_attention(l) else None
            upsample = block(f"{prefix}upsample", cin, cin, "up") if l > 0 else None
            self.up_levels[l] = (blocks, attn, upsample)
        self.output_norm = nn.GroupNorm(group_norm_groups(cin), cin, eps=1e-6)
        self.output_conv = reference_conv(cin, CHANNELS, 3, 0.0)

    def forward(self, x_flat, z):
        x = to_image(x_flat)
        w = self.mapping(pixel_norm(z))
        hs = [self.stem(x)]
        pyramid = x
        for blocks, attns, downsample, pyramid_conv in self.down_levels:
            for b, blk in enumerate(blocks):
                h = blk(hs[-1], w)
                hs.append(attns[b](h) if attns else h)
            if downsample is None:
                continue
            h = downsample(hs[-1], w)
            pyramid = skip_sum(pyramid_conv(fir_filter(pyramid, 1, 2)), h)
            h = pyramid
            hs.append(h)
        h = hs[-1]
        h = self.middle[0](h, w)
        h = self.middle_attention(h)
        h = self.middle[1](h, w)
        for l in reversed(range(len(self.up_levels))):
            blocks, attn, upsample = self.up_levels[l]
            for blk in blocks:
                h = blk(torch.cat([h, hs.pop()], 1), w)
            if attn is not None:
                h = attn(h)
            if upsample is not None:
                h = upsample(h, w)
        return to_flat(self.output_conv(F.silu(self.output_norm(h))))


class NcsnppGenerator(nn.Module):
    def __init__(self, **options):
        super().__init__()
        self.nz = options["nz"]
        self.net = NcsnppNetwork(**options)

    def forward(self, x, z):
        return self.net(x, z)


def make_generator(section):
    s = dict(section)
    net = s.pop("net")
    if net == "dcgan":
        return DcganGenerator(s["width"], s["nz"])
    return NcsnppGenerator(**s)


def make_potential(section):
    s = dict(section)
    net = s.pop("net")
    if net == "dcgan":
        return DcganPotential(s["width"])
    return SmallConvPotential(s["nf"], s["ch_mult"], s["stddev_group"])


# ---- the training step (src/methods/semidual_method.cpp)

def cost(x, y):
    return COST_SCALE * (x - y).pow(2).flatten(1).sum(1)


class ImageStep:
    def __init__(self, config, seed=0):
        torch.manual_seed(seed)
        self.batch = config["batch"]
        self.g = make_generator(config["generator"])
        self.g_ema = copy.deepcopy(self.g)
        for p in self.g_ema.parameters():
            p.requires_grad_(False)
        self.v = make_potential(config["potential"])
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=LR, betas=BETAS)
        self.opt_v = torch.optim.Adam(self.v.parameters(), lr=LR, betas=BETAS)
        self.pool = torch.rand(POOL, DIM, generator=torch.Generator().manual_seed(1234)) * 2 - 1
        self.data_gen = torch.Generator().manual_seed(seed)
        self.noise_gen = torch.Generator().manual_seed(seed + 1)
        self.g_params = list(self.g.parameters())
        self.ema_params = list(self.g_ema.parameters())

    def sample(self):
        return self.pool.index_select(0, torch.randint(POOL, (self.batch,), generator=self.data_gen))

    def source(self):
        x = torch.randn(self.batch, DIM, generator=self.noise_gen) * PRIOR_STD
        z = torch.randn(self.batch, self.g.nz, generator=self.noise_gen)
        return x, z

    def __call__(self):
        # Potential step: semi-dual loss (kl/kl) + R1 on real data.
        for p in self.v.parameters():
            p.requires_grad_(True)
        real = self.sample()
        x, z = self.source()
        with torch.no_grad():
            fake = self.g(x, z)
        real.requires_grad_(True)
        v_real = self.v(real)
        v_fake = self.v(fake)
        loss_v = torch.expm1(v_fake - cost(x, fake)).mean() + torch.expm1(-v_real).mean()
        grad, = torch.autograd.grad(v_real.sum(), real, create_graph=True)
        r1 = grad.pow(2).flatten(1).sum(1).mean()
        total = loss_v + 0.5 * R1_GAMMA * r1
        self.opt_v.zero_grad()
        total.backward()
        self.opt_v.step()

        # Generator step against the fixed potential.
        for p in self.v.parameters():
            p.requires_grad_(False)
        x, z = self.source()
        fake = self.g(x, z)
        loss_g = (cost(x, fake) - self.v(fake)).mean()
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()

        with torch.no_grad():
            torch._foreach_mul_(self.ema_params, EMA_DECAY)
            torch._foreach_add_(self.ema_params, self.g_params, alpha=1.0 - EMA_DECAY)
        return {"loss_v": loss_v.item(), "loss_g": loss_g.item(), "r1": r1.item()}


# ---- parity (the formulas of bench_image_step.cpp)

def fill_deterministic(module):
    with torch.no_grad():
        for index, p in enumerate(module.parameters()):
            scale = 0.5 / math.sqrt(p.numel() // p.size(0)) if p.dim() >= 2 else 0.1
            k = torch.arange(p.numel(), dtype=torch.float64)
            p.copy_((torch.sin(0.7 * k + float(index)) * scale).view(p.shape))


def wave(rows, cols, step, phase):
    k = torch.arange(rows * cols, dtype=torch.float64)
    return torch.sin(step * k + phase).float().view(rows, cols)


def describe(module):
    named = list(module.named_parameters())
    return {"params": sum(p.numel() for _, p in named), "names": [n for n, _ in named],
            "shapes": [list(p.shape) for _, p in named]}


def parity():
    out = {}
    for name, config in CONFIGS.items():
        g = make_generator(config["generator"])
        v = make_potential(config["potential"])
        fill_deterministic(g)
        fill_deterministic(v)
        with torch.no_grad():
            x = wave(4, DIM, 0.013, 0.0)
            z = wave(4, g.nz, 0.029, 1.0)
            y = wave(4, DIM, 0.011, 2.0)
            fake = g(x, z)
            vy = v(y)
        out[name] = {"generator": describe(g), "potential": describe(v),
                     "fake_head": fake.reshape(-1)[:8].double().tolist(),
                     "fake_sum": fake.sum().item(), "fake_abs_sum": fake.abs().sum().item(),
                     "v": vy.double().tolist()}
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="dcgan")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parity", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.parity:
        parity()
        return

    config = CONFIGS[args.config]
    step = ImageStep(config)
    for _ in range(args.warmup):
        step()
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        out = step()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    print(json.dumps({"config": args.config, "batch": config["batch"],
                      "img_per_s": args.steps * config["batch"] / elapsed,
                      "it_per_s": args.steps / elapsed, "steps": args.steps, "seconds": elapsed,
                      "cpu_img_per_s": args.steps * config["batch"] / cpu,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "loss_v": out["loss_v"], "loss_g": out["loss_g"], "r1": out["r1"]}))


if __name__ == "__main__":
    main()
