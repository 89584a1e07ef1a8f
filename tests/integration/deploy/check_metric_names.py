#!/usr/bin/env python3
"""Checks that every PromQL expression in Grafana dashboards and Prometheus rule files uses only
metric names (and label names) that the agent really exports.

    check_metric_names.py --metrics agent-metrics.txt FILE...
    check_metric_names.py --metrics http://127.0.0.1:9002/metrics deploy/grafana/*.json ...

--metrics is a Prometheus text exposition: a file, or an http:// URL (a running agent's
/metrics). FILEs: *.json are Grafana dashboards (every "expr", and label_values() in template
variables); *.yaml/*.yml are Prometheus rule files or PrometheusRule objects (parsed with Debian's
python3-yaml).

A name is known when the exposition has a sample or a # TYPE line for it (so histogram
_bucket/_sum/_count series count). A label in a selector ({label="..."}) must appear on some
sample of that metric, unless it is a scrape target label (namespace, pod, job, ...) or the
metric has no samples yet. Exit status 1 lists every unknown name with its file and expression.
Standard library and python3-yaml only.
"""

import argparse
import json
import os
import re
import sys
import urllib.request

import yaml

TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "service", "endpoint",
                 "node", "__name__"}
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "bool", "offset", "inf", "nan", "atan2", "start", "end",
                # aggregation operators ("sum by (x) (...)" leaves "sum by (...)")
                "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}


LABEL_VALUES = re.compile(r"\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$")


def parse_exposition(text):
    """Returns {metric name: set of label names seen on its samples}."""
    metrics = {}
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            metrics.setdefault(line.split()[2], set())
            continue
        if not line or line.startswith("#"):
            continue
        m = sample.match(line)
        if not m:
            continue
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"', m[3] or ""))
        metrics.setdefault(m[1], set()).update(labels)
    return metrics


def read_metrics(source):
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as r:
            return parse_exposition(r.read().decode())
    with open(source) as f:
        return parse_exposition(f.read())


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def selectors(expr):
    """Yields (metric name or None, [label names]) for each name{...} / {...} selector."""
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}", expr):
        labels = re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m[2])
        name = m[1]
        if name in PROMQL_WORDS:
            name = None
        yield name, labels


def metric_names(expr):
    """The metric names an expression reads: identifiers that are not functions, keywords,
    grouping labels, numbers or durations."""
    e = strip_strings(expr)
    e = re.sub(r"\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*|\[\[[^\]]*\]\]", "1", e)  # Grafana vars
    e = re.sub(r"\{[^}]*\}", " ", e)                                             # matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                                            # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", e)
    e = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?[smhdwy]?\b", " ", e)               # numbers
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_expressions(path):
    with open(path) as f:
        doc = json.load(f)
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            title = node.get("title", where)
            for k, v in node.items():
                if k == "expr" and isinstance(v, str) and v.strip():
                    out.append((f"{path}: {title}", v))
                elif k == "query" and isinstance(v, (str, dict)):
                    q = v if isinstance(v, str) else v.get("query", "")
                    m = LABEL_VALUES.match(q or "")
                    if m:
                        out.append((f"{path}: variable {node.get('name', '?')}", m[1]))
                else:
                    walk(v, title)
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    walk(doc, "dashboard")
    return out


def rule_expressions(path):
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        raise SystemExit(f"{path}: cannot parse: {e}")
    out = []
    for doc in docs:
        groups = doc.get("groups") or (doc.get("spec") or {}).get("groups") or []
        for g in groups:
            for r in g.get("rules") or []:
                name = r.get("alert") or r.get("record") or "?"
                out.append((f"{path}: {name}", r["expr"]))
    return out


def check(expressions, metrics, allow):
    problems = []
    used = set()
    for where, expr in expressions:
        for name in sorted(metric_names(expr)):
            used.add(name)
            if name not in metrics and name not in allow:
                problems.append(f"{where}: unknown metric {name!r} in: {expr.strip()}")
        for name, labels in selectors(strip_strings(expr)):
            known = metrics.get(name) if name else None
            if not known:
                continue
            for label in labels:
                if label not in known and label not in TARGET_LABELS:
                    problems.append(f"{where}: metric {name!r} has no label {label!r} "
                                    f"(it has {sorted(known)}) in: {expr.strip()}")
    return problems, used


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metrics", required=True, help="exposition file or http:// URL")
    ap.add_argument("--allow", action="append", default=[],
                    help="a metric name to accept although /metrics lacks it (e.g. up)")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    metrics = read_metrics(args.metrics)
    expressions = []
    for f in args.files:
        if f.endswith(".json"):
            expressions += dashboard_expressions(f)
        elif f.endswith((".yaml", ".yml")):
            expressions += rule_expressions(f)
        else:
            raise SystemExit(f"{f}: expected a dashboard (.json) or a rule file (.yaml)")
    if not expressions:
        raise SystemExit("no PromQL expressions found in " + " ".join(args.files))
    problems, used = check(expressions, metrics, set(args.allow))
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{len(expressions)} expressions, {len(used)} metric names, "
          f"{len(problems)} problems ({args.metrics})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
