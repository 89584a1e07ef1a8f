#!/usr/bin/env python3
"""Regenerates the files of deploy/ that are copies of another, after you change the original:

  deploy/kustomize/base/*.yaml                      <- the Helm chart's defaults
  deploy/prometheus/podmonitor.yaml                 <- the chart's PodMonitor template
  deploy/helm/ts-kube-agent/files/prometheus-rules.yaml,
  deploy/prometheus/prometheusrule.yaml             <- deploy/prometheus/ts-kube-agent.rules.yaml
  the sidecar snippet in deploy/helm/ts-kube-agent/README.md <- the chart's agent container

    deploy/regenerate.py [--helm PATH]

The chart is rendered by `helm template` (default: the pinned Helm that
scripts/real-apiserver/build.sh builds and caches). The deploy tests fail with a difference
whenever one of these is stale. Python 3 standard library only.
"""

import argparse
import os
import re
import subprocess

DEPLOY = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.join(DEPLOY, "helm", "ts-kube-agent")
BASE = os.path.join(DEPLOY, "kustomize", "base")
RULES = os.path.join(DEPLOY, "prometheus", "ts-kube-agent.rules.yaml")

BASE_FILES = {  # chart template -> (base file, header comment)
    "serviceaccount.yaml": ("serviceaccount.yaml",
                            "# The service account the pod runs as; both Roles are bound to it."),
    "targets.yaml": ("secret.yaml",
                     "# The Secret the agent publishes into, its own (layout (a), "
                     "docs/OPERATIONS.md \"Layouts\"),\n# pre-created empty so the agent's "
                     "Role needs no \"create\" verb."),
    "tailscaled-secret.yaml": ("tailscaled-secret.yaml",
                               "# tailscaled's state Secret: containerboot keeps the node state "
                               "and writes its own device keys\n# in it; the agent never touches "
                               "it. Pre-created empty so tailscaled's Role needs no \"create\"."),
    "role.yaml": ("role.yaml",
                  "# The agent's Role: get and patch on exactly its target Secret, by name; "
                  "nothing on tailscaled's."),
    "tailscaled-rbac.yaml": ("tailscaled-rbac.yaml",
                             "# tailscaled (containerboot) keeps its node state in its own "
                             "Secret: get, update, patch on\n# exactly that one."),
    "service.yaml": ("service.yaml",
                     "# The metrics Service: the agent's admin port (/metrics, /livez, /readyz, "
                     "/healthz)."),
    "deployment.yaml": ("deployment.yaml",
                        "# tailscaled and the agent as native sidecars (Kubernetes >= 1.29; for "
                        "older clusters add\n# the ../components/regular-sidecar component), "
                        "sharing the LocalAPI socket through an\n# emptyDir, beside a placeholder "
                        "application container."),
}
GENERATED = ("# Generated from the Helm chart's defaults (release \"ts-kube-agent\") by "
             "deploy/regenerate.py;\n# the deploy tests check that this base and the chart "
             "stay equal.\n")
HELM_ONLY = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def render(helm, *args):
    return subprocess.run([helm, "template", "ts-kube-agent", CHART, "--namespace", "default"]
                          + list(args), check=True, capture_output=True, text=True).stdout


def pinned_helm():
    script = os.path.join(os.path.dirname(DEPLOY), "scripts", "real-apiserver", "build.sh")
    p = subprocess.run([script, "--check"], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr.strip() + "\n(or pass --helm PATH)")
    return os.path.join(p.stdout.strip().splitlines()[-1], "helm")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    print("wrote", os.path.relpath(path, os.path.dirname(DEPLOY)))


def kustomize_base(helm):
    files = {}
    for doc in render(helm).split("---\n# Source: ")[1:]:
        source, body = doc.split("\n", 1)
        name, header = BASE_FILES[source.rsplit("/", 1)[1]]
        body = "\n".join(l for l in body.split("\n") if not any(k in l for k in HELM_ONLY))
        files.setdefault(name, (header, []))[1].append(body.strip() + "\n")
    for name, (header, bodies) in files.items():
        write(os.path.join(BASE, name), header + "\n" + GENERATED + "---\n".join(bodies))


def podmonitor(helm):
    out = render(helm, "--api-versions", "monitoring.coreos.com/v1",
                 "--set", "deployment.enabled=false", "--set", "metrics.podMonitor.enabled=true",
                 "--set", "metrics.podMonitor.selector.app=myapp",
                 "--show-only", "templates/podmonitor.yaml")
    body = out.split("\n", 2)[2]  # after "---" and "# Source: ..."
    body = "\n".join(l for l in body.split("\n") if not any(k in l for k in HELM_ONLY))
    write(os.path.join(DEPLOY, "prometheus", "podmonitor.yaml"), """\
# Scrapes the agent running as a sidecar in your own pods, without a Service: every pod with
# the label app: myapp (change the selector to your workload's), the agent's container only (its
# port "metrics", the admin port). For the Prometheus Operator.
#   kubectl -n <namespace> apply -f deploy/prometheus/podmonitor.yaml
# Add the label your Prometheus selects PodMonitors by, e.g. release: prometheus. The Helm chart
# creates the same with metrics.podMonitor.enabled; this file is its template rendered by
# deploy/regenerate.py (release "ts-kube-agent", metrics.podMonitor.selector app: myapp).
""" + body.strip() + "\n")


def rules_copies():
    with open(RULES) as f:
        rules = f.read()
    groups = rules[rules.index("groups:"):]
    write(os.path.join(CHART, "files", "prometheus-rules.yaml"),
          "# A copy of deploy/prometheus/ts-kube-agent.rules.yaml (the chart cannot read files "
          "outside\n# its directory); tests/integration/deploy checks the two are equal.\n"
          + groups)
    indented = "".join(("  " + l if l.strip() else l) for l in groups.splitlines(True))
    write(os.path.join(DEPLOY, "prometheus", "prometheusrule.yaml"), """\
# The alerts of ts-kube-agent.rules.yaml as a PrometheusRule (Prometheus Operator); a test keeps
# the two equal. The Helm chart creates the same object with metrics.prometheusRule.enabled.
#   kubectl -n <namespace> apply -f deploy/prometheus/prometheusrule.yaml
# Add the label your Prometheus selects rules by (ruleSelector), e.g. release: prometheus.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: ts-kube-agent
  labels:
    app.kubernetes.io/name: ts-kube-agent
spec:
""" + indented)


def readme_snippet(helm):
    out = render(helm, "--show-only", "templates/deployment.yaml")
    m = re.search(r"^        - name: ts-kube-agent\n.*?(?=^      containers:)", out, re.M | re.S)
    container = "".join(l[6:] + "\n" for l in m[0].splitlines())
    path = os.path.join(CHART, "README.md")
    with open(path) as f:
        readme = f.read()
    readme, n = re.subn(r"(# ts-kube-agent sidecar snippet[^\n]*\ninitContainers:\n).*?(?=volumes:\n)",
                        lambda mm: mm[1] + container, readme, flags=re.S)
    if n != 1:
        raise SystemExit("README.md: the '# ts-kube-agent sidecar snippet' block is missing")
    write(path, readme)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--helm", default=os.environ.get("TSK_HELM"),
                    help="helm binary (default: scripts/real-apiserver/build.sh's cached one)")
    args = ap.parse_args()
    helm = args.helm or pinned_helm()
    kustomize_base(helm)
    podmonitor(helm)
    rules_copies()
    readme_snippet(helm)


if __name__ == "__main__":
    main()
