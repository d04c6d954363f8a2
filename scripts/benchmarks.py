#!/usr/bin/env python3
"""Measures the core against stock libtorch and writes docs/benchmarks.md from `bench --json`.

Sections, each written with the commit it measured:
  kernels      the core's fused kernels against the same kernel unfused, and against the peak
  core         fp32 and bf16 example recipes against stock (issue 4's targets)
  int8         int8 example recipes against stock-int8, DLRM against our own fp32 (issue 5)
  calibration  every calibration algorithm on every workload: accuracy loss against fp32
  seqlen       BERT with a sequence length that changes per call against grouped lengths

Each row runs `ipex-tune bench` once per environment (libtorch's default, and two tuned for
stock: see ENVIRONMENTS), baseline and ours interleaved in one worker; the tables are
generated, never edited by hand. A run of some sections keeps the others from the existing file.
The peak of each dtype is the best oneDNN primitive of the Google Benchmark target here.

    scripts/benchmarks.py                          # every section, ~75 min
    scripts/benchmarks.py --sections int8          # one section; the others are kept
    scripts/benchmarks.py --rows bert-base         # rows whose workload matches
    scripts/benchmarks.py --measure-time 2         # shorter, noisier
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

# (workload, dtype, batch, target speedup over stock of the same dtype), from issue 4.
CORE_ROWS = [
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

# (workload, batch, baseline, target speedup), from issue 5. `ours-fp32` is our own fp32 example
# recipe measured in the same run: DLRM's target is against it, not against stock.
INT8_ROWS = [
    ("resnet50", 1, "stock-int8", 1.5),
    ("resnet50", 16, "stock-int8", 1.6),
    ("bert-base", 1, "stock-int8", 3.0),
    ("bert-base", 8, "stock-int8", 3.0),
    ("dlrm", 256, "ours-fp32", 1.5),
]

# Issue 5's accuracy bounds, per workload: the figure of `accuracy` each is read from.
INT8_ACCURACY = {
    "resnet50": ("top1_agreement", 0.99, "top-1 agreement"),
    "bert-base": ("class_agreement", 0.99, "class agreement"),
    "dlrm": ("agreement_at_0_5", 0.995, "agreement at 0.5"),
}

ALGORITHMS = ["minmax", "moving_average_minmax", "histogram", "entropy", "percentile"]
# Batch and calibration samples of the calibration section, per workload: the example recipes'.
CALIBRATION_WORKLOADS = [("resnet50", 16, 64), ("bert-base", 8, 64), ("dlrm", 256, 1024)]
# Each algorithm without input smoothing and with SmoothQuant's alpha 0.5.
CALIBRATION_SMOOTHING = [None, 0.5]

OPENMP_BLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
TUNED_MALLOC = {
    "LD_PRELOAD": JEMALLOC,
    "MALLOC_CONF": "oversize_threshold:1,background_thread:true,metadata_thp:auto,"
    "dirty_decay_ms:9000000000,muzzy_decay_ms:9000000000",
}
# Debian's default OpenBLAS runs its own pthreads beside libtorch's OpenMP threads. With
# libgomp's default spinning they fight over the CPUs (stock BERT bs1 fp32 ~700 ms), so stock
# wants either OMP_WAIT_POLICY=PASSIVE (~240 ms), which costs every OpenMP region a wake-up, or
# the OpenMP build of OpenBLAS, which shares libgomp's threads (~250 ms). Which is fastest
# depends on the model (DLRM: 16 ms either way, 28 ms with both), so both run, and a target is
# judged in the one where the baseline was fastest.
ENVIRONMENTS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", **TUNED_MALLOC},
    "omp-blas": {"LD_LIBRARY_PATH": OPENMP_BLAS, **TUNED_MALLOC},
}
TUNED = ["passive", "omp-blas"]
ENVIRONMENTS_TEXT = (
    "`default` is libtorch's; `passive` adds OMP_WAIT_POLICY=PASSIVE and jemalloc with a "
    "MALLOC_CONF; `omp-blas` the same jemalloc and the OpenMP build of OpenBLAS (libgomp's "
    "threads, not OpenBLAS's own) instead of the wait policy.")


def cpu_flags():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


# Debian's libtorch runs its own kernels at AVX2 unless ATEN_CPU_CAPABILITY=avx512, which is not
# always faster (ResNet-50 bs1 fp32 stock: 46 ms at AVX2, 49 ms at AVX-512; bs16 bf16: 961 and
# 847 ms), so where libtorch's AVX-512 kernels can run each tuned environment runs both ways.
if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= cpu_flags():
    for name in list(TUNED):
        ENVIRONMENTS[f"{name}-avx512"] = {**ENVIRONMENTS[name], "ATEN_CPU_CAPABILITY": "avx512"}
        TUNED.append(f"{name}-avx512")
    ENVIRONMENTS_TEXT += (" `-avx512` adds ATEN_CPU_CAPABILITY=avx512 (libtorch's own kernels at "
                          "AVX-512 instead of AVX2).")

# Recipes of the seqlen section (ipt_seq_len_bench) and issue 5's bound on varying / grouped.
SEQLEN_RECIPES = ["bert-base-int8", "bert-base-fp32"]
SEQLEN_BOUND = 1.10

SECTIONS = ["kernels", "core", "int8", "calibration", "seqlen"]
# Issue 4: a fused kernel may cost at most this much over the same kernel without its post-ops.
FUSION_BOUND = 0.10
PEAK_DTYPES = {"0": "fp32", "1": "bf16", "2": "int8"}


def run(cmd, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(cmd, capture_output=True, text=True, env=full_env)
    if result.returncode != 0:
        sys.exit(f"benchmarks: {' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


# Repetitions in random order, medians: one run per benchmark put a fusion's cost anywhere
# between -3% and +46% on this noisy machine.
KERNELS_COMMAND = ["build/bench/ipt_kernels_bench", "--benchmark_format=json",
                   "--benchmark_min_time=0.5", "--benchmark_repetitions=7",
                   "--benchmark_enable_random_interleaving=true",
                   "--benchmark_report_aggregates_only=true"]


def table_header(*columns):
    """A markdown table's header row and its separator."""
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]


