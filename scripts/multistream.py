#!/usr/bin/env python3
"""Multi-stream overhead: N streams in one process against N separate bound processes.

Both sides do the same work at the same time: a batch of B items per call, cut into N shares.
In-process, one worker runs the recipe with `runtime.streams: N` (each stream's OpenMP team
pinned to its share of the CPUs). Separately, N `ipex-tune bench` processes run at once, each
restricted to one share of the CPUs with taskset and running B/N items per call. The target of
issue 6 is in-process throughput >= 95% of the processes' total.

    scripts/multistream.py                                   # ResNet-50 int8, N = 2
    scripts/multistream.py --recipe recipes/examples/resnet50-bf16.yaml --streams 2 --batch 8

Prints each side's items/s and the ratio; exits 1 when the ratio misses --target.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def with_streams(recipe_text, streams):
    if "\nruntime:" in "\n" + recipe_text:
        sys.exit("multistream.py: the recipe already has a runtime section; give one without")
    return recipe_text.rstrip("\n") + f"\nruntime:\n  streams: {streams}\n  binding: compact\n"


def bench_command(args, recipe, batch):
    return [args.ipex_tune, "bench", "--workload", args.workload, "--recipe", recipe,
            "--batch", str(batch), "--measure-time", str(args.measure_time), "--json"]


def ours(output):
    result = json.loads(output)["results"][0]
    return result["items_per_s"], result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="resnet50")
    parser.add_argument("--recipe", default=os.path.join(ROOT, "recipes/examples/resnet50-int8.yaml"))
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--batch", type=int, default=0, help="items per call (default 2 x streams)")
    parser.add_argument("--measure-time", type=float, default=10)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--ipex-tune", default=os.path.join(ROOT, "build/app/ipex-tune"))
    args = parser.parse_args()
    n = args.streams
    batch = args.batch or 2 * n
    if batch % n:
        sys.exit(f"multistream.py: --batch {batch} must divide by --streams {n} for equal work")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) % n:
        sys.exit(f"multistream.py: {len(cpus)} CPUs do not divide into {n} equal shares")
    per = len(cpus) // n

    with open(args.recipe) as f:
        text = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        multi = os.path.join(tmp, f"streams-{n}.yaml")
        with open(multi, "w") as f:
            f.write(with_streams(text, n))

        print(f"{args.workload}, {os.path.basename(args.recipe)}, batch {batch}, {n} streams, "
              f"{len(cpus)} CPUs", flush=True)
        in_process, result = ours(subprocess.run(bench_command(args, multi, batch), check=True,
                                                 capture_output=True, text=True).stdout)
        print(f"one process, {n} streams: {in_process:10.2f} items/s  "
              f"(streams: {json.dumps(result.get('streams'))})", flush=True)

        procs = []
        for i in range(n):
            share = ",".join(str(c) for c in cpus[i * per:(i + 1) * per])
            procs.append(subprocess.Popen(["taskset", "-c", share] +
                                          bench_command(args, args.recipe, batch // n),
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          text=True))
        rates = []
        for p in procs:
            out, _ = p.communicate()
            if p.returncode != 0:
                sys.exit(f"multistream.py: a bench process failed with status {p.returncode}")
            rates.append(ours(out)[0])
        separate = sum(rates)
        print(f"{n} bound processes:      {separate:10.2f} items/s  "
              f"({', '.join(f'{r:.2f}' for r in rates)})")
    ratio = in_process / separate
    print(f"ratio {ratio:.3f} (target >= {args.target})")
    return 0 if ratio >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
