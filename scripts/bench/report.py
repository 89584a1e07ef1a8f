"""Turns the benchmark's results.json into docs/BENCHMARKS.md and the gnuplot PNGs.

    python3 report.py results.json --out docs/BENCHMARKS.md --plots docs/bench

results.json: {"meta": {...}, "measurements": [{"impl", "n", "metric", "values": [...]}],
"notes": [...]}. Every figure is shown as the median with [min-max] of its runs.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

IMPLS = [
    ("agent", "ts-kube-agent"),
    ("dom", "DOM baseline (nlohmann::json::parse)"),
    ("drain", "raw drain"),
    ("python", "Python sidecar"),
    ("agent_before", "ts-kube-agent (BENCH_AGENT_BEFORE)"),
]
IMPL_NAME = dict(IMPLS)

# metric -> (what, unit, decimals)
METRICS = {
    "startup_s": ("start-up, connect to identity written", "s", 3),
    "startup_cpu_s": ("CPU to identity written", "s", 3),
    "startup_hwm_mib": ("peak RSS after start-up", "MiB", 1),
    "selfchange_cpu_us": ("CPU per SelfChange", "µs", 2),
    "selfchange_wall_us": ("wall per SelfChange", "µs", 2),
    "blank_cpu_us": ("CPU per blank message", "µs", 3),
    "blank_wall_us": ("wall per blank message", "µs", 3),
    "peak_hwm_mib": ("peak RSS, default mode", "MiB", 1),
    "end_rss_mib": ("RSS after the batches, default mode", "MiB", 1),
    "track_startup_s": ("start-up with --track-peers", "s", 3),
    "pair_cpu_us": ("CPU per peer add+remove pair", "µs", 2),
    "pair_wall_us": ("wall per peer add+remove pair", "µs", 2),
    "track_hwm_mib": ("peak RSS with --track-peers", "MiB", 1),
    "max_pair_rate": ("highest pair rate kept up with", "pairs/s", 0),
    "max_blank_rate": ("highest blank rate kept up with", "blanks/s", 0),
    "writes_per_1k_selfchange": ("API writes per 1,000 unchanged SelfChanges", "", 2),
    "writes_per_1k_blank": ("API writes per 1,000 blanks", "", 2),
    "writes_per_1k_pair": ("API writes per 1,000 pair lines", "", 2),
    "writes_per_real_change": ("API writes per real identity change", "", 2),
    "idle_cpu_pct": ("idle CPU after start-up (no bus traffic)", "% of a core", 3),
    "ladder_blank_cpu_us": ("CPU per blank at the highest rate kept up with", "µs", 3),
    "ladder_pair_cpu_us": ("CPU per delta line at the highest pair rate kept up with", "µs", 2),
}


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values), len(values)


class Results:
    def __init__(self, data):
        self.meta = data.get("meta", {})
        self.notes = data.get("notes", [])
        self.aims = data.get("aims", [])
        self._by_key = {}
        for m in data.get("measurements", []):
            key = (m["impl"], int(m["n"]), m["metric"])
            self._by_key.setdefault(key, []).extend(m["values"])
        # The batch tables' N (the paced runs have their own N and section).
        self.ns = sorted({k[1] for k in self._by_key if not k[2].startswith("paced:")})
        self.paced = {k for k in self._by_key if k[2].startswith("paced:")}

    def get(self, impl, n, metric):
        return stats(self._by_key.get((impl, n, metric), []))

    def median(self, impl, n, metric):
        s = self.get(impl, n, metric)
        return s[0] if s else None

    def impls_with(self, metric):
        return [i for i, _ in IMPLS if any(self.get(i, n, metric) for n in self.ns)]


def fmt_num(v, decimals):
    if v is None:
        return "-"
    if decimals == 0:
        return f"{v:,.0f}"
    return f"{v:,.{decimals}f}"


def fmt_cell(s, decimals, show_range=True):
    if not s:
        return "-"
    med, lo, hi, count = s
    text = fmt_num(med, decimals)
    if show_range and count > 1:
        text += f" [{fmt_num(lo, decimals)}-{fmt_num(hi, decimals)}]"
    return text


def n_label(n):
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def table(res, metric, impls=None, title=None):
    what, unit, dec = METRICS[metric]
    impls = impls or res.impls_with(metric)
    if not impls:
        return ""
    head = title or f"{what}" + (f" ({unit})" if unit else "")
    lines = [f"**{head}**", "", "| N | " + " | ".join(IMPL_NAME[i] for i in impls) + " |",
             "|---|" + "---|" * len(impls)]
    for n in res.ns:
        lines.append(f"| {n_label(n)} | " +
                     " | ".join(fmt_cell(res.get(i, n, metric), dec) for i in impls) + " |")
    return "\n".join(lines) + "\n"


def ratio_table(res):
    rows = []
    pairs = [("selfchange_cpu_us", "per SelfChange"), ("blank_cpu_us", "per blank"),
             ("pair_cpu_us", "per add+remove pair"), ("startup_cpu_s", "start-up CPU"),
             ("peak_hwm_mib", "peak RSS")]
    for metric, label in pairs:
        for n in res.ns:
            a = res.median("agent", n, metric)
            if not a:
                continue
            cells = []
            for other in ("dom", "python", "drain"):
                o = res.median(other, n, metric)
                cells.append(f"{o / a:.2f}×" if o else "-")
            rows.append(f"| {label} | {n_label(n)} | " + " | ".join(cells) + " |")
    if not rows:
        return ""
    return ("**Ratios to ts-kube-agent** (other / agent, medians; above 1 means the agent is"
            " cheaper; the drain column is below 1 by the agent's own parse-and-reduce cost)\n\n"
            "| figure | N | DOM / agent | Python / agent | drain / agent |\n|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


def aims_section(res):
    if not res.aims:
        return ""
    lines = ["| aim | measured | verdict |", "|---|---|---|"]
    for aim in res.aims:
        verdict = "met" if aim["met"] else ("**missed**" if aim["met"] is False else "not measured")
        lines.append(f"| {aim['aim']} | {aim['measured']} | {verdict} |")
    text = "\n".join(lines) + "\n"
    misses = [a for a in res.aims if a["met"] is False and a.get("explain")]
    if misses:
        text += "\n### Figures that miss their aim\n\n"
        for a in misses:
            text += f"- **{a['aim']}** ({a['measured']}). {a['explain']}\n"
    return text


# --- plots ----------------------------------------------------------------------------------

def gnuplot(script):
    r = subprocess.run(["gnuplot"], input=script.encode(), capture_output=True)
    if r.returncode != 0:  # "empty range" warnings of a one-N run are not worth showing
        raise RuntimeError("gnuplot failed: " + r.stderr.decode(errors="replace"))


def write_series(tmp, res, impl, metric, scale=1.0):
    path = os.path.join(tmp, f"{impl}-{metric}.dat")
    count = 0
    with open(path, "w") as f:
        for n in res.ns:
            s = res.get(impl, n, metric)
            if s:
                f.write(f"{n} {s[0] * scale} {s[1] * scale} {s[2] * scale}\n")
                count += 1
    return path if count else None


PLOT_STYLE = {"agent": 'lc rgb "#1f77b4" pt 7', "agent_before": 'lc rgb "#9467bd" pt 6',
              "dom": 'lc rgb "#ff7f0e" pt 5',
              "drain": 'lc rgb "#2ca02c" pt 9', "python": 'lc rgb "#d62728" pt 11'}


def panel(tmp, res, metric, title, ylabel, logy=True):
    plots = []
    for impl, name in IMPLS:
        path = write_series(tmp, res, impl, metric)
        if path:
            plots.append(f'"{path}" using 1:2:3:4 with yerrorlines {PLOT_STYLE[impl]} lw 2 '
                         f'title "{name}"')
    if not plots:
        # An empty panel: a constant above the y range (gnuplot refuses a plot of only 1/0).
        return (f'set title "{title} (not measured)"\nunset key\nunset logscale y\n'
                'set yrange [0:1]\nplot 2 notitle\nset autoscale y\n')
    return (f'set title "{title}"\nset ylabel "{ylabel}"\n'
            + ("set logscale y\n" if logy else "unset logscale y\n")
            + "set key top left\nplot " + ", \\\n  ".join(plots) + "\n")


def draw_plots(res, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    lo, hi = (min(res.ns), max(res.ns)) if res.ns else (1000, 1000)
    tics = ", ".join(f'"{n_label(n)}" {n}' for n in res.ns)
    common = (f'set logscale x\nset xrange [{lo / 1.4:g}:{hi * 1.4:g}]\n'
              'set xlabel "peers (N, log scale)"\nset grid\n'
              f'set xtics ({tics})\nset format y "%g"\nset offsets 0, 0, graph 0.05, graph 0.05\n')
    with tempfile.TemporaryDirectory() as tmp:
        cost = os.path.join(out_dir, "cost-per-event.png")
        gnuplot(f'set terminal pngcairo size 1650,520 font ",10"\nset output "{cost}"\n' + common
                + "set multiplot layout 1,3 title "
                  '"CPU per event against tailnet size (median, min-max bars; log scales)"\n'
                + panel(tmp, res, "selfchange_cpu_us", "per SelfChange", "CPU µs per event")
                + panel(tmp, res, "blank_cpu_us", "per blank message (default mode)",
                        "CPU µs per event")
                + panel(tmp, res, "pair_cpu_us", "per peer add+remove pair (--track-peers)",
                        "CPU µs per pair")
                + "unset multiplot\n")
        rss = os.path.join(out_dir, "peak-rss.png")
        gnuplot(f'set terminal pngcairo size 1650,520 font ",10"\nset output "{rss}"\n' + common
                + "set multiplot layout 1,3 title "
                  '"Peak RSS and start-up against tailnet size (median, min-max bars)"\n'
                + panel(tmp, res, "peak_hwm_mib", "peak RSS, default mode", "MiB (log)")
                + panel(tmp, res, "track_hwm_mib", "peak RSS, --track-peers", "MiB (log)")
                + panel(tmp, res, "startup_s", "start-up: connect to identity written",
                        "seconds (log)")
                + "unset multiplot\n")
    return ["cost-per-event.png", "peak-rss.png"]


# --- the document -------------------------------------------------------------------------------

LADDER_NOTE = (
    "The highest rate is the last step of the ladder (5k, 10k, 20k, 35k, 50k, 70k, 100k pairs/s; "
    "a blank rate is twice the pair rate) that ran its whole step without tsbus-sim closing "
    "the watcher. "
    "Where the raw drain stops at about the same rate, the ceiling is the simulator's, not the "
    "consumer's: on a queue of 128 a few milliseconds of scheduling delay of the simulator's "
    "writer overflow it at these rates whoever reads. The notes say why each ladder stopped.\n")


PACED_NOTE = (
    "Each line is sent on its own (tsbus-sim `POST /pace`, one send per line, queue 128, no "
    "coalescing), the way tailscaled writes and flushes every Notify, so at these rates each "
    "line is a wakeup of the consumer. Cells: CPU per line (µs, utime+stime from "
    "/proc/PID/task/*/schedstat) / CPU % of a core / voluntary context switches per line "
    "(/proc/PID/task/*/status), median of the runs; the consumer's deltas from the pace's start "
    "until its last line was sent (the drain: read) + 50 ms. `rate` is what tsbus-sim achieved "
    "on this machine (the slowest of the runs).")


def paced_section(res):
    if not res.paced:
        return ""
    m = res.meta
    keys = {k[2].rsplit(":", 1)[0] for k in res.paced}  # paced:mode:kind:rate
    impls = [i for i, _ in IMPLS if any(k[0] == i for k in res.paced)]
    ns = sorted({k[1] for k in res.paced})
    la0, la1 = m.get("loadavg_start"), m.get("loadavg_end")
    out = ["## Paced: one line per write (the cost per wakeup)", "", PACED_NOTE, "",
           f"N = {', '.join(f'{n:,}' for n in ns)} peers, {m.get('paced_runs', '?')} run(s); "
           + (f"load average at the start {la0[0]:.2f} {la0[1]:.2f} {la0[2]:.2f}, "
              f"at the end {la1[0]:.2f} {la1[1]:.2f} {la1[2]:.2f}" if la0 and la1 else ""), ""]

    def order(key):
        _, mode, kind, rate = key.split(":")
        return (mode != "default", kind != "selfchange", int(rate))

    for mode in ("default", "track"):
        mk = sorted((k for k in keys if k.split(":")[1] == mode), key=order)
        if not mk:
            continue
        out += [f"**{'default mode' if mode == 'default' else '--track-peers'}**", "",
                "| line | rate/s (achieved) | " + " | ".join(IMPL_NAME[i] for i in impls) + " |",
                "|---|---|" + "---|" * len(impls)]
        for n in ns:
            for key in mk:
                _, _, kind, rate = key.split(":")
                achieved = [v for i in impls for v in res._by_key.get((i, n, key + ":rate"), [])]
                cells = []
                for i in impls:
                    cpu = res.median(i, n, key + ":cpu_us")
                    pct = res.median(i, n, key + ":cpu_pct")
                    vcs = res.median(i, n, key + ":vcs")
                    cells.append("-" if cpu is None else
                                 f"{cpu:.2f} µs / {pct:.2f}% / {vcs:.2f}")
                out.append(f"| {kind} | {int(rate):,} ({min(achieved) if achieved else 0:,.0f}) | "
                           + " | ".join(cells) + " |")
        out.append("")
    notes = [n for n in res.notes if n.startswith("Paced ")]
    if notes:
        out += [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def render(res, plot_files, plots_rel):
    m = res.meta
    out = ["# Benchmarks: ts-kube-agent on a giant tailnet", "",
           "Generated by `make bench` (scripts/bench.sh); do not edit by hand.", "",
           f"- Machine: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, "
           f"{m.get('mem_gib', '?')} GiB memory, kernel {m.get('kernel', '?')}",
           f"- Commit: `{m.get('commit', '?')}`"
           + (" (with uncommitted changes)" if m.get("dirty") else "")
           + f", built {m.get('build_type', '?')}",
           f"- Date: {m.get('date', '?')}; wall time of the whole run: "
           f"{m.get('elapsed_s', 0) / 60:.1f} min" + (" (BENCH_QUICK smoke mode: figures are "
                                                      "not meaningful)" if m.get('quick') else ""),
           f"- Runs: {m.get('method_runs', '')}", ""]
    out += ["## How to run", "",
            "`make bench` (about 13 minutes on 2 cores; `BENCH_QUICK=1` for a one-minute smoke "
            "run at N = 1000). `BENCH_N`, `BENCH_RUNS`, `BENCH_IMPLS`, `BENCH_LADDER_N` and "
            "`BENCH_WORK` (keep logs and results.json) are described at the top of "
            "`scripts/bench.sh`.", ""]
    out += ["## Method", "", m.get("method", ""), ""]
    if res.aims:
        out += ["## Against the aims", "", aims_section(res)]
    out += ["## Pictures", ""]
    for f in plot_files:
        out.append(f"![{f}]({plots_rel}/{f})")
        out.append("")
    out += ["## Start-up (default mode)", "", table(res, "startup_s"), table(res, "startup_cpu_s"),
            table(res, "startup_hwm_mib"),
            "## Per SelfChange (default mode, identity unchanged)", "",
            table(res, "selfchange_cpu_us"), table(res, "selfchange_wall_us"),
            "## Per blank message (default mode, one per peer delta, [PROTOCOL.md](PROTOCOL.md#blank-messages))", "",
            table(res, "blank_cpu_us"), table(res, "blank_wall_us"), table(res, "max_blank_rate"),
            LADDER_NOTE, table(res, "ladder_blank_cpu_us"),
            "## Memory and idle cost (default mode)", "", table(res, "peak_hwm_mib"),
            table(res, "end_rss_mib"), table(res, "idle_cpu_pct"),
            "## Peer tracking (--track-peers)", "",
            table(res, "track_startup_s"), table(res, "pair_cpu_us"), table(res, "pair_wall_us"),
            table(res, "max_pair_rate"), LADDER_NOTE, table(res, "ladder_pair_cpu_us"),
            table(res, "track_hwm_mib"),
            "## API writes (from kube-emu's request log)", "",
            table(res, "writes_per_1k_selfchange"), table(res, "writes_per_1k_blank"),
            table(res, "writes_per_1k_pair"), table(res, "writes_per_real_change"),
            "## Ratios", "", ratio_table(res), paced_section(res)]
    if res.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in res.notes] + [""]
    return "\n".join(s for s in out if s is not None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--out", required=True)
    ap.add_argument("--plots", required=True)
    args = ap.parse_args()
    with open(args.results) as f:
        res = Results(json.load(f))
    plot_files = draw_plots(res, args.plots)
    rel = os.path.relpath(args.plots, os.path.dirname(os.path.abspath(args.out)))
    write_keeping(args.out, render(res, plot_files, rel))


KEPT_MARKER = "<!-- Below: sections written by other benchmarks; make bench keeps them. -->"


def write_keeping(path, text):
    """Writes the generated report to path. Sections measured by other benchmarks (the fleet, a
    real tailscaled, the paced before/after runs) follow KEPT_MARKER in the existing file; they
    are kept as they are, so `make bench` rewrites only its own part."""
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        at = old.find(KEPT_MARKER)
        if at >= 0:
            kept = old[at:]
    with open(path, "w") as f:
        f.write(text)
        if kept:
            f.write("\n" + kept)


if __name__ == "__main__":
    main()