def short_name(name):
    """A Google Benchmark run name without its timing suffix."""
    return name.replace("/real_time", "").replace("/manual_time", "")


def benchmark_ms(b):
    """A Google Benchmark result's time (real or manual) in ms."""
    return b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]


def kernel_benchmarks(build):
    """Every benchmark of the Google Benchmark target with every CPU, by name (an unfused
    variant `none` first): its median repetition with `cv` added, or its error."""
    out = run([os.path.join(build, "bench", "ipt_kernels_bench"), *KERNELS_COMMAND[1:]],
              {"OMP_NUM_THREADS": str(os.cpu_count())})
    results = {}
    for b in json.loads(out)["benchmarks"]:
        name = b["run_name"]
        if b.get("error_occurred"):
            results.setdefault(name, dict(b, name=name))
        elif b.get("aggregate_name") == "median":
            results.setdefault(name, {}).update(b, name=name)
        elif b.get("aggregate_name") == "cv":
            results.setdefault(name, {})["cv"] = b["real_time"]
    def order(name):
        family, _, variant = short_name(name).partition("/")
        return family, variant != "none", variant

    return [results[name] for name in sorted(results, key=order)]


def peaks(benchmarks):
    """GFLOP/s (GOP/s for int8) of the best oneDNN primitive per dtype."""
    best = {}
    for b in benchmarks:
        if not b["name"].startswith("BM_OneDnn"):
            continue
        match = re.search(r"dtype:(\d)", b["name"])
        if b.get("error_occurred") or "GFLOPS" not in b or not match:
            continue
        dtype = PEAK_DTYPES[match.group(1)]
        best[dtype] = max(best.get(dtype, 0), b["GFLOPS"])
    return best


# The kernels-section benchmarks whose sum is what a workload's heavy products take at best.
BOUND_BENCHMARKS = {"resnet50": ("BM_ResNet50Convolutions",),
                    "bert-base": ("BM_BertLinears", "BM_BertAttentionProducts")}


