#!/usr/bin/python3
"""Reference values for the calibration tests, from PyTorch itself (Debian's python3-torch).

Usage: torch_reference.py CASES

CASES holds one case per line, six whitespace-separated fields:
  kind       minmax | moving_average_minmax | histogram | per_channel_symmetric | entropy
  dtype      quint8 | qint8
  qscheme    affine | symmetric
  qrange     default | MIN:MAX (the observer's quant_min and quant_max)
  options    - | key=value[,key=value...]
  batches    comma-separated paths of raw little-endian float32 files, observed in order

and prints one line per case:
  observers              scale zero_point min max  (min, max: the range the qparams come from)
  per_channel_symmetric  one scale per channel of a [channels, -1] weight (option channels=N;
                         one batch; always qint8 with quant_min=-127, quant_max=127)
  entropy                threshold kept_bins (TensorRT's definition in numpy; options levels, bins)

Options: averaging_constant (moving average), bins (histogram, entropy), dst_nbins (histogram:
levels of the L2 search; PyTorch 1.13 always uses 256, even for a 0..127 range), exact_range=1
(histogram: bin over the exact float range instead of 1.13's int()-truncated one, as PyTorch
does before and after 1.13).
"""

import builtins
import contextlib
import sys
import warnings

try:
    import numpy as np
    import torch
    from torch.ao.quantization import observer as observer_module
except ImportError as error:
    sys.exit(
        f"torch_reference.py: cannot import PyTorch ({error}). The calibration tests compare "
        "with torch.ao.quantization: install python3-torch (scripts/setup.sh does)."
    )

warnings.simplefilter("ignore")


def _exact_int(value):
    # HistogramObserver.forward passes min=int(min_val) to torch.histc; for a float tensor this
    # keeps the exact value. Every other int() call in the observer module is left as it is.
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.item()
    return builtins.int(value)


@contextlib.contextmanager
def exact_histc_range(enabled):
    if enabled:
        observer_module.int = _exact_int
    try:
        yield
    finally:
        if enabled:
            del observer_module.int


def load(path):
    return torch.from_numpy(np.fromfile(path, dtype="<f4").copy())


def observer_kwargs(dtype, qscheme, qrange):
    kwargs = {
        "dtype": {"quint8": torch.quint8, "qint8": torch.qint8}[dtype],
        "qscheme": {"affine": torch.per_tensor_affine, "symmetric": torch.per_tensor_symmetric}[
            qscheme
        ],
    }
    if qrange != "default":
        low, high = qrange.split(":")
        kwargs["quant_min"], kwargs["quant_max"] = int(low), int(high)
    return kwargs


def run_observer(kind, kwargs, options, batches):
    if kind == "minmax":
        observer = observer_module.MinMaxObserver(**kwargs)
    elif kind == "moving_average_minmax":
        observer = observer_module.MovingAverageMinMaxObserver(
            averaging_constant=float(options.get("averaging_constant", 0.01)), **kwargs
        )
    else:
        observer = observer_module.HistogramObserver(bins=int(options.get("bins", 2048)), **kwargs)
        if "dst_nbins" in options:
            observer.dst_nbins = int(options["dst_nbins"])
    with exact_histc_range(options.get("exact_range") == "1"):
        for batch in batches:
            observer(batch)
    scale, zero_point = observer.calculate_qparams()
    if kind == "histogram":
        low, high = observer._non_linear_param_search()
    else:
        low, high = observer.min_val, observer.max_val
    return [float(scale[0]), int(zero_point[0]), float(low), float(high)]


def run_per_channel(options, batches):
    channels = int(options["channels"])
    weight = batches[0].reshape(channels, -1)
    observer = observer_module.PerChannelMinMaxObserver(
        ch_axis=0,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric,
        quant_min=-127,
        quant_max=127,
    )
    observer(weight)
    scale, _ = observer.calculate_qparams()
    return [float(s) for s in scale]


def tensorrt_entropy(options, batches):
    """TensorRT's KL threshold (Migacz, GTC 2017) written from the definition with numpy, with
    MXNet's _get_optimal_threshold handling of empty bins: Q is spread over the bins where P is
    nonzero, and a Q bin still empty where P is not counts as 1e-4; the first bin flattened as
    NVIDIA's calibrator does."""
    bins = int(options.get("bins", 2048))
    levels = int(options.get("levels", 128))
    magnitudes = torch.cat(batches).abs()
    amax = float(magnitudes.max())
    hist = torch.histc(magnitudes, bins, min=0.0, max=amax).double().numpy()
    # The zeros' bin takes its neighbour's count, as in NVIDIA's pytorch-quantization
    # (_compute_amax_entropy: bins[0] = bins[1]): a ReLU's zeros would otherwise decide the KL.
    hist[0] = hist[1]
    total = hist.sum()
    best_kept, best_divergence = bins, np.inf
    for kept in range(levels, bins + 1):
        raw = hist[:kept]
        p = raw.copy()
        p[-1] += hist[kept:].sum()
        # Levels 0 .. levels-2 hold `merged` bins each, the last level the rest.
        merged = kept // levels
        regular = (levels - 1) * merged
        q = np.zeros(kept)
        for start, stop, width in ((0, regular, merged), (regular, kept, kept - regular)):
            p_levels = p[start:stop].reshape(-1, width)
            nonzero = p_levels != 0
            mass = raw[start:stop].reshape(-1, width).sum(axis=1)
            per_bin = np.where(mass > 0, mass / np.maximum(nonzero.sum(axis=1), 1), 1e-4)
            q[start:stop] = np.where(nonzero, per_bin[:, None], 0.0).ravel()
        if raw[:-1].sum() == 0:  # everything in one bin: KL 0 by construction, excluded
            divergence = np.inf
        else:
            support = p > 0
            p_norm = p[support] / total
            q_norm = q[support] / raw.sum()
            divergence = float(np.sum(p_norm * np.log(p_norm / q_norm)))
        if divergence < best_divergence:
            best_kept, best_divergence = kept, divergence
    threshold = min((best_kept + 0.5) * amax / bins, amax)
    return [threshold, best_kept]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as cases:
        for line in cases:
            if not line.strip():
                continue
            kind, dtype, qscheme, qrange, option_text, paths = line.split()
            options = {}
            if option_text != "-":
                options = dict(item.split("=", 1) for item in option_text.split(","))
            batches = [load(path) for path in paths.split(",")]
            kwargs = observer_kwargs(dtype, qscheme, qrange)
            if kind in ("minmax", "moving_average_minmax", "histogram"):
                values = run_observer(kind, kwargs, options, batches)
            elif kind == "per_channel_symmetric":
                values = run_per_channel(options, batches)
            elif kind == "entropy":
                values = tensorrt_entropy(options, batches)
            else:
                sys.exit(f"torch_reference.py: unknown case kind {kind!r}")
            print(" ".join(repr(v) for v in values), flush=True)


if __name__ == "__main__":
    main()
