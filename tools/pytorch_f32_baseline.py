"""Measures how closely PyTorch itself, in float32, reproduces a float64 reference fixture.

Usage: python tools/pytorch_f32_baseline.py [--without-onednn] OUT.json FIXTURE.safetensors [...]
Needs torch and safetensors; uses tools/ifcn_reference.py (or IFCN_REFERENCE=dir).
Writes {fixture file name: {tensor name: relative L2 error of PyTorch float32}}; the engine tests
hold ifcn to at least PyTorch's float32 accuracy where a fixture is too ill-conditioned for the
README tolerance (the seed fixture: see docs/BENCHMARKS.md).
--without-onednn measures PyTorch's other CPU convolution path (im2col + gemm, as ifcn computes):
at P = 64 the two paths' errors differ by up to ~4x (docs/REFERENCE_FIXTURES.md).
"""
import json, os, sys
import torch
from safetensors import safe_open
from safetensors.torch import load_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("IFCN_REFERENCE", here))
from ifcn_reference import build, losses  # noqa: E402


def rel(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    n = b.norm().item()
    return ((a - b).norm() / n).item() if n > 0 else (a - b).norm().item()


def measure(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    T = load_file(path)
    net = build(meta["arch"], int(meta["channels"]), int(meta["patch"])).float()
    sd = {k[6:]: v for k, v in T.items() if k.startswith("param/")}
    sd.update({k[7:]: v for k, v in T.items() if k.startswith("buffer/")})
    net.load_state_dict(sd, strict=False)
    out = {}
    net.eval()
    with torch.no_grad():
        s, c = net(T["input"])
    out["eval/seg"], out["eval/cls"] = rel(s, T["eval/seg"]), rel(c.reshape(-1), T["eval/cls"])
    if "train/seg" not in T:
        return out
    net.train()
    s, c = net(T["input"])
    tot, sl, cl = losses(s, c, T["target"], T["weight"], T["c_label"])
    tot.backward()
    out["train/seg"], out["train/cls"] = rel(s.detach(), T["train/seg"]), rel(c.detach().reshape(-1), T["train/cls"])
    out["train/loss"] = rel(torch.stack([tot, sl, cl]).detach(), T["train/loss"])
    for k, p in net.named_parameters():
        out["grad/" + k] = rel(p.grad, T["grad/" + k])
    for k, b in net.named_buffers():
        if "num_batches" not in k:
            out["buffer_after/" + k] = rel(b, T["buffer_after/" + k])
    torch.optim.Adam(net.parameters(), lr=1e-3).step()
    for k, p in net.named_parameters():
        out["adam1/" + k] = rel(p.detach(), T["adam1/" + k])
    return out


def main():
    args = sys.argv[1:]
    if args and args[0] == "--without-onednn":
        torch.backends.mkldnn.enabled = False
        args = args[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    res = {os.path.basename(p): measure(p) for p in args[1:]}
    with open(args[0], "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    for name, r in res.items():
        worst = max(r.items(), key=lambda kv: kv[1])
        print(name, "worst PyTorch float32 error:", worst)


if __name__ == "__main__":
    main()