def bound_ms(args, workload, dtype, batch):
    """What a workload's convolutions or matrix products take at best, ms per batch, or None
    (another workload, or not measured): ResNet-50's convolutions with their post-ops
    (BM_ResNet50Convolutions); BERT-base's linears with the FFN's GELU and its attention
    products (BM_BertLinears + BM_BertAttentionProducts)."""
    names = BOUND_BENCHMARKS.get(workload)
    if names is None:
        return None
    index = {d: i for i, d in PEAK_DTYPES.items()}[dtype]
    total = 0.0
    for name in names:
        found = [b for b in args.kernel_benchmarks
                 if b["name"].startswith(f"{name}/dtype:{index}/batch:{batch}/")
                 and not b.get("error_occurred")]
        if not found:
            return None
        total += benchmark_ms(found[0])
    return total


# How far under the bound a whole network has come: each product of the bound reads an input no
# other product just wrote, where the network's read their predecessor's output from the cache
# (ResNet-50 fp32 bs1 at e02a697: 38.2 ms against a bound of 39.7).
BOUND_SLACK = 0.05


def bound_text(target_ms, bound_ms):
    """The `target ms / bound` cell: the time per batch a target asks for beside what the
    convolutions or matrix products alone take at best, marked when the target is further
    below that than BOUND_SLACK."""
    if bound_ms is None:
        return "-"
    below = target_ms < bound_ms * (1 - BOUND_SLACK)
    return f"{target_ms:.1f} / {bound_ms:.1f}" + (" (below the bound)" if below else "")


BOUND_TEXT = (
    "`target ms / bound`: the time per batch the target asks for (stock's time over the "
    "target) beside what the model's heavy products take at best here: each on oneDNN's best "
    "primitive for its shape (the faster of two layouts, chosen alone), all run back to back. "
    "ResNet-50: its 53 convolutions with the post-ops the network fuses into them (ReLU, "
    "residual sum + ReLU; int8 also requantizes, a scale per channel; "
    "`BM_ResNet50Convolutions` in the kernels section); pooling, the classifier and quantizing "
    "the input come on top. BERT-base: its 12 layers' linears with the FFN's GELU fused "
    "(`BM_BertLinears`; int8 with a scale per output feature and u8 output, cheaper than the "
    "core's fp32 output) and their attention products Q K^T and P V "
    "(`BM_BertAttentionProducts`); softmax, layer norms, the quantization of activations and "
    "the embeddings come on top. Each product here reads an input no other product just wrote, "
    f"so a network can come a few per cent under the bound: `below the bound` marks a target "
    f"more than {BOUND_SLACK:.0%} below it, out of reach of any oneDNN-based model on this "
    "machine.")


class Bench:
    """Runs `ipex-tune bench --json` and remembers each command for the section's listing."""

    def __init__(self, build, measure_time):
        self.tune = os.path.join(build, "app", "ipex-tune")
        self.measure_time = measure_time
        self.commands = []

    def __call__(self, workload, recipes, baseline, batch, env, extra=(), shown_recipes=None):
        cmd = [self.tune, "bench", "--workload", workload]
        for recipe in recipes:
            cmd += ["--recipe", os.path.join(ROOT, recipe)]
        cmd += ["--baseline", baseline, "--batch", str(batch), "--measure-time",
                str(self.measure_time), "--json", *extra]
        shown = []
        for recipe in shown_recipes or recipes:
            shown += ["--recipe", recipe]
        env_text = " ".join(f"{k}={v}" for k, v in env.items())
        self.commands.append(
            (env_text + " " if env_text else "") + " ".join(
                ["build/app/ipex-tune", "bench", "--workload", workload, *shown, "--baseline",
                 baseline, "--batch", str(batch), "--measure-time", str(self.measure_time),
                 "--json", *extra]))
        return json.loads(run(cmd, env))

    def listing(self):
        lines = ["", "Commands (one per bench run, in order):", "", "```"]
        return lines + self.commands + ["```"]


