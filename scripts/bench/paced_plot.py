#!/usr/bin/env python3
"""Draws the paced runs of one or more results.json (scripts/bench.sh --paced-only with
BENCH_WORK set; several are pooled, as more runs) as one PNG: CPU per line against the line
rate, one panel per mode and line kind, one line per consumer (median, min-max bars).

    python3 scripts/bench/paced_plot.py $BENCH_WORK/results.json [more.json] \
        --out docs/bench/paced-cost.png
"""
import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import report  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    data = {"measurements": []}
    for path in args.results:
        with open(path) as f:
            data["measurements"] += json.load(f)["measurements"]
    res = report.Results(data)
    rates = sorted({int(k[2].split(":")[3]) for k in res.paced})
    if not rates:
        sys.exit("paced_plot: no paced figures in " + " ".join(args.results))
    n = sorted({k[1] for k in res.paced})[0]
    tics = ", ".join(f'"{r:,}" {r}' for r in rates)
    script = (f'set terminal pngcairo noenhanced size 1400,900 font ",10"\nset output "{args.out}"\n'
              f'set logscale xy\nset xrange [{rates[0] / 1.5:g}:{rates[-1] * 1.5:g}]\n'
              f'set xtics ({tics})\nset grid\nset format y "%g"\n'
              'set xlabel "lines per second, one per write (log)"\n'
              'set ylabel "CPU µs per line (log)"\nset key top right\n'
              f'set multiplot layout 2,2 title "Paced: CPU per line against the rate '
              f'(N = {n:,}; median, min-max bars)"\n')
    with tempfile.TemporaryDirectory() as tmp:
        for mode, mode_name in (("default", "default mode"), ("track", "--track-peers")):
            for kind in ("selfchange", "blank"):
                plots = []
                for impl, name in report.IMPLS:
                    path = os.path.join(tmp, f"{impl}-{mode}-{kind}.dat")
                    rows = 0
                    with open(path, "w") as f:
                        for r in rates:
                            s = res.get(impl, n, f"paced:{mode}:{kind}:{r}:cpu_us")
                            if s:
                                f.write(f"{r} {s[0]} {s[1]} {s[2]}\n")
                                rows += 1
                    if rows:
                        plots.append(f'"{path}" using 1:2:3:4 with yerrorlines '
                                     f'{report.PLOT_STYLE[impl]} lw 2 title "{name}"')
                script += f'set title "{kind}, {mode_name}"\nplot ' + ", \\\n  ".join(plots) + "\n"
        script += "unset multiplot\n"
        report.gnuplot(script)


if __name__ == "__main__":
    main()
