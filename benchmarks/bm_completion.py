"""Scene-completion training throughput and peak memory per conv backend.

    python benchmarks/bm_completion.py [--steps 10] [--size 32] [--batch 4] [--device cpu]

Backends: "native", "spconv" and "torch" (pure-PyTorch reference), each on every conv layer of
the model (spconv runs the generative transposed convs as its SparseConvTensor transposed conv).
Every backend trains the same model from the same seed on the same batches, one after another in
one run. A backend is reported "not available" only when ``get_backend(name)`` raises.
Each backend runs in its own fresh process (so none inherits another's allocator caches).
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the peak RSS (VmHWM, reset
after set-up through /proc/self/clear_refs) minus the RSS at the reset.
Writes benchmarks/results/bm_completion_<device>.json.

``--decoders sparse octree`` adds the octree-generating decoder (CompletionConfig.decoder) to the table (written to
bm_completion_<device>_decoders.json). ``--groups 1 8`` adds the model's dependent group predictions (CompletionConfig.groups) to the table:
every backend runs once per value (written to bm_completion_<device>_groups.json). ``--ab-groups 1 8``
instead trains one model per value in one process, step by step in turn on the same batches, and prints
the median training-step and inference seconds of each (bm_completion_groups_ab_<device>.json).

Comparing trained models (e.g. the one-shot and the dependent decoder) on held-out whole scenes::

    python benchmarks/bm_completion.py --compare A/run/last.pt B/run/last.pt --samples A/samples/test \
        [--labels one-shot dependent] [--repeats 3] [--name bm_completion_groups]

scores every scene with each checkpoint as `sparse3d eval` does (IoU / L1 / chamfer against the target,
observed voxels keeping their measurement), times ``predict_sample`` per scene (the models alternate, scene
by scene, ``--repeats`` times; medians), and reports the network's finest-level precision / recall on the
target's known, *unobserved* voxels per parity class (x % 2, y % 2, z % 2) (for a grouped model: per
group, in the order they are decided). Writes benchmarks/results/<name>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_info, write_json  # noqa: E402

import sparse3d.nn as snn  # noqa: E402
from sparse3d.backends import get_backend  # noqa: E402
from sparse3d.tasks.completion.dataset import collate  # noqa: E402
from sparse3d.tasks.completion.procedural import procedural_sample  # noqa: E402
from sparse3d.tasks.completion.model import CompletionConfig, CompletionNet  # noqa: E402
from sparse3d.tasks.completion.loss import completion_loss  # noqa: E402
from sparse3d.utils.measure import peak_rss_kib, reset_peak_rss  # noqa: E402


def bench(name: str, steps: int, size: int, batch: int, device: str, channels, groups: int = 1,
          decoder: str = "sparse") -> dict:
    try:
        get_backend(name)
    except Exception as e:  # noqa: BLE001 - reported in the table
        return {"backend": name, "groups": groups, "decoder": decoder, "status": f"not available ({e})"}
    torch.manual_seed(0)
    net = CompletionNet(CompletionConfig(channels=tuple(channels), groups=groups, decoder=decoder)).to(device)
    snn.set_backend(net, name)
    assert all(getattr(m, "backend", name) == name for m in net.modules())
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    batches = [collate([procedural_sample(size, 100 * i + j) for j in range(batch)]) for i in range(2)]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss0 = None if device.startswith("cuda") else reset_peak_rss()

    def step(i):
        x, t = batches[i % 2]
        x = x.to(device)
        t = type(t)(t.tsdf.to(device), t.known.to(device))
        out = net(x, bounds=t.shape, target_fn=t.occupied)
        loss, _ = completion_loss(out, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return len(x)

    step(0)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    nvox = 0
    for i in range(steps):
        nvox += step(i)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else (peak_rss_kib() - rss0) / 1024)
    return {"backend": name, "groups": groups, "decoder": decoder, "status": "ok", "steps_per_s": steps / dt,
            "input_voxels_per_step": nvox / steps, "peak_mem_mib": peak}


def ab_groups(groups, steps: int, size: int, batch: int, device: str, channels) -> dict:
    """In one process: a model per ``groups`` value (same seed, same batches) trained step by step in turn;
    median seconds of a training step and of an inference forward per model (the machine's load hits all
    alike)."""
    import statistics

    batches = [collate([procedural_sample(size, 100 * i + j) for j in range(batch)]) for i in range(2)]
    nets, opts = {}, {}
    for g in groups:
        torch.manual_seed(0)
        nets[g] = CompletionNet(CompletionConfig(channels=tuple(channels), groups=g)).to(device)
        opts[g] = torch.optim.Adam(nets[g].parameters(), 1e-3)
    train_s = {g: [] for g in groups}
    infer_s = {g: [] for g in groups}
    for i in range(steps + 1):  # step 0 warms up
        x, t = batches[i % 2]
        x = x.to(device)
        t = type(t)(t.tsdf.to(device), t.known.to(device))
        for g in groups:
            net = nets[g].train()
            t0 = time.perf_counter()
            loss, _ = completion_loss(net(x, bounds=t.shape, target_fn=t.occupied), t)
            opts[g].zero_grad()
            loss.backward()
            opts[g].step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            with torch.no_grad():
                net.eval()(x, bounds=t.shape)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i:
                train_s[g].append(t1 - t0)
                infer_s[g].append(time.perf_counter() - t1)
    rows = [{"groups": g, "train_step_s": statistics.median(train_s[g]), "inference_s": statistics.median(infer_s[g])}
            for g in groups]
    print(f"in-process A/B, crops {size}^3 x {batch}, channels {channels}, {steps} steps each, medians")
    print(f"{'groups':>6} {'train step s':>13} {'vs first':>9} {'inference s':>12} {'vs first':>9}")
    for r in rows:
        print(f"{r['groups']:>6} {r['train_step_s']:>13.3f} {r['train_step_s'] / rows[0]['train_step_s']:>8.2f}x "
              f"{r['inference_s']:>12.3f} {r['inference_s'] / rows[0]['inference_s']:>8.2f}x")
    return {"machine": machine_info(device), "size": size, "batch": batch, "steps": steps, "channels": channels,
            "threads": torch.get_num_threads(), "results": rows}


def _parity_counts(net, sample, device) -> dict:
    """The network's finest-level occupancy on the voxels it scored where the target is known and the input
    did not observe, per parity class 4 * (x % 2) + 2 * (y % 2) + z % 2 (a grouped model's decision order):
    {"own": int [8, 3] (tp, fp, fn)} at inference; for a grouped model also "oracle": the same coarse levels
    (its own decisions) but the finest level's context = the true occupancy of the earlier groups."""
    import numpy as np

    from sparse3d.tasks.completion.dataset import sparse_input
    from sparse3d.tasks.completion.dependent import group_index
    from sparse3d.tasks.completion.loss import CompletionTarget
    from sparse3d.tensor import SparseTensor

    def key(c):
        c = c.long()
        return ((c[:, 0] * 4096 + c[:, 1]) * 4096 + c[:, 2]) * 4096 + c[:, 3]

    c, f = sparse_input(sample.input_tsdf, sample.input_known, sample.trunc, True)
    x = SparseTensor(torch.from_numpy(np.concatenate([np.zeros((len(c), 1), np.int32), c], 1)),
                     torch.from_numpy(f)).to(device)
    t = CompletionTarget(torch.from_numpy(sample.target_tsdf)[None].to(device),
                         torch.from_numpy(sample.target_known)[None].to(device))
    with torch.no_grad():
        runs = {"own": net(x, bounds=sample.shape)}
        if net.config.groups > 1:
            own = {s: key(lvl.coords[lg > 0]) for s, lvl, lg in zip(runs["own"].strides, runs["own"].levels,
                                                                     runs["own"].logits)}
            saved = {k: head.sampling for k, head in net.dependent.items()}
            try:  # the truth for every earlier voxel (a model trained with group_sampling would mix in its own)
                for head in net.dependent.values():
                    head.sampling = 0.0
                runs["oracle"] = net(x, bounds=sample.shape, target_fn=lambda co, s: t.occupied(co, s) if s == 1
                                     else torch.isin(key(co), own[s]))
            finally:
                for k, head in net.dependent.items():
                    head.sampling = saved[k]
    counts = {}
    for name, out in runs.items():
        co = out.levels[-1].coords
        pred = (out.logits[-1] > 0).cpu().numpy()
        occ, valid = (v.cpu().numpy() for v in t.occupancy(co, 1))
        co = co.cpu()
        m = valid & ~sample.input_known[tuple(co[:, 1:].long().numpy().T)]
        g = group_index(co, 8).numpy()
        counts[name] = np.array([[(pred & occ)[m & (g == k)].sum(), (pred & ~occ)[m & (g == k)].sum(),
                                  (~pred & occ)[m & (g == k)].sum()] for k in range(8)], np.int64)
    return counts


def _prf(counts) -> dict:
    """int [8, 3] (tp, fp, fn) per class -> precision / recall per class and precision / recall / IoU of all."""
    tp, fp, fn = (counts[:, i].astype(float) for i in range(3))
    T = counts.sum(0).astype(float)
    return {"precision": (tp / (tp + fp).clip(1)).tolist(), "recall": (tp / (tp + fn).clip(1)).tolist(),
            "all": {"precision": T[0] / max(T[0] + T[1], 1), "recall": T[0] / max(T[0] + T[2], 1),
                    "iou": T[0] / max(T.sum(), 1)}, "counts": counts.tolist()}


def compare(checkpoints, labels, samples: str, device: str, repeats: int, name: str) -> None:
    """See the module docstring (``--compare``)."""
    import statistics

    from data_tools import load_manifest
    from sparse3d.tasks.completion.checkpoint import load_completion_checkpoint, load_model
    from sparse3d.tasks.completion.dataset import load_data_tools_crop
    from sparse3d.tasks.completion.predict import evaluate_sample, format_table, predict_sample

    labels = labels or [os.path.relpath(p) for p in checkpoints]
    if len(labels) != len(checkpoints):
        raise SystemExit(f"error: --labels: expected {len(checkpoints)} names (one per checkpoint), got {len(labels)}")
    paths = [os.path.join(samples, n) for names in load_manifest(samples)["splits"].values() for n in names]
    scenes = {os.path.basename(os.path.dirname(p)): load_data_tools_crop(p) for p in paths}
    models = {}
    for label, ck in zip(labels, checkpoints):
        net, cfg = load_model(ck, device)
        models[label] = (net.to(device), cfg, int(load_completion_checkpoint(ck)["step"]))
    result = {"machine": machine_info(device), "checkpoints": dict(zip(labels, checkpoints)), "samples": samples,
              "repeats": repeats, "models": {}}
    times = {label: {s: [] for s in scenes} for label in models}
    for _ in range(repeats):  # the models alternate scene by scene: the machine's load hits both alike
        for s, sample in scenes.items():
            for label, (net, cfg, _) in models.items():
                t0 = time.perf_counter()
                predict_sample(net, sample, device, frontier=cfg.frontier, occ_thresh=cfg.occ_thresh)
                times[label][s].append(time.perf_counter() - t0)
    for label, (net, cfg, step) in models.items():
        rows = {s: evaluate_sample(net, sample, device, cfg.occ_thresh, frontier=cfg.frontier)[0]
                for s, sample in scenes.items()}
        counts = [_parity_counts(net, sample, device) for sample in scenes.values()]
        finest = {k: _prf(sum(c[k] for c in counts)) for k in counts[0]}
        sec = {s: statistics.median(v) for s, v in times[label].items()}
        result["models"][label] = {"groups": net.config.groups, "group_levels": net.config.group_levels,
                                   "group_sampling": net.config.group_sampling, "steps": step, "scenes": rows, "predict_seconds": sec,
                                   "finest_unobserved": finest}
        print(f"\n{label} ({result['checkpoints'][label]}; groups {net.config.groups}, group_sampling "
              f"{net.config.group_sampling}, {step} steps)")
        print(format_table(rows))
        print("predict seconds per scene (median of %d): " % repeats
              + ", ".join(f"{s} {v:.2f}" for s, v in sec.items()) + f"; mean {statistics.mean(sec.values()):.2f}")
        for k, r in finest.items():
            print(f"finest level, unobserved known voxels it scored, context {k}: precision / recall per parity class "
                  + " ".join(f"{p:.2f}/{q:.2f}" for p, q in zip(r["precision"], r["recall"]))
                  + f"; all: precision {r['all']['precision']:.3f} recall {r['all']['recall']:.3f} "
                  f"IoU {r['all']['iou']:.3f}")
    base = labels[0]
    mean = {label: {k: statistics.mean(r["prediction"][k] for r in m["scenes"].values() if r["prediction"].get(k)
                                       is not None)
                    for k in ("iou", "l1", "chamfer_m")} for label, m in result["models"].items()}
    tsec = {label: statistics.mean(m["predict_seconds"].values()) for label, m in result["models"].items()}
    print(f"\n{'model':<16} {'IoU':>7} {'L1':>7} {'CD (m)':>8} {'s/scene':>8} {'time vs ' + base:>14}")
    for label in labels:
        print(f"{label:<16} {mean[label]['iou']:>7.3f} {mean[label]['l1']:>7.3f} {mean[label]['chamfer_m']:>8.4f} "
              f"{tsec[label]:>8.2f} {tsec[label] / tsec[base]:>13.2f}x")
    result["mean"] = mean
    result["mean_predict_seconds"] = tsec
    print(f"wrote {write_json(name, result)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=32, help="crop edge, voxels")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--backends", nargs="+", default=["native", "spconv", "torch"])
    ap.add_argument("--groups", type=int, nargs="+", default=[1], help="model groups (CompletionConfig.groups)")
    ap.add_argument("--decoders", nargs="+", default=["sparse"], choices=["sparse", "octree"],
                    help="model decoders (CompletionConfig.decoder): sparse generative, octree generation")
    ap.add_argument("--compare", nargs="+", default=None, metavar="CKPT", help="score these checkpoints instead")
    ap.add_argument("--labels", nargs="+", default=None, help="names of the --compare checkpoints")
    ap.add_argument("--samples", default=None, help="--compare: folder of held-out whole-scene samples")
    ap.add_argument("--repeats", type=int, default=3, help="--compare: timed predictions per scene and model")
    ap.add_argument("--name", default="bm_completion_compare", help="--compare: results/<name>.json")
    ap.add_argument("--ab-groups", type=int, nargs="+", default=None, metavar="G",
                    help="in-process A/B of training-step and inference time for these model groups values")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one backend, JSON row on stdout
    a = ap.parse_args()
    if a.compare:
        if not a.samples:
            raise SystemExit("error: --compare needs --samples FOLDER (held-out whole scenes)")
        compare(a.compare, a.labels, a.samples, a.device, a.repeats, a.name)
        return
    if a.ab_groups:
        res = ab_groups(a.ab_groups, a.steps, a.size, a.batch, a.device, a.channels)
        dev = a.device.split(":")[0]
        print(f"wrote {write_json(f'bm_completion_groups_ab_{dev}', res)}")
        return
    if a.child:
        print("ROW " + json.dumps(bench(a.backends[0], a.steps, a.size, a.batch, a.device, a.channels, a.groups[0],
                                        a.decoders[0])))
        return
    rows = []
    for b in a.backends:
        for g in a.groups:
            for d in a.decoders:
                argv = [sys.executable, os.path.abspath(__file__), "--child", "--backends", b, "--steps",
                        str(a.steps), "--size", str(a.size), "--batch", str(a.batch), "--device", a.device,
                        "--channels", *map(str, a.channels), "--groups", str(g), "--decoders", d]
                out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
                rows.append(json.loads(next(line[4:] for line in out.splitlines() if line.startswith("ROW "))))
    print(f"completion training, crops {a.size}^3 x {a.batch}, channels {a.channels}, device {a.device}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'backend':<8} {'groups':>6} {'decoder':>7} {'steps/s':>8} {'in vox/step':>12} {'peak MiB':>9} "
          f"{'vs first':>9}")
    base = next((r["steps_per_s"] for r in rows if r["status"] == "ok"), None)
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['backend']:<8} {r['groups']:>6} {r['decoder']:>7} {r['status']}")
        else:
            print(f"{r['backend']:<8} {r['groups']:>6} {r['decoder']:>7} {r['steps_per_s']:>8.2f} "
                  f"{r['input_voxels_per_step']:>12.0f} {r['peak_mem_mib']:>9.1f} "
                  f"{r['steps_per_s'] / base if base else float('nan'):>8.2f}x")
    # the per-backend table stays in its own file; model variants go beside it
    suffix = ("" if a.groups == [1] else "_groups") + ("" if a.decoders == ["sparse"] else "_decoders")
    path = write_json(f"bm_completion_{a.device.split(':')[0]}{suffix}", {"machine": machine_info(), "args": vars(a),
                                                                   "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