def kernels_section(args, bench, info, flops, peak):
    lines = [
        "`ipt_kernels_bench` (Google Benchmark), OMP_NUM_THREADS = every CPU, the median of 7 "
        "repetitions run in random order (`cv` their spread). `Fused*` are the "
        "core's own kernels (`LinearContext`, `ConvContext`) with each post-op; `cost` is their "
        "time over the same kernel without post-ops, which issue 4 bounds at "
        f"{FUSION_BOUND:.0%}. The others are oneDNN alone (the peak), libtorch's aten path for "
        "the same shape, and DLRM's interaction and BERT's add + layer norm (memory-bound: no "
        "GFLOP/s) against their stock compositions.",
        "",
        *table_header("benchmark", "implementation", "median ms", "cv", "GFLOP/s",
                      "share of peak", "cost of the post-ops"),
    ]
    unfused = {}
    for b in args.kernel_benchmarks:
        name = short_name(b["name"])
        if b.get("error_occurred"):
            lines.append(f"| {name} | skipped: {b.get('error_message', '')} | | | | | |")
            continue
        family, _, variant = name.partition("/")
        ms = benchmark_ms(b)
        dtype = PEAK_DTYPES.get(re.search(r"dtype:(\d)", name).group(1)) if "dtype:" in name \
            else "fp32"
        gflops = f"{b['GFLOPS']:.0f}" if "GFLOPS" in b else "-"
        share = f"{b['GFLOPS'] / peak[dtype]:.0%}" if dtype in peak and "GFLOPS" in b else "-"
        cost = ""
        if family.startswith("BM_Fused"):
            if variant == "none":
                unfused[family] = b["real_time"]
            elif family in unfused:
                extra = b["real_time"] / unfused[family] - 1
                cost = f"{extra:+.1%} ({'within' if extra <= FUSION_BOUND else 'over'} " \
                       f"{FUSION_BOUND:.0%})"
        lines.append(f"| {name} | {b.get('label', '')} | {ms:.2f} | {b.get('cv', 0):.2f} | "
                     f"{gflops} | {share} | {cost} |")
    bench.commands.append(" ".join(KERNELS_COMMAND))
    return lines


def core_section(args, bench, info, flops, peak):
    lines = [
        "Stock and ours run interleaved in one worker with the same threads and environment: "
        f"{ENVIRONMENTS_TEXT} Speedup = ours / stock items/s (median of blocks); targets from "
        "issue 4 apply to the tuned environment where stock ran fastest (marked). `target needs` "
        "is the GFLOP/s the target asks for (stock's rate times the target) against the peak: "
        "above 100%, the best kernel on this machine cannot reach it. " + BOUND_TEXT,
        "",
        *table_header("workload", "dtype", "batch", "env", "stock path", "stock ms", "ours ms",
                      "speedup", "target", "ours GFLOP/s", "share of peak", "target needs",
                      "target ms / bound", "cv stock/ours"),
    ]
    ours_rate = {}
    for workload, dtype, batch, target in CORE_ROWS:
        if args.rows and args.rows not in workload:
            continue
        if dtype not in peak:
            # Without native kernels both sides emulate the dtype: the ratio says nothing
            # about the core, and stock's emulation takes minutes per call.
            lines.append(f"| {workload} | {dtype} | {batch} | - | skipped: this CPU has no "
                         f"native {dtype} kernels (oneDNN ISA `{info['onednn_isa']}`) | | | | "
                         f"{target}x | | | | | |")
            continue
        recipe = os.path.join("recipes", "examples", f"{workload}-{dtype}.yaml")
        baseline = "stock" if dtype == "fp32" else f"stock-{dtype}"
        runs = {}
        for env_name, env in ENVIRONMENTS.items():
            print(f"benchmarks: core {workload} {dtype} bs{batch} {env_name}", file=sys.stderr)
            result = bench(workload, [recipe], baseline, batch, env)
            runs[env_name] = (result["baseline"], result["results"][0])
        judged = judged_environment(runs)
        bound = bound_ms(args, workload, dtype, batch)
        for env_name, (base, ours) in runs.items():
            gflops = flops[workload] * ours["items_per_s"] / 1e9
            needed = flops[workload] * base["items_per_s"] * target / 1e9
            lines.append(
                f"| {workload} | {dtype} | {batch} | {env_label(env_name, judged)} | "
                f"{base.get('path', baseline)} | {base['median_ms']:.1f} | "
                f"{ours['median_ms']:.1f} | "
                f"{ours['speedup']:.2f}x{verdict(env_name == judged, ours['speedup'], target)} | "
                f"{target}x | {gflops:.0f} | {gflops / peak[dtype]:.0%} | "
                f"{needed:.0f} ({needed / peak[dtype]:.0%} of peak) | "
                f"{bound_text(base['median_ms'] / target, bound)} | "
                f"{base['cv']:.2f}/{ours['cv']:.2f} |")
        ours_rate[(workload, dtype, batch)] = {
            env_name: ours["items_per_s"] for env_name, (_, ours) in runs.items()}
    return lines + batch_scaling(ours_rate)


