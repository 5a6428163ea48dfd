"""The same training step as `ifcn bench`, in PyTorch, for comparison on the same machine.

Usage: python bench/pytorch_step.py --variant paper --channels 16 --patch 64 --steps 5 [--threads T] [--json]
Needs torch (pip install torch); uses ../shared/reference/ifcn_reference.py or IFCN_REFERENCE=dir.
Step = train-mode forward, loss (weighted FP/FN + BCE), backward, Adam. Forward = eval-mode, no grad.
"""
import argparse, json, os, resource, statistics, sys, time
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("IFCN_REFERENCE", os.path.join(here, "..", "..", "shared", "reference")))
sys.path.insert(0, os.path.join(here, "..", "tools"))
from ifcn_reference import build, losses  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--variant", default="paper")
ap.add_argument("--channels", type=int, default=16)
ap.add_argument("--patch", type=int, default=64)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--json", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
P = a.patch
net = build(a.variant, a.channels, P)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
x = torch.randn(1, 2, P, P, P)
x[:, 1] = (torch.rand(1, P, P, P) < 0.2).float()
t = (torch.rand(1, 1, P, P, P) < 0.3).float()
w = 1 + 8 * torch.rand(1, 1, P, P, P)
y = torch.ones(1)


def step():
    t0 = time.perf_counter()
    net.train()
    opt.zero_grad(set_to_none=True)
    seg, cls = net(x)
    loss, _, _ = losses(seg, cls, t, w, y)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def forward():
    net.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        net(x)
    return time.perf_counter() - t0


step()
steps = []
for i in range(a.steps):
    steps.append(step())
    if not a.json:
        print(f"step {i + 1}/{a.steps}: {steps[-1]:.3f} s", file=sys.stderr)
forward()
fwd = [forward() for _ in range(a.steps)]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
res = {"engine": "pytorch " + torch.__version__, "variant": a.variant, "channels": a.channels, "patch": P,
       "threads": torch.get_num_threads(), "steps": a.steps, "step_seconds_median": statistics.median(steps),
       "forward_seconds_median": statistics.median(fwd), "peak_rss_bytes": rss,
       "mkldnn": torch.backends.mkldnn.is_available()}
if a.json:
    print(json.dumps(res, sort_keys=True))
else:
    print(f"PyTorch {torch.__version__} {a.variant} C={a.channels} P={P} {res['threads']} threads")
    print(f"training step  median {res['step_seconds_median']:.3f} s")
    print(f"forward (eval) median {res['forward_seconds_median']:.3f} s")
    print(f"peak RSS {rss / 1048576:.0f} MiB")
