"""The same training step as `ifcn bench`, in PyTorch, for comparison on the same machine.

Usage: python bench/pytorch_step.py --variant paper --channels 16 --patch 64 --steps 5 [--threads T] [--json]
       python bench/pytorch_step.py --device cuda --mode fp32|tf32|bf16 [--channels-last] ...
Needs torch (pip install torch); uses tools/ifcn_reference.py (a copy of the reference definition)
or IFCN_REFERENCE=dir. Step = train-mode forward, loss (weighted FP/FN + BCE), backward, Adam.
Forward = eval-mode, no grad. On CUDA: cudnn.benchmark on, timers synchronised, peak memory from
torch.cuda.max_memory_allocated; tf32 enables TF32 for matmul and cuDNN; bf16 is autocast.
"""
import argparse, json, os, resource, statistics, sys, time
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tools"))
if os.environ.get("IFCN_REFERENCE"):
    sys.path.insert(0, os.environ["IFCN_REFERENCE"])
from ifcn_reference import build, losses  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--variant", default="paper")
ap.add_argument("--channels", type=int, default=16)
ap.add_argument("--patch", type=int, default=64)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--json", action="store_true")
ap.add_argument("--forward-only", action="store_true", help="time only eval-mode forward passes")
ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
ap.add_argument("--mode", default="fp32", choices=["fp32", "tf32", "bf16"])
ap.add_argument("--channels-last", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device(a.device)
cuda = a.device == "cuda"
if cuda:
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = a.mode == "tf32"
P = a.patch
net = build(a.variant, a.channels, P).to(dev)
fmt = torch.channels_last_3d if a.channels_last else torch.contiguous_format
if a.channels_last:
    net = net.to(memory_format=fmt)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
x = torch.randn(1, 2, P, P, P)
x[:, 1] = (torch.rand(1, P, P, P) < 0.2).float()
t = (torch.rand(1, 1, P, P, P) < 0.3).float()
w = 1 + 8 * torch.rand(1, 1, P, P, P)
y = torch.ones(1)
x, t, w, y = x.to(dev).contiguous(memory_format=fmt), t.to(dev), w.to(dev), y.to(dev)


def sync():
    if cuda:
        torch.cuda.synchronize()


def step():
    sync()
    t0 = time.perf_counter()
    net.train()
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and a.mode == "bf16"):
        seg, cls = net(x)
    loss, _, _ = losses(seg.float(), cls.float(), t, w, y)
    loss.backward()
    opt.step()
    sync()
    return time.perf_counter() - t0


def forward():
    net.eval()
    sync()
    t0 = time.perf_counter()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and a.mode == "bf16"):
        net(x)
    sync()
    return time.perf_counter() - t0


steps = []
if not a.forward_only:
    step()
for i in range(0 if a.forward_only else a.steps):
    steps.append(step())
    if not a.json:
        print(f"step {i + 1}/{a.steps}: {steps[-1]:.3f} s", file=sys.stderr)
forward()
fwd = [forward() for _ in range(a.steps)]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
res = {"engine": "pytorch " + torch.__version__, "variant": a.variant, "channels": a.channels, "patch": P,
       "threads": torch.get_num_threads(), "steps": a.steps,
       "forward_seconds_median": statistics.median(fwd), "peak_rss_bytes": rss,
       "mkldnn": torch.backends.mkldnn.is_available(), "device": a.device, "mode": a.mode,
       "channels_last": a.channels_last}
if steps:
    res["step_seconds_median"] = statistics.median(steps)
else:
    res["forward_only"] = True
if cuda:
    res["device_name"] = torch.cuda.get_device_name()
    res["peak_device_bytes"] = torch.cuda.max_memory_allocated()
if a.json:
    print(json.dumps(res, sort_keys=True))
else:
    print(f"PyTorch {torch.__version__} {a.variant} C={a.channels} P={P} {res['threads']} threads")
    if steps:
        print(f"training step  median {res['step_seconds_median']:.3f} s")
    print(f"forward (eval) median {res['forward_seconds_median']:.3f} s")
    print(f"peak RSS {rss / 1048576:.0f} MiB")