def batch_scaling(ours_rate):
    """Issue 4: items/s at the throughput batch at least those at bs1, each batch in the
    environment where ours ran fastest (the one a user would pick for it)."""
    lines = ["", "Batch scaling: ours, items/s at bs1 and at the throughput batch, each in the "
             "environment where it ran fastest; issue 4 asks the larger batch for at least the "
             "items/s of bs1.", "",
             *table_header("workload", "dtype", "bs1 items/s (env)", "batch",
                           "items/s (env)", "ratio")]
    for (workload, dtype, batch), rates in ours_rate.items():
        single = ours_rate.get((workload, dtype, 1))
        if batch == 1 or not single:
            continue
        env1 = max(single, key=single.get)
        env = max(rates, key=rates.get)
        ratio = rates[env] / single[env1]
        lines.append(f"| {workload} | {dtype} | {single[env1]:.1f} ({env1}) | {batch} | "
                     f"{rates[env]:.1f} ({env}) | {ratio:.2f}x "
                     f"({'met' if ratio >= 1 else 'unmet'}) |")
    return lines


def judged_environment(runs):
    """The tuned environment whose baseline ran fastest: the one a target is judged in."""
    return max(TUNED, key=lambda name: runs[name][0]["items_per_s"])


def env_label(env_name, judged):
    return f"**{env_name}**" if env_name == judged else env_name


def verdict(judged, speedup, target):
    if not judged:
        return ""
    return " (met)" if speedup >= target else " (unmet)"


def agreement(workload, accuracy):
    """The agreement issue 5 bounds for this workload (top-1 where the metric lacks it)."""
    return accuracy.get(INT8_ACCURACY[workload][0], accuracy["top1_agreement"])


def accuracy_text(workload, accuracy):
    _, bound, label = INT8_ACCURACY[workload]
    value = agreement(workload, accuracy)
    text = f"{label} {value:.3f} ({'>=' if value >= bound else '<'} {bound}), " \
           f"cosine {accuracy['cosine']:.4f}"
    return text + f", {accuracy['items']} items"


def onednn_has_vnni(isa):
    """Whether the int8 kernels use u8 here: the rule of kernels::CpuHasVnni, on the ISA oneDNN
    really runs (which ONEDNN_MAX_CPU_ISA may cap below the CPU's flags)."""
    return "vnni" in isa or isa in ("avx512_core_bf16", "avx512_core_amx")


