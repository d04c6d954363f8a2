#!/usr/bin/env python3
"""Measures the core against stock libtorch and writes docs/benchmarks.md from `bench --json`.

Each row runs `ipex-tune bench` once per environment (libtorch's default, and a tuned one with
OMP_WAIT_POLICY=PASSIVE and jemalloc), stock and ours interleaved in one worker; the table is
generated, never edited by hand. The peak of each dtype is the best oneDNN primitive of the
Google Benchmark target on this machine.

    scripts/benchmarks.py                      # every row, ~20-30 min
    scripts/benchmarks.py --rows bert-base     # rows whose workload matches
    scripts/benchmarks.py --measure-time 2     # shorter, noisier
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

# (workload, dtype, batch, target speedup over stock of the same dtype), from issue 4.
ROWS = [
    ("resnet50", "fp32", 1, 1.4),
    ("resnet50", "fp32", 16, 1.15),
    ("resnet50", "bf16", 1, 2.0),
    ("resnet50", "bf16", 16, 1.7),
    ("bert-base", "fp32", 1, 2.5),
    ("bert-base", "fp32", 8, 2.2),
    ("bert-base", "bf16", 1, 2.0),
    ("bert-base", "bf16", 8, 1.5),
    ("dlrm", "fp32", 256, 2.0),
]

ENVIRONMENTS = {
    "default": {},
    "tuned": {
        "OMP_WAIT_POLICY": "PASSIVE",
        "LD_PRELOAD": JEMALLOC,
        "MALLOC_CONF": "oversize_threshold:1,background_thread:true,metadata_thp:auto,"
        "dirty_decay_ms:9000000000,muzzy_decay_ms:9000000000",
    },
}


def run(cmd, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(cmd, capture_output=True, text=True, env=full_env)
    if result.returncode != 0:
        sys.exit(f"benchmarks: {' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def peaks(build):
    """GFLOP/s of the best oneDNN primitive per dtype, from the Google Benchmark target."""
    out = run([os.path.join(build, "bench", "ipt_kernels_bench"), "--benchmark_filter=OneDnn",
               "--benchmark_format=json", "--benchmark_min_time=1"],
              {"OMP_NUM_THREADS": str(os.cpu_count())})
    best = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("error_occurred") or "GFLOPS" not in b:
            continue
        dtype = "bf16" if "bf16:1" in b["name"] else "fp32"
        best[dtype] = max(best.get(dtype, 0), b["GFLOPS"])
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--rows", default="", help="only rows whose workload contains this")
    parser.add_argument("--measure-time", type=float, default=5.0)
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    args = parser.parse_args()

    tune = os.path.join(args.build, "app", "ipex-tune")
    worker = os.path.join(args.build, "app", "ipex-tune-worker")
    info = json.loads(run([worker, "info"]).splitlines()[0])
    flops = {}
    for line in run([worker, "workloads"]).splitlines():
        w = json.loads(line)
        flops[w["name"]] = w["flops_per_item"]
    peak = peaks(args.build)
    commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]).strip()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())

    lines = [
        "# Benchmarks: the core against stock libtorch",
        "",
        f"Written by `scripts/benchmarks.py` on {datetime.date.today()} at commit `{commit}`"
        + (" (with local changes)" if dirty else "") + ". Do not edit by hand.",
        "",
        f"Machine: {cpu}, {info['allowed_cpus']} CPUs, oneDNN {info['onednn']} "
        f"(ISA `{info['onednn_isa']}`), libtorch {info['libtorch']}, ATEN_CPU_CAPABILITY "
        f"`{info['aten_cpu_capability']}`.",
        "Peak per dtype (best oneDNN primitive, `ipt_kernels_bench`): " +
        ", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in sorted(peak.items())) +
        ("" if "bf16" in peak else "; no bf16 kernels on this CPU (bf16 runs in fp32 here)") + ".",
        "",
        "Stock and ours run interleaved in one worker with the same threads and environment: "
        "`default` is libtorch's, `tuned` adds OMP_WAIT_POLICY=PASSIVE and jemalloc with a "
        "MALLOC_CONF. Speedup = ours / stock items/s (median of blocks); targets from issue 4 "
        "apply to the tuned environment.",
        "",
        "| workload | dtype | batch | env | stock path | stock ms | ours ms | speedup | target | "
        "ours GFLOP/s | share of peak | cv stock/ours |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    commands = []
    for workload, dtype, batch, target in ROWS:
        if args.rows and args.rows not in workload:
            continue
        if dtype not in peak:
            # Without native kernels both sides emulate the dtype: the ratio says nothing
            # about the core, and stock's emulation takes minutes per call.
            lines.append(f"| {workload} | {dtype} | {batch} | - | skipped: this CPU has no "
                         f"native {dtype} kernels (oneDNN ISA `{info['onednn_isa']}`) | | | | "
                         f"{target}x | | | |")
            continue
        recipe = os.path.join("recipes", "examples", f"{workload}-{dtype}.yaml")
        baseline = "stock" if dtype == "fp32" else f"stock-{dtype}"
        for env_name, env in ENVIRONMENTS.items():
            cmd = [tune, "bench", "--workload", workload, "--recipe",
                   os.path.join(ROOT, recipe), "--baseline", baseline, "--batch", str(batch),
                   "--measure-time", str(args.measure_time), "--json"]
            print(f"benchmarks: {workload} {dtype} bs{batch} {env_name}", file=sys.stderr)
            result = json.loads(run(cmd, env))
            base, ours = result["baseline"], result["results"][0]
            gflops = flops[workload] * ours["items_per_s"] / 1e9
            share = gflops / peak[dtype]
            met = "" if env_name != "tuned" else (
                " (met)" if ours["speedup"] >= target else " (unmet)")
            lines.append(
                f"| {workload} | {dtype} | {batch} | {env_name} | {base.get('path', baseline)} | "
                f"{base['median_ms']:.1f} | {ours['median_ms']:.1f} | "
                f"{ours['speedup']:.2f}x{met} | {target}x | {gflops:.0f} | {share:.0%} | "
                f"{base['cv']:.2f}/{ours['cv']:.2f} |")
            env_text = " ".join(f"{k}={v}" for k, v in env.items())
            commands.append(f"{env_text + ' ' if env_text else ''}build/app/ipex-tune bench "
                            f"--workload {workload} --recipe {recipe} --baseline {baseline} "
                            f"--batch {batch} --measure-time {args.measure_time} --json")
    lines += ["", "Commands (one per row, in order):", "", "```"] + commands + ["```", ""]
    with open(args.output, "w") as f:
        f.write("\n".join(lines))
    print(f"benchmarks: wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
