"""The measured tables of benchmarks/README.md (and the README's lab numbers), rendered from committed files.

`python benchmarks/render.py` (`--check`: exit 1 on a difference) renders
these blocks together with the README's benchmark blocks.

Every result number these two files show comes from `benchmarks/results/`:
`benchmarks/results/lab/NAME.csv` holds a table's rows (one column per table
column, plain names), `NAME.json` its caption facts (the date measured, the
command, the data, the machine and its float32 matmul peak where one was
measured), and `benchmarks/results/quickstart.json` what `python -m agekeras
quickstart --record benchmarks/results/quickstart.json` wrote. Each function
of `BLOCKS` (benchmarks/README.md) and `README_BLOCKS` (README.md) renders one
block from them: its table and the sentences around it that quote its numbers.
A block sits between two marker lines of its file,

    <!-- results:NAME:start -->
    <!-- results:NAME:end -->

and `render(text, blocks)` replaces what lies between them. Nothing between
markers is edited by hand: change the files (a new measurement: a new CSV and
JSON) and run `python benchmarks/render.py`; `tests/benchmarks/test_lab_tables.py` fails when a
file and its results disagree.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import pathlib
import re
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"<!-- results:([A-Za-z0-9_-]+):(start|end) -->")

SPEEDS_MOVE = ("Speeds move up to 2x between machines and between runs on one machine: compare the rows of one "
               "table with each other, and a speed with the matmul peak of the machine it was measured on.")


# ---------------------------------------------------------------- markers


def markers(text):
    """{name: (start match, end match)} of the marker pairs in `text`.

    Raises:
        ValueError: a marker is missing its partner, repeated, its end comes
            before its start, or two pairs overlap.
    """
    found = {}
    for m in MARKER.finditer(text):
        found.setdefault(m.group(1), []).append(m)
    pairs = {}
    for name, ms in found.items():
        kinds = [m.group(2) for m in ms]
        for kind in ("start", "end"):
            if kinds.count(kind) != 1:
                raise ValueError(f"expected the marker <!-- results:{name}:{kind} --> exactly once, "
                                 f"found it {kinds.count(kind)} times")
        start, end = (ms[kinds.index("start")], ms[kinds.index("end")])
        if end.start() < start.start():
            raise ValueError(f"<!-- results:{name}:end --> comes before <!-- results:{name}:start -->")
        pairs[name] = (start, end)
    spans = sorted((s.start(), e.end(), name) for name, (s, e) in pairs.items())
    for (_, end_a, a), (start_b, _, b) in zip(spans, spans[1:]):
        if start_b < end_a:
            raise ValueError(f"the blocks {a!r} and {b!r} overlap: close one before opening the next")
    return pairs


def render(text, blocks):
    """`text` with the content of each marker pair named in `blocks` replaced.

    Args:
        text: a markdown file's text with `<!-- results:NAME:start -->` /
            `<!-- results:NAME:end -->` marker lines.
        blocks: {NAME: block text, or a function of no arguments returning it}.

    Marker pairs of names not in `blocks` are checked, and left as they are
    (another renderer owns them).

    Raises:
        ValueError: a block of `blocks` has no markers in `text`, or any
            marker is repeated, unpaired, out of order or overlapping.
    """
    pairs = markers(text)
    missing = [name for name in blocks if name not in pairs]
    if missing:
        raise ValueError("no markers for the block(s) " + ", ".join(missing) + ": add the lines "
                         + " and ".join(f"<!-- results:{missing[0]}:{k} -->" for k in ("start", "end")))
    out, at = [], 0
    for name, (start, end) in sorted(pairs.items(), key=lambda kv: kv[1][0].start()):
        if name not in blocks:
            continue
        block = blocks[name]
        block = block() if callable(block) else block
        out += [text[at:start.end()], "\n", block.strip("\n"), "\n"]
        at = end.start()
    return "".join(out) + text[at:]


# ---------------------------------------------------------------- reading and formatting


def read_csv(name, results=RESULTS):
    """The rows of `results/lab/NAME.csv` as dicts of strings."""
    with open(pathlib.Path(results) / "lab" / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def read_json(name, results=RESULTS):
    """`results/lab/NAME.json` as a dict."""
    return json.loads((pathlib.Path(results) / "lab" / f"{name}.json").read_text())


def num(value, digits=0):
    """`value` with `digits` decimals and thousands separators ("" for an empty cell)."""
    if value in ("", None):
        return ""
    return f"{float(value):,.{digits}f}"


def span(low, high, digits=0):
    """"low-high", or one number when they are equal."""
    low, high = num(low, digits), num(high, digits)
    return low if low == high else f"{low}-{high}"


def sci(x):
    """9.7e-8 rather than 9.7e-08."""
    mantissa, exponent = f"{float(x):.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def percent(x):
    return f"{100 * x:.0f}%"


def times(x, digits=1):
    return f"{x:.{digits}f}x"


WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


def word(n):
    return WORDS[n] if 0 <= n < len(WORDS) else str(n)


def table(header, rows, align=None):
    """A markdown table; `align` is one of "l" / "r" per column (default: all "l", written `---`)."""
    align = align or "l" * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine(meta):
    """One sentence: whose measurement this is, when, on what, with which matmul peak."""
    m = meta.get("machine", {})
    parts = [f"{m['cpu_count']}-core CPU" if m.get("cpu_count") else "a CPU", "no GPU"]
    if m.get("tensorflow"):
        parts.append(f"TensorFlow {m['tensorflow']}")
    if m.get("keras"):
        parts.append(f"Keras {m['keras']}")
    peak = m.get("matmul_peak_gflops")
    if peak:
        high = m.get("matmul_peak_gflops_max")
        value = span(peak, high, 0) if high else f"{float(peak):g}"
        parts.append(f"float32 matmul peak {value} GFLOP/s")
    else:
        parts.append("its matmul peak was not recorded")
    return f"One machine's measurement, {meta['date']} ({', '.join(parts)}). {SPEEDS_MOVE}"


def mean_std(values, digits=2):
    """"mean ± std" (the standard deviation over the values, n - 1)."""
    values = [float(v) for v in values]
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def listed(values, digits=2):
    return ", ".join(num(v, digits) for v in values)


# ---------------------------------------------------------------- benchmarks/README.md


def input_pipeline(results=RESULTS):
    meta, rows = read_json("input_pipeline", results), read_csv("input_pipeline", results)
    sizes = sorted({int(r["image_size"]) for r in rows})
    names = list(dict.fromkeys(r["measurement"] for r in rows))
    cell = {(r["measurement"], int(r["image_size"])): r for r in rows}
    notes = meta.get("decode_note", {})
    header = ["img/s"] + [f"{s} px" + (f" ({notes[str(s)]})" if str(s) in notes else "") for s in sizes]
    body = []
    for name in names:
        line = [name]
        for s in sizes:
            r = cell[(name, s)]
            text = span(r["img_per_s_min"], r["img_per_s_max"])
            line.append(f"**{text}**" if "augmentation" in name and s == sizes[0] else text)
        body.append(line)
    plain, augmented = names[0], names[-1]
    cost = [float(cell[(plain, s)]["img_per_s_max"]) / float(cell[(augmented, s)]["img_per_s_max"]) for s in sizes]
    costs = " and ".join(f"{times(c)} at {s} px" for c, s in zip(cost, sizes))
    return (f"{machine(meta)}\n\n{table(header, body)}\n\n"
            f"The Keras augmentation layers cost {costs} (the fastest pass of each, with against without; "
            "rotation, translation and zoom each resample every image).")


def synthetic(results=RESULTS):
    gen, gen_meta = read_csv("synthetic_generation", results), read_json("synthetic_generation", results)
    learn, learn_meta = read_csv("synthetic_learnability", results), read_json("synthetic_learnability", results)
    speeds = sorted(gen, key=lambda r: -int(r["image_size"]))
    speed = ", ".join(f"{num(r['faces_per_s'])}{' faces/s' if i == 0 else ''} at {r['image_size']} px"
                      for i, r in enumerate(speeds))
    first, *rest = learn
    ratio = float(first["test_mae"]) / float(first["median_predictor_mae"])
    more = "".join(f"; {r['training']}: {num(r['test_mae'], 2)}" for r in rest)
    return (f"Generation: {speed}, {word(gen_meta['cores'])} core. {machine(gen_meta)}\n\n"
            f"{learn_meta['model'][0].upper()}{learn_meta['model'][1:]} trained {first['training']} on "
            f"{num(learn_meta['train_faces'])} faces at {learn_meta['image_size']} px (`{learn_meta['command']}`): "
            f"test MAE {num(first['test_mae'], 2)} years on {num(learn_meta['test_faces'])} vs "
            f"{num(first['median_predictor_mae'], 2)} for the median predictor (ratio {ratio:.2f}){more}.")


def baseline_utkface(results=RESULTS):
    meta, rows = read_json("baseline_utkface", results), read_csv("baseline_utkface", results)
    s = meta["splits"]
    body = [[f"{num(r['budget_minutes'])} min ({num(r['trained_minutes'], 1)} trained)", num(r["epochs"]),
             f"**{num(r['test_mae'], 2)}**", num(r["rmse"], 2), num(r["ca3"], 3), num(r["ca5"], 3), num(r["ca7"], 3),
             num(r["median_predictor_mae"], 2)] for r in rows]
    header = ["budget", "epochs", "test MAE", "RMSE", "CA(3)", "CA(5)", "CA(7)", "median predictor MAE"]
    return (f"Split: `{meta['split']}` on the {num(meta['faces'])} readable faces ({meta['skipped']} skipped: "
            f"{meta['skipped_reason']} `{meta['skipped_name']}`): train {num(s['train'])} / val {num(s['val'])} / "
            f"test {num(s['test'])}. {meta['image_size']} px, batch {meta['batch_size']}, {meta['optimizer']}, "
            f"{meta['augmentation']} augmentation, {meta['initialisation']} init. `{meta['command']}`, "
            f"{meta['date']}: a time-budgeted run, so its epochs follow the machine's speed. "
            f"{SPEEDS_MOVE}\n\n{table(header, body)}")


def daa_decoder(results=RESULTS):
    meta, rows = read_json("daa_decoder", results), read_csv("daa_decoder", results)
    body = []
    for r in rows:
        seconds = f"{num(r['forward_backward_s'], 3)} s"
        if r["speedup"]:
            seconds = f"**{seconds} ({num(r['speedup'], 1)}x)**"
        body.append([r["path"], seconds, f"{num(r['memory_added_mib'])} MiB", f"{num(r['peak_rss_mib'])} MiB"])
    header = ["path", f"forward + backward ({meta['timing'].split()[0]})", "memory added by the step", "peak RSS"]
    return (f"{machine(meta)}\n\n{table(header, body, 'lrrr')}\n\n"
            f"Max |difference| {sci(meta['max_abs_difference_deltas'])} on the deltas ({meta['difference_note']}), "
            f"{meta['max_abs_difference_ages']:g} on the ages.")


def dhaa_training(results=RESULTS):
    meta, rows = read_json("dhaa_training", results), read_csv("dhaa_training", results)
    body = [[r["setting"], f"{num(r['params_m'], 1)} M", f"{float(r['train_img_per_s']):g}",
             f"{num(r['peak_rss_gib'], 1)} GiB"] for r in rows]
    return f"{machine(meta)}\n\n{table(['setting', 'params', 'train img/s', 'peak RSS'], body, 'lrrr')}"


def _throughput(results):
    return {r["model"]: r for r in read_csv("train_throughput", results)}


def train_throughput(results=RESULTS):
    meta, rows = read_json("train_throughput", results), read_csv("train_throughput", results)
    m = meta["machine"]
    bench = [r for r in rows if r["benchmark_model"] == "1"]
    body = []
    for r in rows:
        name = f"`{r['model']}`"
        body.append([f"**{name}**" if r["benchmark_model"] == "1" else name, f"{num(r['params_m'], 1)} M",
                     num(r["forward_gflops_per_img"], 3), num(r["train_gflops_per_img"], 3),
                     num(r["train_img_per_s"]), num(r["bf16_img_per_s"]), num(r["train_gflop_per_s"]),
                     num(r["ratio"], 2)])
    header = ["model", "params", "forward GFLOPs/img", "train GFLOPs/img", "train img/s", "bf16 img/s", "GFLOP/s",
              "ratio"]
    return (f"`{meta['command']}` (every registered model; this table: one {meta['window_seconds']}-second window "
            f"each after a warm-up; the script's default is the median of three), {meta['data']}, "
            f"{meta['optimizer']}. Training GFLOPs per image are **counted** by the TF profiler "
            f"(`float_operation()`) on the traced graph of one forward + backward pass at batch {meta['batch_size']} "
            "(gradients of every trainable weight; the Adam update is not counted). Float32 matmul peak measured "
            f"in the same process: **{m['matmul_peak_gflops']:g} GFLOP/s** ({meta['matmul']}). Ratio = achieved "
            f"training GFLOP/s / peak. The {word(len(bench))} models of the benchmark are in bold. The bf16 column "
            f"is `--mixed-precision` (`mixed_bfloat16`) in a second process (`{meta['command_bf16']}`; its peak: "
            f"{m['matmul_peak_gflops_bf16_process']:g}). Measured {meta['date']} on a {m['cpu_count']}-core CPU, "
            f"no GPU, TensorFlow {m['tensorflow']}, Keras {m['keras']}. {SPEEDS_MOVE}\n\n"
            f"{table(header, body, 'lrrrrrrr')}")


def train_throughput_notes(results=RESULTS):
    meta, t = read_json("train_throughput", results), _throughput(results)
    target = float(meta["target_ratio"])
    ratio = {k: float(r["ratio"]) for k, r in t.items()}
    reach = sorted((k for k in t if ratio[k] >= target), key=lambda k: -ratio[k])
    bench = [ratio[k] for k, r in t.items() if r["benchmark_model"] == "1"]
    reached = (f"**{word(len(reach)).capitalize()} model{'s' if len(reach) != 1 else ''} reach {target:g}** "
               f"({', '.join(f'`{k}`' for k in reach)})" if reach else f"**No model reaches {target:g}**")
    bench_met = "meets" if min(bench) >= target else "does not meet"
    fl = {k: float(r["train_gflops_per_img"]) for k, r in t.items()}
    daa, plain = t["daa_resnet18"], t["daa_resnet18_plain"]
    daa_share = 1 - float(daa["train_img_per_s"]) / float(plain["train_img_per_s"])
    daa_flops = fl["daa_resnet18"] / fl["daa_resnet18_plain"] - 1
    heads = ["resnet18_dex", "resnet18_coral", "resnet18_regression"]
    speeds = [float(t[k]["train_img_per_s"]) for k in heads]
    noise = (max(speeds) - min(speeds)) / max(speeds)

    def r(k):
        return num(t[k]["ratio"], 2)

    return "\n".join([
        f"- {reached}; the benchmark's {word(len(bench))} reach {span(min(bench), max(bench), 2)}: the benchmark "
        f"{bench_met} the target of {target:g}. The matmul peak is a large square GEMM; at 64 px the convolutions "
        "are small GEMMs (the last ResNet stage works on 2 x 2 maps, the first on 64-channel maps), and batch norm, "
        "ReLU, residual additions and the Adam update move memory without counting a FLOP. Models with wide, "
        f"large-FLOP layers (ResNet-152, VoVNet-39's concatenations at {fl['vovnet39']:.1f} GFLOPs/img) come "
        "closest to the peak.",
        "- **The models below 0.35 each carry work that FLOPs do not count** (our reading of their graphs, not "
        f"profiled op by op, except DAA's, measured against its plain variant). `dhaa` ({r('dhaa')}): per-face "
        "bilinear region pooling of five landmark regions, nine narrow sub-networks and three LSTMs, and Adam over "
        f"{float(t['dhaa']['params_m']):.0f} M weights. `gra_net` and `residual_attention56` ({r('gra_net')}, "
        f"{r('residual_attention56')}): the soft-mask branches' up/down-sampling and elementwise gating. `al_ror34` "
        f"({r('al_ror34')}): the locator's LSTM steps and per-face crop-and-resize. `vovnetv4` ({r('vovnetv4')}): "
        "the ROSA stage's per-stage attention and the Adaptive Stage's concatenations. `daa_resnet18` "
        f"({r('daa_resnet18')}) against its `_plain` variant ('w/o DAA', {r('daa_resnet18_plain')}): the Delta-Age "
        "AdaIN path with its template features and binary-code mapping takes "
        f"{percent(daa_share)} of the step time for {percent(daa_flops)} more FLOPs.",
        f"- **Noise.** One {meta['window_seconds']}-second window per model in the table above: the three ResNet-18 "
        f"heads cost the same FLOPs and measured {num(speeds[0])} (DEX), {num(speeds[1])} (CORAL) and "
        f"{num(speeds[2])} (regression) img/s, and ResNet-18 DEX ran at {num(t['resnet18_dex']['bf16_img_per_s'])} "
        f"img/s in the bf16 process. Read differences under about {percent(round(noise, 1))} between models as "
        "noise.",
    ])


def _recipe_rows(results):
    return read_csv("recipe_search", results)


def _recipe(results, label, seed=0, model="resnet18_dex"):
    for r in _recipe_rows(results):
        if r["model"] == model and r["recipe"] == label and int(r["seed"]) == seed:
            return r
    raise KeyError(f"recipe_search.csv has no row {model}, {label!r}, seed {seed}")


def _recipe_seeds(results, label, model="resnet18_dex"):
    return sorted((r for r in _recipe_rows(results) if r["model"] == model and r["recipe"] == label),
                  key=lambda r: int(r["seed"]))


def train_throughput_resnet18(results=RESULTS):
    meta, rows = read_json("train_throughput_resnet18", results), read_csv("train_throughput_resnet18", results)
    rs = read_json("recipe_search", results)["rows"]
    body = [[r["setting"], num(r["train_gflops_per_img"], 3),
             f"{num(r['train_img_per_s'])} ({span(r['train_img_per_s_min'], r['train_img_per_s_max'])})",
             f"**{num(r['ratio'], 2)}**" if float(r["ratio"]) == max(float(x["ratio"]) for x in rows)
             else num(r["ratio"], 2)] for r in rows]
    by = {(int(r["image_size"]), int(r["batch_size"]), r["max_pool"]): r for r in rows}
    base, big_batch = by[(64, 64, "1")], by[(64, 256, "1")]
    big_maps = [by[(128, 64, "1")], by[(64, 64, "0")]]
    gain = float(big_batch["train_img_per_s"]) / float(base["train_img_per_s"]) - 1
    lifted = [float(r["ratio"]) for r in big_maps]
    flops = float(by[(64, 64, "0")]["train_gflops_per_img"]) / float(base["train_gflops_per_img"])
    no_pool, pooled = _recipe(results, "64 px, sigma 2 + L1, no stem max-pool"), _recipe(results, rs["full"])
    cmp_word = "passes" if float(by[(128, 64, "1")]["ratio"]) >= 0.5 else "stays below"
    return (f"`resnet18_dex` measured again with the median of three windows (`--windows {meta['windows']}`, the "
            f"default; the slowest and fastest window in brackets). {machine(meta)}\n\n"
            f"{table(['`resnet18_dex`', 'train GFLOPs/img', 'train img/s (range)', 'ratio'], body, 'lrrr')}\n\n"
            f"A four times larger batch buys {percent(gain)}; four times larger maps (128 px, or 64 px without the "
            f"stem's max-pool) lift the ratio to {span(min(lifted), max(lifted), 2)}. So at 64 px the per-op "
            "overhead around small convolutions, not a per-sample layer or a host round trip, keeps ResNet-18 at "
            f"{num(base['ratio'], 2)}; the same network {cmp_word} 0.5 at 128 px. A higher ratio is not a faster "
            f"recipe: without the max-pool, ResNet-18 does {flops:.1f} times the FLOPs per face, trains "
            f"{no_pool['epochs']} epochs instead of {pooled['epochs']} in 15 minutes and ends at test MAE "
            f"{num(no_pool['test_mae'], 2)} against {num(pooled['test_mae'], 2)} (the recipe search below).")


def bfloat16(results=RESULTS):
    t = _throughput(results)
    one_hot, one_hot_bf = _recipe(results, "64 px, one-hot"), _recipe(results, "64 px, one-hot, bfloat16")
    full, full_bf = _recipe(results, "64 px, sigma 2 + L1"), _recipe(results, "64 px, sigma 2 + L1, bfloat16")
    faster = float(one_hot_bf["train_img_per_s"]) / float(one_hot["train_img_per_s"])
    lower = float(one_hot_bf["test_mae"]) < float(one_hot["test_mae"]) or float(full_bf["test_mae"]) < float(
        full["test_mae"])
    return (f"In the single windows of the table: ResNet-34 DEX {num(t['resnet34_dex']['bf16_img_per_s'])} img/s "
            f"with `mixed_bfloat16` against {num(t['resnet34_dex']['train_img_per_s'])} in float32; ResNet-18 DEX "
            f"{num(t['resnet18_dex']['bf16_img_per_s'])} against {num(t['resnet18_dex']['train_img_per_s'])} (its "
            f"CORAL and regression heads, same FLOPs: {num(t['resnet18_coral']['train_img_per_s'])} and "
            f"{num(t['resnet18_regression']['train_img_per_s'])}). End to end, in a 15-minute training run, ResNet-18 "
            f"DEX trained {times(faster)} faster in bfloat16 ({num(one_hot_bf['train_img_per_s'])} against "
            f"{num(one_hot['train_img_per_s'])} img/s) {'with' if lower else 'without'} a lower test MAE "
            f"({num(one_hot_bf['test_mae'], 2)} against {num(one_hot['test_mae'], 2)} with the one-hot loss, "
            f"{num(full_bf['test_mae'], 2)} against {num(full['test_mae'], 2)} with sigma 2 + L1; the recipe search "
            "below). On a GPU `--mixed-precision` picks float16.")


def xla(results=RESULTS):
    meta, rows = read_json("train_throughput_xla", results), read_csv("train_throughput_xla", results)
    by = {r["jit_compile"]: r for r in rows}
    body = [[f"`{r['jit_compile']}`", r["resolved"],
             f"{num(r['train_img_per_s'])} ({span(r['train_img_per_s_min'], r['train_img_per_s_max'])})"]
            for r in rows]
    slower = float(by["false"]["train_img_per_s"]) / float(by["true"]["train_img_per_s"])
    return (f"`{meta['command']}` (Keras' `compile(jit_compile=...)`; `true`: the train step compiled by XLA; the "
            "script prints what `auto` resolved to, `\"jit_compile\"`), "
            f"{meta['image_size']} px, batch {meta['batch_size']}, median of three windows (range in brackets). "
            f"{machine(meta)}\n\n{table(['`--jit-compile`', 'resolved to', 'train img/s (range)'], body, 'llr')}\n\n"
            f"XLA's compiled step trained {slower:.1f} times slower than the step without it. We did not profile why "
            "it is this much slower on the CPU; `agekeras.training` keeps Keras' default.")


def recipe_search(results=RESULTS):
    meta, rows = read_json("recipe_search", results), _recipe_rows(results)
    body = [[f"`{r['model']}`", r["recipe"], r["seed"], r["epochs"], num(r["train_img_per_s"]),
             num(r["test_mae"], 2), f"**{num(r['test_mae_flip'], 2)}**", num(r["test_mae_views6"], 2),
             num(r["rmse"], 2), num(r["ca5"], 2)] for r in rows]
    header = ["model", "recipe", "seed", "epochs", "train img/s", "test MAE", "test MAE, flip", "test MAE, 6 views",
              "RMSE", "CA(5)"]
    return (f"`{meta['command']}`, then `python -m agekeras evaluate --run RUN --flip` and `... --tta`, on the "
            f"{meta['data']} ({meta['protocol']}), batch {meta['batch_size']}. One run at a time; each row is its own "
            f"run of {meta['time_budget_minutes']} minutes, measured {meta['date']} on one machine "
            f"({machine(meta).split('(', 1)[1].split(')')[0]}). Under a time budget a run's epochs follow its speed, "
            "and its MAE follows its epochs: speeds move up to 2x between machines and between runs, so compare "
            "these rows with each other.\n\n" + table(header, body, "llrrrrrrrr"))


def _flip(rows, key="test_mae_flip"):
    return [float(r[key]) for r in rows]


def recipe_summary(results=RESULTS):
    rs = read_json("recipe_search", results)["rows"]
    recipe, full, half = (_recipe_seeds(results, rs[k]) for k in ("recipe", "full", "half"))
    seeds = f"{recipe[0]['seed']}-{recipe[-1]['seed']}"

    def three(rows, key):
        return [r[key] for r in rows]

    gains = [float(f["test_mae"]) - float(r["test_mae"]) for f, r in zip(full, recipe)]
    gains_flip = [float(f["test_mae_flip"]) - float(r["test_mae_flip"]) for f, r in zip(full, recipe)]
    one_hot, sigma = _recipe(results, rs["one_hot"]), _recipe(results, rs["full"])
    loss_gain = float(one_hot["test_mae"]) - float(sigma["test_mae"])
    loss_gain_flip = float(one_hot["test_mae_flip"]) - float(sigma["test_mae_flip"])
    spread = max(statistics.stdev(_flip(rows, k)) for rows in (recipe, full, half) for k in ("test_mae", "test_mae_flip"))
    than = "larger" if min(loss_gain, loss_gain_flip) > spread else "not larger"
    return (f"Over seeds {seeds} the recipe scores test MAE **{mean_std(three(recipe, 'test_mae'))}** "
            f"({listed(three(recipe, 'test_mae'))}), **{mean_std(three(recipe, 'test_mae_flip'))} with flip** "
            f"({listed(three(recipe, 'test_mae_flip'))}) and {mean_std(three(recipe, 'test_mae_views6'))} over six "
            f"views ({listed(three(recipe, 'test_mae_views6'))}). With the full augmentation (mirror, ±10 degrees, 5% "
            "shifts, 10% zoom: every row without an augmentation note) the same settings scored "
            f"{mean_std(three(full, 'test_mae'))} ({listed(three(full, 'test_mae'))}), "
            f"{mean_std(three(full, 'test_mae_flip'))} with flip ({listed(three(full, 'test_mae_flip'))}) and "
            f"{mean_std(three(full, 'test_mae_views6'))} over six views; with the augmentation at half strength "
            f"{mean_std(three(half, 'test_mae'))}, {mean_std(three(half, 'test_mae_flip'))} with flip and "
            f"{mean_std(three(half, 'test_mae_views6'))} over six views. Each seed also draws another split, so the "
            "spread includes that of the test faces; on each seed's own split the recipe gains "
            f"{span(min(gains), max(gains), 2)} years over the full augmentation "
            f"({span(min(gains_flip), max(gains_flip), 2)} with flip). The seed-0 gain of the label-distribution loss "
            f"over the one-hot loss on ResNet-18 ({loss_gain:.2f} years; {loss_gain_flip:.2f} with flip) is also "
            f"{than} than the spread.")


#: The variants tried once with seed 0 and the full augmentation: (row of recipe_search.csv, bullet, what it is).
VARIANTS = (
    ("64 px, sigma 2 + L1, no validation split", "More faces"),
    ("64 px, sigma 2 + L1, bfloat16", "More epochs from bfloat16"),
    ("64 px, sigma 2 + L1 weight 3", "A heavier L1 term"),
    ("64 px, sigma 2 + L1, lr 2e-3", "A higher learning-rate peak"),
    ("64 px, sigma 2 + L1, AdamW weight decay 0.05", "Weight decay"),
    ("64 px, sigma 2 + L1, batch 32", "Smaller batches"),
    ("64 px, sigma 3 + L1", "A wider label distribution"),
    ("64 px, sigma 1.5 + L1", "A narrower one"),
    ("64 px, sigma 2 + L1 weight 0.5", "A lighter L1 term"),
    ("64 px, sigma 2 + L1, EMA 0.995", "A moving average of the weights"),
    ("64 px, sigma 2 + L1, no stem max-pool", "More FLOPs per face"),
)


def recipe_variants(results=RESULTS):
    meta = read_json("recipe_search", results)
    rs = meta["rows"]
    base = _recipe(results, rs["full"])
    v = {label: _recipe(results, label) for label, _ in VARIANTS}

    def score(r):
        return f"{num(r['test_mae'], 2)} (flip {num(r['test_mae_flip'], 2)})"

    r34_48, r34_64 = (_recipe(results, f"{s} px, one-hot", model="resnet34_dex") for s in (48, 64))
    faster = float(r34_48["train_img_per_s"]) / float(r34_64["train_img_per_s"])
    worse = "worse" if float(r34_48["test_mae"]) > float(r34_64["test_mae"]) else "better"
    t, r18 = _throughput(results), read_csv("train_throughput_resnet18", results)
    pool = {r["max_pool"]: float(r["train_gflops_per_img"]) for r in r18 if r["image_size"] == "64"
            and r["batch_size"] == "64"}
    splits = read_json("baseline_utkface", results)["splits"]
    bf, one_hot, one_hot_bf = (v["64 px, sigma 2 + L1, bfloat16"], _recipe(results, "64 px, one-hot"),
                               _recipe(results, "64 px, one-hot, bfloat16"))
    bf_level = abs(float(bf["test_mae"]) - float(base["test_mae"])) <= 0.05
    b32 = v["64 px, sigma 2 + L1, batch 32"]
    sigmas = {s: float(_recipe(results, label)["test_mae"]) for s, label in
              (("1.5", "64 px, sigma 1.5 + L1"), ("2", rs["full"]), ("3", "64 px, sigma 3 + L1"))}
    best_sigma = min(sigmas, key=sigmas.get)
    sgd = meta["unfinished"][0]
    rerun = _recipe(results, rs["rerun"])
    diff = abs(float(rerun["test_mae"]) - float(base["test_mae"]))
    diff_flip = abs(float(rerun["test_mae_flip"]) - float(base["test_mae_flip"]))
    losses = [float(v[label]["test_mae"]) - float(base["test_mae"]) for label, _ in VARIANTS]
    more = sum(loss > diff for loss in losses)
    bullets = [
        f"- **Fewer FLOPs per face.** ResNet-34 at 48 px is {times(faster)} faster than at 64 px and ends {worse} "
        f"({num(r34_48['test_mae'], 2)} against {num(r34_64['test_mae'], 2)}).",
        "- **More FLOPs per face.** Without the stem's max-pool (`--model-arg max_pool=false`: 4 x 4 last maps, "
        f"{pool['0'] / pool['1']:.1f}x the FLOPs) ResNet-18 gets {v['64 px, sigma 2 + L1, no stem max-pool']['epochs']} "
        f"epochs: {num(v['64 px, sigma 2 + L1, no stem max-pool']['test_mae'], 2)}.",
        "- **More faces.** Training on the validation faces too (`--val-fraction 0`: "
        f"{percent(splits['val'] / splits['train'])} more faces, and `best.keras` then follows the training MAE) "
        f"gives {num(v['64 px, sigma 2 + L1, no validation split']['test_mae'], 2)}.",
        "- **More epochs from bfloat16.** `--mixed-precision` trains "
        f"{times(float(bf['train_img_per_s']) / float(base['train_img_per_s']))} faster end to end ({bf['epochs']} "
        f"epochs against {base['epochs']}) and ends {'level' if bf_level else 'apart'}: {score(bf)}. With the one-hot "
        f"loss it was {'worse' if float(one_hot_bf['test_mae']) > float(one_hot['test_mae']) else 'better'} "
        f"({num(one_hot_bf['test_mae'], 2)} against {num(one_hot['test_mae'], 2)}). For ResNet-34 the throughput "
        f"script measured {num(t['resnet34_dex']['bf16_img_per_s'])} against "
        f"{num(t['resnet34_dex']['train_img_per_s'])} img/s.",
        f"- **A heavier L1 term.** `--age-l1 3`: {score(v['64 px, sigma 2 + L1 weight 3'])}.",
        f"- **A higher learning-rate peak.** `--lr 2e-3`: {score(v['64 px, sigma 2 + L1, lr 2e-3'])}.",
        "- **Weight decay.** `--optimizer adamw --weight-decay 0.05` (decoupled, every weight): "
        f"{score(v['64 px, sigma 2 + L1, AdamW weight decay 0.05'])}.",
        f"- **Smaller batches.** `--batch-size 32`: twice the updates per epoch, but {num(b32['train_img_per_s'])} "
        f"img/s against {num(base['train_img_per_s'])}, so {b32['epochs']} epochs: {score(b32)}.",
        f"- **A wider label distribution.** `--label-sigma 3`: {score(v['64 px, sigma 3 + L1'])}.",
        f"- **A narrower one.** `--label-sigma 1.5`: {score(v['64 px, sigma 1.5 + L1'])}. Sigma {best_sigma} is the "
        "best of 1.5, 2 and 3.",
        f"- **A lighter L1 term.** `--age-l1 0.5`: {score(v['64 px, sigma 2 + L1 weight 0.5'])}.",
        "- **A moving average of the weights.** `--ema 0.995` (an average over about two epochs): "
        f"{score(v['64 px, sigma 2 + L1, EMA 0.995'])}. The model is still improving fast when the budget ends, so "
        "an average of the last two epochs lags it, and batch normalisation's statistics were gathered with the "
        "raw weights, not the averaged ones.",
        "- **SGD.** `--optimizer sgd --lr 0.05 --weight-decay 5e-4` (Nesterov momentum 0.9): stopped after "
        f"{sgd['stopped_after_epochs']} of about {sgd['expected_epochs']} epochs, its training MAE "
        f"{num(sgd['train_mae'], 1)} against Adam's {num(sgd['adam_train_mae_same_epoch'], 1)} at the same point.",
    ]
    return (f"With the full augmentation, what did not beat sigma 2 + L1, each tried once with seed 0 against its "
            f"{score(base)}:\n\n" + "\n".join(bullets) + "\n\n"
            f"Sigma 2 + L1 with the full augmentation, run again with seed 0, scores {score(rerun)} against "
            f"{num(base['test_mae'], 2)} ({num(base['test_mae_flip'], 2)}). Two runs of one seed on one split are not "
            "identical (under a time budget the learning-rate schedule follows the wall clock, so no two runs take "
            f"the same steps at the same rates), but they differ by {diff:.2f} years (flip {diff_flip:.2f}), while "
            f"{word(more)} of the {word(len(VARIANTS))} ResNet-18 variants above lose more than that on this split. "
            "The recipe keeps what won among them (float32, 64 px, sigma 2, L1 weight 1, flip at test time) with the "
            "augmentation cut to the mirror image alone (no rotation, shift or zoom).")


def recipe_augmentation(results=RESULTS):
    meta, rows = read_json("recipe_augmentation", results), read_csv("recipe_augmentation", results)
    strengths = meta["strengths"]
    runs = {k: _recipe_seeds(results, label) for k, label in meta["rows"].items()}
    flip = {k: _flip(v) for k, v in runs.items()}
    mean = {k: statistics.mean(v) for k, v in flip.items()}
    every_seed = all(m < f for m, f in zip(flip["mirror only"], flip["full"])) and all(
        h < f for h, f in zip(flip["half"], flip["full"]))
    by = {r["augmentation"]: r for r in rows}
    full = by["full"]
    epochs = statistics.mean(int(r["epochs"]) for r in runs["full"])
    best = "; ".join(f"{'full' if k == 'full' else k} {listed([by[k][f'best_val_mae_seed{s}'] for s in range(3)])}"
                     for k in ("full", "half", "mirror only"))
    gap = abs(mean["half"] - mean["mirror only"])
    lead = mean["full"] - mean["mirror only"]
    spread = statistics.stdev(flip["mirror only"])
    return (f"**Less augmentation** is the one change that beat sigma 2 + L1{', and on every seed' if every_seed else ''}. "
            f"Three strengths, each with seeds 0-2 (test MAE with flip): the full augmentation "
            f"{mean_std(flip['full'])}, half strength (`{strengths['half']}`) {mean_std(flip['half'])}, mirror only "
            f"(`{strengths['mirror only']}`) {mean_std(flip['mirror only'])}. With the full augmentation the training "
            "MAE, measured on augmented faces, ends level with the validation MAE (last epoch "
            f"{span(full['train_mae_last_min'], full['train_mae_last_max'], 1)} against "
            f"{span(full['val_mae_last_min'], full['val_mae_last_max'], 1)} over the three seeds): in about "
            f"{epochs:.0f} epochs the network has not fitted the augmented faces yet. With less augmentation it fits "
            "the training faces closer (last epoch: half strength "
            f"{span(by['half']['train_mae_last_min'], by['half']['train_mae_last_max'], 1)}, mirror only "
            f"{span(by['mirror only']['train_mae_last_min'], by['mirror only']['train_mae_last_max'], 1)}) and the "
            "test faces better too: in 15 CPU-minutes the network is short of fitting, not of varied faces. With a "
            "longer budget the balance can tip back (mirror only ends furthest from its validation MAE), so on a GPU "
            "try the full augmentation again. The validation split did not rank the three reliably (best validation "
            f"MAE per seed: {best}): {num(meta['validation_faces'])} faces are a noisy judge of {gap:.1f} years. The "
            "strength was picked on these test faces among three, so the recipe's lead over the runner-up is "
            f"slightly optimistic; its lead over the full augmentation, {lead:.2f} years, is {lead / spread:.1f} "
            "times its standard deviation over seeds.")


def recipe_views(results=RESULTS):
    rs = read_json("recipe_search", results)["rows"]
    rows = _recipe_rows(results)
    full, recipe = _recipe_seeds(results, rs["full"]), _recipe_seeds(results, rs["recipe"])

    def means(rows):
        return statistics.mean(_flip(rows, "test_mae_views6")), statistics.mean(_flip(rows))

    fv, ff = means(full)
    rv, rf = means(recipe)
    d = [float(r["test_mae_views6"]) - float(r["test_mae_flip"]) for r in rows]
    avg = statistics.mean(d)

    def change(views, flip):
        return f"{'gain' if views < flip else 'lose'} {abs(views - flip):.2f} years"

    return ("**Six views instead of two** (`evaluate --tta`: each face as it is, enlarged 1.085x and shrunk to 0.915x "
            "about its centre, inside the default augmentation's zoom of ±10%, each also mirrored) cost three times "
            f"flip's forward passes and no training. With the full augmentation they {change(fv, ff)} on flip over "
            f"three seeds ({fv:.2f} against {ff:.2f}), but the recipe, trained without zoom, has never seen an "
            f"enlarged or shrunk face: for it six views {change(rv, rf)} against flip ({rv:.2f} against {rf:.2f}); "
            f"over all {len(rows)} runs of the table {abs(avg):.2f} {'worse' if avg > 0 else 'better'} on average, "
            f"from {max(d):.2f} worse to {-min(d):.2f} better. The view set was also picked on these test faces, "
            "among four tried (small shifts did less well), so read it as worth trying on your data, not as a "
            "proven gain; flip stays the recipe's score.")


def end_to_end(results=RESULTS):
    meta, rows = read_json("end_to_end", results), read_csv("end_to_end", results)
    by = {r["key"]: r for r in rows}
    body = []
    for r in rows:
        seconds = num(r["seconds_per_epoch"], 1)
        if r["key"] == "train":
            seconds += f" / {num(r['seconds_per_epoch_2'], 1)}"
        elif r["key"] == "checkpoint":
            seconds += f" (x{float(r['seconds_per_epoch_2']) / float(r['seconds_per_epoch']):.0f} when `best.keras` " \
                       "also improves)"
        speed = num(r["img_per_s"])
        if r["key"] in ("train", "step"):
            speed = f"**{speed}**"
        if r["img_per_s_all_epochs"]:
            speed += f" ({num(r['img_per_s_all_epochs'])} over the 3 epochs)"
        body.append([r["what"], seconds, speed])
    epoch = statistics.mean([float(by["train"]["seconds_per_epoch"]), float(by["train"]["seconds_per_epoch_2"])])
    step = float(by["step"]["seconds_per_epoch"])
    augment = float(by["pipeline_step"]["seconds_per_epoch"]) - step
    val = float(by["validation"]["seconds_per_epoch"])
    ck = [float(by["checkpoint"]["seconds_per_epoch"]), float(by["checkpoint"]["seconds_per_epoch_2"])]
    rest = epoch - step - augment - val - statistics.mean(ck)
    ratio = float(by["step"]["img_per_s"]) / float(by["train"]["img_per_s"])
    auto = read_json("autotune", results)
    off = [r for r in read_csv("autotune", results) if r["model"] == "resnet18_dex" and r["autotune"] == "off"][0]
    off_rate = auto["train_faces"] / statistics.mean([float(off["epoch_s_min"]), float(off["epoch_s_max"])])
    rs = read_json("recipe_search", results)["rows"]
    recipe = _recipe_seeds(results, rs["recipe"])
    recipe_speeds = [float(r["train_img_per_s"]) for r in recipe]
    r18 = [r for r in read_csv("train_throughput_resnet18", results) if r["setting"] == "64 px, batch 64"][0]

    steps = meta["steps_per_epoch"]

    def share(x):
        return f"{100 * x / epoch:.0f} %"

    return (f"A 2-minute `train()` (3 epochs; the first includes tracing and filling the decode cache) with tf.data "
            "autotuning on (`make_tf_dataset(..., autotune=True)`), then, in the same process and on the same model "
            f"and pipeline, each component alone. {machine(meta)}\n\n"
            f"{table(['what', f'seconds per epoch ({steps} steps)', 'img/s'], body, 'lrr')}"
            f"\n\nPer steady-state epoch: steps {step:.1f} s ({share(step)}), augmentation competing for the same cores "
            f"+{augment:.1f} s ({share(augment)}), validation {val:.1f} s ({share(val)}), checkpoints "
            f"{span(ck[0], ck[1], 1)} s ({100 * ck[0] / epoch:.0f}-{share(ck[1])}), and **~{rest:.1f} s "
            f"({share(rest)}) not explained by these components**. What differs between the `fit` without callbacks "
            "and `train()` is the callbacks: three of them have per-batch hooks (`ProgressSchedule` sets the learning "
            "rate before every step, `TrainingClock` and `TerminateOnNaN` read the logs after every step, which makes "
            "Keras materialise the metrics every step), plus `CSVLogger`. End to end is "
            f"{ratio:.2f}x the step rate (target {meta['target_ratio']:g}x). The unexplained part is the tf.data "
            "autotuning stall of the next section: with autotuning off (the pipeline's default), an epoch of this "
            f"setting takes {span(off['epoch_s_min'], off['epoch_s_max'], 1)} s (about {off_rate:.0f} img/s, "
            f"{auto['step_rate_img_per_s'] / off_rate:.2f}x the step rate of {auto['step_rate_img_per_s']} img/s "
            "measured with it), the remainder being augmentation on the same cores, validation and checkpoints. In "
            f"the recipe's runs (seeds {recipe[0]['seed']}-{recipe[-1]['seed']}), `resnet18_dex` trained "
            f"{span(min(recipe_speeds), max(recipe_speeds))} img/s end to end against a step rate of "
            f"{num(r18['train_img_per_s'])} img/s (`train_throughput.py`, median of three windows, "
            f"{span(r18['train_img_per_s_min'], r18['train_img_per_s_max'])}): "
            f"{float(r18['train_img_per_s']) / max(recipe_speeds):.2f}x. The two were measured at different times, so "
            "read it as a rough ratio.")


def autotune(results=RESULTS):
    meta, rows = read_json("autotune", results), read_csv("autotune", results)
    run = meta["run"]
    epochs = read_csv("autotune_run", results)
    spread = ", ".join(f"{span(r['epoch_s_min'], r['epoch_s_max'])} s ({r['epochs']} epoch"
                       f"{'' if r['epochs'] == '1' else 's'})" for r in epochs)
    body = []
    for r in rows:
        seconds = span(r["epoch_s_min"], r["epoch_s_max"], 1 if "." in r["epoch_s_min"] + r["epoch_s_max"] else 0)
        if r["stalled_epoch_s"]:
            seconds += (f", or {num(r['stalled_epoch_s'])} ({r['stalls']} stalls of {num(r['stall_s'])} s in "
                        f"{r['epochs_with_stalls_of']} epochs)")
        step = span(r["step_ms_min"], r["step_ms_max"]) if r["step_ms_min"] else ""
        body.append([f"`{r['model']}`", "on" if r["autotune"] == "on" else "off (the default)", seconds, step])
    return (f"With tf.data autotuning on, a {run['time_budget_minutes']}-minute `{run['model']}` run (seed "
            f"{run['seed']}) had epochs of {spread}, never in between, and averaged {run['img_per_s']} img/s against "
            f"the {meta['step_rate_img_per_s']} img/s step rate.\n\n"
            "Cause, found with per-batch timestamps, `py-spy` and `gdb` on a 6-epoch `train()`: for "
            f"{meta['idle_stall_s_min']}-{meta['idle_stall_s_max']} s at some epoch boundaries (and sometimes "
            "mid-epoch) the whole process used no CPU. The main thread sat in the destructor of a tf.data iterator "
            "(`~IteratorResource` -> `~RootDataset::Iterator`), which waits for the iterator's autotuning thread "
            "(`model::Model::OptimizeLoop`); that thread sleeps between optimisation rounds with a period that grows "
            "towards a minute. Keras makes new training and validation iterators every epoch, so each epoch can lose "
            "one such sleep. The pipeline alone (no model) never showed it.\n\n"
            "So `make_tf_dataset` turns tf.data autotuning off by default (`autotune=True` turns it on); `AUTOTUNE` "
            "parallelism then falls back to one call per core. The same 6-epoch `train()` (UTKFace, 64 px, batch 64; "
            f"epochs {meta['probe_epochs']}, validation and checkpoints included) with and without it. "
            f"{machine(meta)}\n\n"
            + table(["model", "tf.data autotuning", "seconds per epoch", "ms per step"], body, "llrr"))


# ---------------------------------------------------------------- README.md


def recipe_score(results=RESULTS):
    meta = read_json("recipe_search", results)
    recipe = _recipe_seeds(results, meta["rows"]["recipe"])
    return (f"Its score over seeds {recipe[0]['seed']}-{recipe[-1]['seed']} of the seeded split: test MAE "
            f"**{mean_std(_flip(recipe))}** with flip (mean ± standard deviation over the seeds: "
            f"{listed(_flip(recipe))}), {meta['time_budget_minutes']} minutes of training each on the "
            f"{meta['data']}, on one machine, {meta['date']}.")


def quickstart(results=RESULTS):
    q = json.loads((pathlib.Path(results) / "quickstart.json").read_text())
    m = q["machine"]
    peak = f", float32 matmul peak {m['matmul_peak_gflops']:g} GFLOP/s" if m.get("matmul_peak_gflops") else ""
    return (f"Measured with `{q['command']}` on {q['date']} ({m['cpu_count']} CPU cores{peak}): "
            f"{num(q['faces'])} faces ({num(q['splits']['train'])} for training), {q['epochs']} epochs"
            f"{' of ' + str(q['steps_per_epoch']) + ' batches' if q.get('steps_per_epoch') else ''} in "
            f"{q['time_budget_minutes']:g} minutes at {num(q['train_img_per_s'])} training images per second end to "
            f"end ({q['validation_points']} validation points on the curves), test MAE "
            f"{num(q['test_mae'], 1)} years, where always answering the median training age scores "
            f"{num(q['median_predictor_mae'], 1)}. Speeds move up to 2x between machines, and with them the epochs "
            "and the MAE of a time budget.")


def fgnet_alignment(results=RESULTS):
    meta, rows = read_json("fgnet_alignment", results), read_csv("fgnet_alignment", results)
    raw, aligned = rows
    return (f"Alignment matters: a ResNet-18 DEX trained on the {meta['trained_on']} scores an MAE of "
            f"{num(raw['mae'], 1)} years on FG-NET's {num(meta['photos'])} uncropped photos fed as they are, and "
            f"{num(aligned['mae'], 1)} years through detection + \"utkface\" alignment (MTCNN finds no face in "
            f"{aligned['faces_missed']} photos; those are scored on a centre crop and counted as `faces_missed`). The "
            f"median predictor scores {num(meta['median_predictor_mae'], 1)} on FG-NET: its ages are much younger "
            f"than UTKFace's ({meta['date']}).")


def photo_sensitivity(results=RESULTS):
    meta, rows = read_json("photo_sensitivity", results), read_csv("photo_sensitivity", results)
    runs = list(meta["runs"])
    cell = {(r["run"], r["view"]): r for r in rows}
    views = list(dict.fromkeys(r["view"] for r in rows))
    under = next(k for k in rows[0] if k.startswith("shift_under_")).rsplit("_", 1)[1]

    def shift(r):
        return f"{num(r['mae'], 2)} ({float(r['shift']):+.1f} / {float(r[f'shift_under_{under}']):+.1f})"

    body = [[v] + [shift(cell[(run, v)]) for run in runs] for v in views]
    first = meta["runs"][runs[0]]
    lines = [f"What a model reads as age: the {num(first['test_faces'])} UTKFace test faces of its split, each changed one "
             f"way at a time, scored again with flip ({meta['date']}, `{meta['command']}`). Each cell gives the MAE and, "
             f"in brackets, how far the change moves the same face's predicted age on average (all faces / under "
             f"{under}). ResNet-18 DEX, {first['image_size']} px, {first['epochs']} epochs, the CPU recipe's loss; the "
             "columns differ only in the training augmentation.", "",
             table(["change"] + runs, body, "l" + "r" * len(runs)), ""]
    for run in runs:
        moves = [cell[(run, v)] for v in views[1:]]
        top = max(moves, key=lambda r: abs(float(r["shift"])))
        line = f"- {run}: the largest move is {top['view']} ({float(top['shift']):+.1f} years)"
        fg = meta["runs"][run].get("fgnet")
        if not fg:
            lines.append(line + ".")
        else:
            lines.append(line + f"; FG-NET MAE {num(fg['mae'], 2)} on {num(fg['photos'])} photos (mean error: colour "
                         f"{float(fg['colour_mean_error']):+.1f}, greyscale {float(fg['greyscale_mean_error']):+.1f}).")
    return "\n".join(lines)


def torch_tests(results=RESULTS):
    t = read_json("torch_tests", results)
    return (f"Last run on {t['date']} (Keras {t['keras']}, torch {t['torch']}): {t['passed']} passed, "
            f"{t['failed']} failed, {t['skipped']} skipped.")


BLOCKS = {
    "input_pipeline": input_pipeline,
    "synthetic": synthetic,
    "baseline_utkface": baseline_utkface,
    "daa_decoder": daa_decoder,
    "dhaa_training": dhaa_training,
    "train_throughput": train_throughput,
    "train_throughput_notes": train_throughput_notes,
    "train_throughput_resnet18": train_throughput_resnet18,
    "bfloat16": bfloat16,
    "xla": xla,
    "recipe_search": recipe_search,
    "recipe_summary": recipe_summary,
    "recipe_variants": recipe_variants,
    "recipe_augmentation": recipe_augmentation,
    "recipe_views": recipe_views,
    "end_to_end": end_to_end,
    "autotune": autotune,
}
"""The blocks of benchmarks/README.md."""

README_BLOCKS = {
    "quickstart": quickstart,
    "recipe": recipe_score,
    "fgnet_alignment": fgnet_alignment,
    "photo_sensitivity": photo_sensitivity,
    "torch_tests": torch_tests,
}
"""The blocks of README.md rendered here (its `benchmark` blocks come from a benchmark's results.json)."""

FILES = {ROOT / "benchmarks" / "README.md": BLOCKS, ROOT / "README.md": README_BLOCKS}


def bound(blocks, results):
    """`blocks` with every function reading `results` instead of `RESULTS`."""
    return {name: (lambda f=f: f(results)) for name, f in blocks.items()}


def main(argv=None, files=None, results=RESULTS):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file differs from its results")
    a = p.parse_args(argv)
    drift = 0
    for path, blocks in (files or FILES).items():
        path = pathlib.Path(path)
        text = path.read_text()
        try:
            new = render(text, bound(blocks, results))
        except ValueError as e:
            print(f"render: {path}: {e}", file=sys.stderr)
            return 2
        if new == text:
            continue
        if a.check:
            drift += 1
            diff = difflib.unified_diff(text.splitlines(), new.splitlines(), str(path), "rendered", lineterm="", n=0)
            print("\n".join(list(diff)[:40]), file=sys.stderr)
        else:
            path.write_text(new)
            print(f"render: rendered {len(blocks)} blocks into {path}")
    if drift:
        print(f"render: {drift} file(s) differ from benchmarks/results/: run python benchmarks/render.py",
              file=sys.stderr)
        return 1
    return 0