def int8_section(args, bench, info, flops, peak):
    lines = [
        "Ours = `recipes/examples/<workload>-int8.yaml`. `stock-int8` is libtorch's graph-mode "
        "quantization (torch::jit passes, onednn engine), static and dynamic both prepared and "
        "the faster used (its path says which); DLRM's target is against our own fp32 example "
        "recipe in the same run. Accuracy is ours against the fp32 reference over "
        f"`--eval-items {args.eval_items}`; issue 5's bounds in parentheses. {ENVIRONMENTS_TEXT} "
        "Targets apply to the tuned environment where the baseline ran fastest (marked). "
        "`target needs` is the GOP/s the target asks for (the baseline's rate times the target) "
        "against the int8 peak: above 100%, the best int8 kernel here cannot reach it. "
        + (f"This CPU has VNNI (oneDNN ISA `{info['onednn_isa']}`): activations use 8 bits."
           if onednn_has_vnni(info["onednn_isa"]) else
           f"Without VNNI (this CPU: oneDNN ISA `{info['onednn_isa']}`) activations use 7 "
           "bits and int8 kernels run at about twice fp32's rate, not four times.")
        + " " + BOUND_TEXT.replace("stock's time", "the baseline's time")
        + " BERT's attention products count here at their int8 rate, though ours keep them fp32.",
        "",
        *table_header("workload", "batch", "env", "baseline", "baseline ms", "ours ms", "speedup",
                      "target", "ours GOP/s", "share of int8 peak", "target needs",
                      "target ms / bound", "accuracy", "cv base/ours"),
    ]
    for workload, batch, baseline, target in INT8_ROWS:
        if args.rows and args.rows not in workload:
            continue
        int8 = os.path.join("recipes", "examples", f"{workload}-int8.yaml")
        runs = {}
        for env_name, env in ENVIRONMENTS.items():
            print(f"benchmarks: int8 {workload} bs{batch} {env_name}", file=sys.stderr)
            extra = ["--eval-items", str(args.eval_items)]
            # The example's every-op-int8 form, where the example keeps ops out of int8: measured
            # in the same run, shown below it, judged by no target.
            every_op = os.path.join("recipes", "examples", f"{workload}-int8-all.yaml")
            variants = [every_op] if os.path.exists(os.path.join(ROOT, every_op)) else []
            if baseline == "ours-fp32":
                fp32 = os.path.join("recipes", "examples", f"{workload}-fp32.yaml")
                result = bench(workload, [fp32, int8] + variants, "stock", batch, env, extra)
                base, ours = result["results"][:2]
                others = result["results"][2:]
                base_name = "ours fp32"
            else:
                result = bench(workload, [int8] + variants, baseline, batch, env, extra)
                base, ours = result["baseline"], result["results"][0]
                others = result["results"][1:]
                base_name = f"{baseline}: {base.get('path', baseline)}"
            runs[env_name] = (base, ours, base_name, list(zip(variants, others)))
        judged = judged_environment(runs)
        bound = bound_ms(args, workload, "int8", batch)
        for env_name, (base, ours, base_name, others) in runs.items():
            speedup = ours["items_per_s"] / base["items_per_s"]
            gops = flops[workload] * ours["items_per_s"] / 1e9
            needed = flops[workload] * base["items_per_s"] * target / 1e9
            share = f"{gops / peak['int8']:.0%}" if "int8" in peak else "-"
            needs = f"{needed:.0f} ({needed / peak['int8']:.0%} of peak)" if "int8" in peak else "-"
            lines.append(
                f"| {workload} | {batch} | {env_label(env_name, judged)} | {base_name} | "
                f"{base['median_ms']:.1f} | {ours['median_ms']:.1f} | "
                f"{speedup:.2f}x{verdict(env_name == judged, speedup, target)} | "
                f"{target}x | {gops:.0f} | {share} | {needs} | "
                f"{bound_text(base['median_ms'] / target, bound)} | "
                f"{accuracy_text(workload, ours['accuracy'])} | "
                f"{base['cv']:.2f}/{ours['cv']:.2f} |")
        for env_name, (base, _, base_name, others) in runs.items():
            for variant, other in others:
                speedup = other["items_per_s"] / base["items_per_s"]
                gops = flops[workload] * other["items_per_s"] / 1e9
                share = f"{gops / peak['int8']:.0%}" if "int8" in peak else "-"
                lines.append(
                    f"| {workload} ({os.path.basename(variant)}) | {batch} | {env_name} | "
                    f"{base_name} | {base['median_ms']:.1f} | {other['median_ms']:.1f} | "
                    f"{speedup:.2f}x | - | {gops:.0f} | {share} | - | - | "
                    f"{accuracy_text(workload, other['accuracy'])} | "
                    f"{base['cv']:.2f}/{other['cv']:.2f} |")
    return lines


