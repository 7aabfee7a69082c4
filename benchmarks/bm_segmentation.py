"""Semantic segmentation: the sparse U-Net's training step per conv backend, and whole-scene inference of the
fully convolutional sparse U-Net against the ScanNet paper's sliding-window dense baseline, in one run.

    python benchmarks/bm_segmentation.py --data CROPS [--scene SCENE_ID] [--unet-checkpoint last.pt]
        [--window-checkpoint last.pt] [--steps 6] [--repeats 3] [--window-repeats 3] [--threads 2]

CROPS: a sparse3d.crops dataset of whole scenes (`sparse3d preprocess SCANS CROPS --recipe segmentation
--placement whole`); its "train" split feeds the training steps, SCENE (default: the first scene of the
"val" split, else of "train") is the whole scene inferred.

1. Training step (sparse3d.tasks.segmentation.train.segmentation_task: B's SegmentationUNet, its batches of
   random boxes, loss and AdamW) on each backend ("native", "spconv"): the same weights (seed 0, or the
   U-Net checkpoint's), the same batches. Outputs compared: the eval-mode logits of the first batch and the
   loss of every step, against native's. Step time: after one warm-up step, the median over ``steps`` steps
   on batches not seen before (as in training: new boxes, new coordinates), then over the same batches once
   more ("seen": shape-keyed caches such as spconv's algorithm tuning warm).
2. Whole-scene inference of SCENE: the sparse U-Net (predict_labels, native backend; once more with ``--tta``
   test-time views, default 8) and the sliding window
   (sparse3d.tasks.segmentation.window_infer.sliding_window_labels); median wall time over ``repeats``
   whole-scene runs after a warm-up (the U-Net: one whole-scene run; the window: a 20 x 20 column box);
   with checkpoints also each one's voxel mIoU on the scene. Untrained nets (seed 0, default configs) time
   the same as trained ones.

Each measurement runs in its own fresh process (none inherits another's allocator caches) with ``threads``
torch threads. Peak memory: on CPU the peak RSS (VmHWM, reset through /proc/self/clear_refs after set-up:
data loaded, model built, warm-up done) minus the RSS at the reset, the largest over the repeats; on CUDA
torch.cuda.max_memory_allocated. Issue targets: native step >= 1.5x spconv's; sparse inference >= 20x
faster than the sliding window. Writes benchmarks/results/bm_segmentation_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_info, print_table, write_json  # noqa: E402
from sparse3d.utils.measure import peak_rss_kib, reset_peak_rss  # noqa: E402

BACKENDS = ("native", "spconv")
TARGET_TRAIN_SPEEDUP = 1.5
TARGET_INFER_SPEEDUP = 20.0


def _reset_peak(device: str) -> int:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    return reset_peak_rss() * 1024


def _peak_mib(device: str, base: int) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    return (peak_rss_kib() * 1024 - base) / 2**20


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _scene(a) -> Any:
    from data_tools import load_manifest
    from sparse3d.tasks.segmentation.sample import load_sample
    splits = load_manifest(a.data)["splits"]
    rels = splits.get("val") or splits.get("train") or []
    if a.scene:
        rels = [r for k in sorted(splits) for r in splits[k] if r.split("/")[0] == a.scene]
    if not rels:
        raise SystemExit(f"error: --scene {a.scene!r} is not in {a.data}/manifest.json" if a.scene
                         else f"error: {a.data}/manifest.json lists no val or train scenes")
    return load_sample(os.path.join(a.data, rels[0]))


def _unet_train_config(a, backend: str):
    from sparse3d.tasks.segmentation.config import SegmentationTrainConfig
    model: Dict[str, Any] = {}
    if a.unet_checkpoint:
        from sparse3d.tasks.segmentation.checkpoint import load_segmentation_checkpoint
        model = dict(load_segmentation_checkpoint(a.unet_checkpoint)["config"]["model"])
        model["voxel_size"] = None
    return SegmentationTrainConfig(data=a.data, batch_size=a.batch, box=list(a.box), backend=backend,
                                   threads=a.threads, device=a.device, model=model)


def child_train(a) -> Dict[str, Any]:
    """Train steps of B's U-Net on backend a.backend; logits of batch 0 to a.logits (npz)."""
    import sparse3d.nn as snn
    from sparse3d.backends import get_backend
    from sparse3d.tasks.segmentation.train import segmentation_task
    from sparse3d.train.distributed import DistInfo
    try:
        get_backend(a.backend)
    except Exception as e:  # noqa: BLE001 - reported in the table
        return {"backend": a.backend, "status": f"not available ({e})"}
    device = torch.device(a.device)
    cfg = _unet_train_config(a, a.backend)
    task = segmentation_task(cfg, DistInfo(), device)
    torch.manual_seed(0)
    net = task.build_model().to(device)
    if a.unet_checkpoint:
        from sparse3d.tasks.segmentation.checkpoint import load_segmentation_checkpoint
        net.load_state_dict(load_segmentation_checkpoint(a.unet_checkpoint)["model"])
    snn.set_backend(net, a.backend)
    opt = task.make_optimizer(net)
    batches = [task.batch(i, DistInfo(), device) for i in range(a.steps + 1)]
    net.eval()
    with torch.no_grad():
        logits = net(batches[0][0]).feats.float().cpu().numpy()
    np.savez(a.logits, logits=logits)
    net.train()

    def step(i: int) -> float:
        for g in opt.param_groups:
            g["lr"] = task.lr_at(i)
        loss, _, _ = task.loss(net, batches[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    losses = [step(0)]  # warm-up (allocator, first kernel maps)
    base = _reset_peak(a.device)
    times: Dict[str, List[float]] = {"new": [], "seen": []}
    for kind in ("new", "seen"):  # each batch first unseen (as in training), then once more (per-shape caches warm)
        for i in range(1, a.steps + 1):
            _sync(a.device)
            t = time.perf_counter()
            losses.append(step(i))
            _sync(a.device)
            times[kind].append(time.perf_counter() - t)
    return {"backend": a.backend, "status": "ok", "step_s_median": statistics.median(times["new"]),
            "step_s_median_seen": statistics.median(times["seen"]), "step_s": times["new"],
            "step_s_seen": times["seen"], "peak_mem_mib": round(_peak_mib(a.device, base), 1), "losses": losses,
            "input_voxels_per_step": float(np.mean([len(b[0]) for b in batches[1:]])),
            "threads": torch.get_num_threads()}


def child_infer(a) -> Dict[str, Any]:
    """Whole-scene inference of one model (a.model: unet | window) on the scene, a.repeats times."""
    from sparse3d.tasks.segmentation.benchmark import class_confusion, scores_from_confusion, voxel_scores_dict
    sample = _scene(a)
    trained = False
    if a.model == "unet":
        from sparse3d.tasks.segmentation.config import SegmentationModelConfig
        from sparse3d.tasks.segmentation.model import SegmentationUNet, predict_labels
        if a.unet_checkpoint:
            from sparse3d.tasks.segmentation.checkpoint import load_model
            net, mcfg = load_model(a.unet_checkpoint, a.device)
            trained = True
        else:
            torch.manual_seed(0)
            mcfg = SegmentationModelConfig(voxel_size=sample.voxel_size)
            net = SegmentationUNet(mcfg).to(a.device).eval()

        def run():
            return predict_labels(net, sample, mcfg, backend="native", tta=a.tta)
        run()  # warm-up: one whole scene
    else:
        from sparse3d.tasks.segmentation.window_infer import load_window_model, sliding_window_labels
        from sparse3d.tasks.segmentation.window_model import WindowModelConfig, WindowNet
        if a.window_checkpoint:
            net, _ = load_window_model(a.window_checkpoint, a.device)
            trained = True
        else:
            torch.manual_seed(0)
            net = WindowNet(WindowModelConfig()).to(a.device).eval()

        def run():
            return sliding_window_labels(net, sample, batch=a.window_batch, device=a.device)
        c = sample.coords.min(0)
        sliding_window_labels(net, sample.box(c, (20, 20, 62)), batch=a.window_batch, device=a.device)  # warm-up
    times: List[float] = []
    peaks: List[float] = []
    pred = None
    for _ in range(a.repeats):
        base = _reset_peak(a.device)
        _sync(a.device)
        t = time.perf_counter()
        pred = run()
        _sync(a.device)
        times.append(time.perf_counter() - t)
        peaks.append(_peak_mib(a.device, base))
    name = a.model if a.tta == 1 else f"{a.model}_tta{a.tta}"
    row: Dict[str, Any] = {"model": name, "status": "ok", "scene": sample.scene_id, "voxels": len(sample),
                           "seconds_median": statistics.median(times), "seconds": times,
                           "peak_mem_mib": round(max(peaks), 1), "trained": trained, "threads": torch.get_num_threads()}
    if a.model == "window":
        from sparse3d.tasks.segmentation.window_data import SceneVolume
        row["columns"] = int(len(SceneVolume.columns_of(sample.coords, int(sample.coords[:, 2].min()))))
    if trained:
        sc = voxel_scores_dict(scores_from_confusion(class_confusion(pred, sample.labels)))
        row.update(miou=sc["miou"], accuracy=sc["accuracy"], classes_present=len(sc["present"]))
    return row


def _child(a, mode: str, extra: List[str]) -> Dict[str, Any]:
    argv = [sys.executable, os.path.abspath(__file__), "--child", mode, "--data", a.data, "--steps", str(a.steps),
            "--batch", str(a.batch), "--box", *map(str, a.box), "--threads", str(a.threads), "--device", a.device,
            "--window-batch", str(a.window_batch), *extra]
    for flag, v in (("--scene", a.scene), ("--unet-checkpoint", a.unet_checkpoint),
                    ("--window-checkpoint", a.window_checkpoint)):
        if v:
            argv += [flag, v]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    rows = [line[4:] for line in r.stdout.splitlines() if line.startswith("ROW ")]
    if r.returncode or not rows:
        raise SystemExit(f"error: benchmark child {mode} {extra} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(rows[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="sparse3d.crops dataset of whole scenes")
    ap.add_argument("--scene", default=None, help="scene id inferred whole (default: first val scene)")
    ap.add_argument("--unet-checkpoint", default=None, help="`sparse3d train segmentation` last.pt (optional)")
    ap.add_argument("--window-checkpoint", default=None, help="`sparse3d train segmentation-window` last.pt (optional)")
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per backend")
    ap.add_argument("--batch", type=int, default=4, help="boxes per training step")
    ap.add_argument("--box", type=int, nargs=3, default=[48, 48, 64], help="training box, voxels")
    ap.add_argument("--repeats", type=int, default=3, help="whole-scene runs of the U-Net")
    ap.add_argument("--window-repeats", type=int, default=3, help="whole-scene runs of the sliding window")
    ap.add_argument("--window-batch", type=int, default=128, help="windows per forward pass")
    ap.add_argument("--tta", type=int, default=8, help="also time the U-Net with this many test-time views "
                                                      "(predict_labels tta; 1 = not)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS))
    ap.add_argument("--skip", nargs="*", default=[], choices=["train", "infer"], help="parts left out")
    ap.add_argument("--out-dir", default=None, help="results folder (default: benchmarks/results)")
    ap.add_argument("--child", default=None, choices=["train", "infer"], help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="native", help=argparse.SUPPRESS)
    ap.add_argument("--logits", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="unet", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        torch.set_num_threads(a.threads)
        row = child_train(a) if a.child == "train" else child_infer(a)
        print("ROW " + json.dumps(row))
        return
    t_start = time.time()
    out: Dict[str, Any] = {"machine": machine_info(a.device), "args": {k: v for k, v in vars(a).items()
                                                                        if k not in ("child", "backend", "logits",
                                                                                     "model")}}
    if "train" not in a.skip:
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for b in a.backends:
                path = os.path.join(tmp, f"{b}.npz")
                rows.append(_child(a, "train", ["--backend", b, "--logits", path]))
                if rows[-1]["status"] == "ok":
                    rows[-1]["_logits"] = np.load(path)["logits"]
        logits = {r["backend"]: r.pop("_logits") for r in rows if "_logits" in r}
        ref = next((r for r in rows if r["backend"] == "native" and r["status"] == "ok"), None)
        for r in rows:
            if ref is None or r is ref or r["backend"] not in logits:
                continue
            mine, base = logits[r["backend"]], logits["native"]
            r["logits_max_abs_diff_vs_native"] = float(np.abs(mine - base).max())
            r["logits_max_abs_native"] = float(np.abs(base).max())
            r["argmax_agreement_vs_native"] = float((mine.argmax(1) == base.argmax(1)).mean())
            r["loss_max_abs_diff_vs_native"] = float(np.max(np.abs(np.subtract(r["losses"], ref["losses"]))))
        spconv = next((r for r in rows if r["backend"] == "spconv" and r["status"] == "ok"), None)
        speedup = spconv["step_s_median"] / ref["step_s_median"] if ref and spconv else None
        seen = spconv["step_s_median_seen"] / ref["step_s_median_seen"] if ref and spconv else None
        out["train_step"] = {"rows": rows, "native_speedup_vs_spconv": speedup,
                             "native_speedup_vs_spconv_seen_batches": seen, "target": TARGET_TRAIN_SPEEDUP,
                             "met": None if speedup is None else speedup >= TARGET_TRAIN_SPEEDUP}
        print(f"U-Net training step (batch {a.batch} boxes {a.box}, {a.threads} threads, {a.device}); "
              f"median of {a.steps} steps")
        print_table(["backend", "step s", "seen s", "peak MiB", "voxels/step", "max |dlogit|", "argmax agree"],
                    [[r["backend"], r.get("step_s_median", r["status"]), r.get("step_s_median_seen", ""),
                      r.get("peak_mem_mib", ""),
                      r.get("input_voxels_per_step", ""), r.get("logits_max_abs_diff_vs_native", ""),
                      r.get("argmax_agreement_vs_native", "")] for r in rows])
        if speedup is not None:
            print(f"native step {speedup:.2f}x faster than spconv on new batches (target >= {TARGET_TRAIN_SPEEDUP}); "
                  f"{seen:.2f}x on batches seen before")
    if "infer" not in a.skip:
        unet = _child(a, "infer", ["--model", "unet", "--repeats", str(a.repeats), "--tta", "1"])
        window = _child(a, "infer", ["--model", "window", "--repeats", str(a.window_repeats), "--tta", "1"])
        ratio = window["seconds_median"] / unet["seconds_median"]
        tta = None
        if a.tta > 1:
            tta = _child(a, "infer", ["--model", "unet", "--repeats", str(a.repeats), "--tta", str(a.tta)])
            tta["speedup_vs_window"] = window["seconds_median"] / tta["seconds_median"]
        out["inference"] = {"unet": unet, "window": window, "unet_tta": tta, "unet_speedup_vs_window": ratio,
                            "target": TARGET_INFER_SPEEDUP, "met": ratio >= TARGET_INFER_SPEEDUP,
                            "memory_ratio_window_over_unet": window["peak_mem_mib"] / max(unet["peak_mem_mib"], 1e-9)}
        print(f"whole-scene inference of {unet['scene']} ({unet['voxels']} voxels, {window['columns']} columns), "
              f"{a.threads} threads, {a.device}")
        print_table(["model", "seconds", "peak MiB", "mIoU"],
                    [[r["model"], r["seconds_median"], r["peak_mem_mib"], r.get("miou", "untrained")]
                     for r in (unet, window, tta) if r is not None])
        print(f"sparse U-Net {ratio:.1f}x faster than the sliding window (target >= {TARGET_INFER_SPEEDUP})"
              + (f"; with {a.tta} test-time views {tta['speedup_vs_window']:.1f}x" if tta else ""))
    out["seconds"] = round(time.time() - t_start, 1)
    path = write_json(f"bm_segmentation_{a.device.split(':')[0]}", out, a.out_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