def calibration_section(args, bench, info, flops, peak):
    lines = [
        "Static int8 with each calibration algorithm (`precision.calibration.algorithm`, "
        "defaults otherwise: averaging constant 0.01, percentile 99.99), against the fp32 "
        f"reference over `--eval-items {args.eval_items}`; `loss` is the workload's scalar "
        "accuracy loss (docs/accuracy.md). Calibration is timed without the calibration cache "
        "(IPT_NO_CALIBRATION_CACHE=1). The last row of each workload is libtorch's own "
        "graph-mode quantization for comparison. BERT is quantized statically here (its "
        "example recipe is dynamic, which calibrates nothing). `smooth_quant` 0.5: each int8 "
        "linear's input smoothed with SmoothQuant's alpha 0.5 (docs/int8.md; ResNet-50 has one "
        "linear, its classifier).",
        "",
        *table_header("workload", "batch", "algorithm", "smooth_quant", "samples", "loss",
                      "agreement", "cosine", "relative L2", "calibration s", "ms per batch"),
    ]
    env = {"IPT_NO_CALIBRATION_CACHE": "1"}
    with tempfile.TemporaryDirectory(prefix="ipt-benchmarks-") as tmp:
        for workload, batch, samples in CALIBRATION_WORKLOADS:
            if args.rows and args.rows not in workload:
                continue
            recipes, shown, variants = [], [], []
            for algorithm in ALGORITHMS:
                for alpha in CALIBRATION_SMOOTHING:
                    name = f"{workload}-{algorithm}-{alpha or 'off'}"
                    path = os.path.join(tmp, f"{name}.yaml")
                    with open(path, "w") as f:
                        f.write("schema: ipex-tune/recipe/v1\n"
                                f"workload: {{name: {workload}, batch: {batch}}}\n"
                                "precision:\n  dtype: int8\n"
                                f"  calibration: {{algorithm: {algorithm}, samples: {samples}}}\n")
                        if alpha:
                            f.write(f"  smooth_quant: {{alpha: {alpha}}}\n")
                    recipes.append(path)
                    variants.append((algorithm, alpha))
                    shown.append(f"<int8, {algorithm}, {samples} samples"
                                 + (f", smooth_quant {alpha}>" if alpha else ">"))
            print(f"benchmarks: calibration {workload} bs{batch}", file=sys.stderr)
            result = bench(workload, recipes, "stock-int8", batch, env,
                           ["--eval-items", str(args.eval_items)], shown)
            for (algorithm, alpha), r in zip(variants, result["results"]):
                a = r["accuracy"]
                lines.append(
                    f"| {workload} | {batch} | {algorithm} | {alpha or 'off'} | {samples} | "
                    f"{a['loss']:.4f} | {agreement(workload, a):.3f} | {a['cosine']:.4f} | "
                    f"{a['relative_l2']:.4f} | {r['applied']['calibration_s']:.1f} | "
                    f"{r['median_ms']:.1f} |")
            base = result["baseline"]
            a = base["accuracy"]
            lines.append(
                f"| {workload} | {batch} | stock-int8: {base['path']} | | | {a['loss']:.4f} | "
                f"{agreement(workload, a):.3f} | {a['cosine']:.4f} | "
                f"{a['relative_l2']:.4f} | | {base['median_ms']:.1f} |")
    lines.append("")
    lines.append("`agreement` is " + "; ".join(
        f"{w}: {label}" for w, (_, _, label) in INT8_ACCURACY.items()) + ".")
    return lines


def seqlen_section(args, bench, info, flops, peak):
    lines = [
        "`ipt_seq_len_bench`: the recipe's model built and optimised once through the production "
        "runtime, then per round the same calls twice, interleaved: `grouped` runs each of 16 "
        "lengths drawn from [32, 384] twice in a row (a fixed length per group), `varying` "
        "shuffles those calls so the length changes on nearly every call. Medians over 9 rounds "
        "of microseconds per token; varying / grouped is the median of each round's own ratio "
        "(both passes of a round share the machine's state); issue 5 allows up to "
        f"{SEQLEN_BOUND}. `new length` is the first call at a length never seen before over "
        "the call right after it at that length (primitive creation), from a warm-up pass.",
        "",
        *table_header("recipe", "batch", "grouped us/token", "varying us/token",
                      "varying / grouped", "bound", "new length, median / max ms"),
    ]
    tool = os.path.join(args.build, "bench", "ipt_seq_len_bench")
    for name in SEQLEN_RECIPES:
        if args.rows and args.rows not in name:
            continue
        recipe = os.path.join("recipes", "examples", f"{name}.yaml")
        cmd = [tool, "--recipe", recipe, "--json"]
        print(f"benchmarks: seqlen {name}", file=sys.stderr)
        r = json.loads(run([tool, "--recipe", os.path.join(ROOT, recipe), "--json"]))
        bench.commands.append(" ".join(["build/bench/ipt_seq_len_bench", *cmd[1:]]))
        ratio = r["varying_over_grouped"]
        lines.append(
            f"| {recipe} | {r['batch']} | {r['grouped_median_us_per_token']:.1f} | "
            f"{r['varying_median_us_per_token']:.1f} | {ratio:.3f} "
            f"({'met' if ratio <= SEQLEN_BOUND else 'unmet'}) | {SEQLEN_BOUND} | "
            f"{r['new_shape_ms_median']:.1f} / {r['new_shape_ms_max']:.1f} |")
    return lines


SECTION_TITLES = {
    "kernels": ("Kernels: fusion cost and share of peak", kernels_section),
    "core": ("fp32 and bf16 against stock libtorch", core_section),
    "int8": ("int8 against stock int8", int8_section),
    "calibration": ("Calibration algorithms: accuracy against fp32", calibration_section),
    "seqlen": ("Sequence lengths that change per call", seqlen_section),
}


def existing_sections(path):
    """The sections of an earlier run of this script, by name, as written."""
    if not os.path.exists(path):
        return {}
    text = open(path).read()
    return {m.group(1): m.group(0) for m in re.finditer(
        r"<!-- section (\w+) -->.*?<!-- end of section \1 -->", text, re.S)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="comma-separated, of: " + ", ".join(SECTIONS))
    parser.add_argument("--rows", default="", help="only rows whose workload contains this")
    parser.add_argument("--measure-time", type=float, default=5.0)
    parser.add_argument("--eval-items", type=int, default=64,
                        help="evaluation items of the int8 and calibration sections")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    args = parser.parse_args()
    wanted = [s for s in args.sections.split(",") if s]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        sys.exit(f"benchmarks: unknown section {', '.join(unknown)} (known: "
                 f"{', '.join(SECTIONS)})")

    if not os.path.isdir(OPENMP_BLAS):
        sys.exit(f"benchmarks: {OPENMP_BLAS} is missing: the `omp-blas` environment needs "
                 "Debian's libopenblas0-openmp (scripts/setup.sh --deps installs it)")
    # Read before anything is measured: the tree the binaries were built from, not what it
    # became while they ran. The file this writes is not part of what it measures.
    commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
    dirty = [line for line in run(["git", "-C", ROOT, "status", "--porcelain",
                                   "--untracked-files=no"]).splitlines()
             if not line.endswith(os.path.relpath(args.output, ROOT))]
    worker = os.path.join(args.build, "app", "ipex-tune-worker")
    info = json.loads(run([worker, "info"]).splitlines()[0])
    flops = {}
    for line in run([worker, "workloads"]).splitlines():
        w = json.loads(line)
        flops[w["name"]] = w["flops_per_item"]
    args.kernel_benchmarks = kernel_benchmarks(args.build)
    peak = peaks(args.kernel_benchmarks)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    units = {"int8": "GOP/s"}

    kept = existing_sections(args.output)
    lines = [
        "# Benchmarks: the core against stock libtorch",
        "",
        "Written by `scripts/benchmarks.py`; each section says when and at which commit it was "
        "measured. Do not edit by hand.",
        "",
    ]
    for name in SECTIONS:
        title, measure = SECTION_TITLES[name]
        if name not in wanted:
            lines.append(kept.get(name, f"<!-- section {name} -->\n## {title}\n\nNot measured "
                                  f"yet: `scripts/benchmarks.py --sections {name}`.\n"
                                  f"<!-- end of section {name} -->"))
            lines.append("")
            continue
        bench = Bench(args.build, args.measure_time)
        body = measure(args, bench, info, flops, peak)
        lines += [
            f"<!-- section {name} -->",
            f"## {title}",
            "",
            f"Measured on {datetime.date.today()} at commit `{commit}`"
            + (" (with local changes)" if dirty else "") + f": {cpu}, {info['allowed_cpus']} "
            f"CPUs, oneDNN {info['onednn']} (ISA `{info['onednn_isa']}`), libtorch "
            f"{info['libtorch']}, ATEN_CPU_CAPABILITY `{info['aten_cpu_capability']}` unless an "
            "environment sets it. Peak "
            "per dtype (best oneDNN primitive, `ipt_kernels_bench`): " +
            ", ".join(f"{d} {g:.0f} {units.get(d, 'GFLOP/s')}" for d, g in sorted(peak.items()))
            + ("" if "bf16" in peak else "; no bf16 kernels on this CPU (bf16 runs in fp32 here)")
            + ".",
            "",
            *body,
            *bench.listing(),
            f"<!-- end of section {name} -->",
            "",
        ]
    with open(args.output, "w") as f:
        f.write("\n".join(lines))
    print(f"benchmarks: wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
