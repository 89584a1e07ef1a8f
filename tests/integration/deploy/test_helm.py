#!/usr/bin/env python3
"""The chart through Helm itself (the pinned Helm v4 of scripts/real-apiserver/build.sh) and the
kustomize overlays through kubectl v1.37.2, against the real control plane of the real_apiserver
ctest fixture (etcd + kube-apiserver + kube-controller-manager v1.37.2, no kubelet, no
scheduler: admitted Pods stay Pending, which is all these tests need).

- `helm lint --strict`; `helm template` for a cluster before native sidecars (1.28: tailscaled
  and the agent are regular containers) and for this one (v1.37.2: native sidecars), with and
  without the Prometheus Operator's monitoring.coreos.com/v1; the chart's kubeVersion refused.
- `helm install` into a namespace that enforces Pod Security "restricted": the Deployment
  controller creates the Pod and the API server's PodSecurity admission accepts it; `helm
  upgrade` with changed values rolls a new Pod template; `helm uninstall` leaves nothing behind
  (garbage collection removes the ReplicaSets and Pods) and the namespace deletion completes.
  The chart ships no `helm test` hook (a test Pod would never run without a kubelet).
- The README's own commands: `helm install ts deploy/helm/ts-kube-agent -n tailscale
  --create-namespace ...` as printed there, and the kustomize overlay as documented (also with
  the commented `components:` for clusters before 1.29 switched on) through `kubectl kustomize`
  and `kubectl apply --server-side --dry-run=server -k`.
"""

import json
import os
import re
import secrets
import shlex
import shutil
import tempfile
import time
import unittest

from deploylib import (AGENT_CONTAINER, CHART_DIR, KUSTOMIZE_DIR, SKIP, SOURCE_DIR, find,
                       helm_bin, helm_render, kubectl_bin, main, objects, one, pod_spec,
                       read_env, read_text, run, split_rendered, yaml_to_json)

MONITORING = "monitoring.coreos.com/v1"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest",
              "pod-security.kubernetes.io/warn": "restricted",
              "pod-security.kubernetes.io/warn-version": "latest"}
# The kinds a release of this chart can leave behind, and the Pods/ReplicaSets its Deployment
# makes (all carry app.kubernetes.io/instance=<release>).
KINDS = "deployments,replicasets,pods,secrets,configmaps,services,serviceaccounts,roles,rolebindings"


def eventually(predicate, timeout=60.0, interval=0.25):
    """Polls predicate() until it returns a truthy value (returned) or timeout s pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got or time.monotonic() >= deadline:
            return got
        time.sleep(interval)


def container_names(spec, field):
    return [c["name"] for c in spec.get(field) or []]


class Lint(unittest.TestCase):
    def test_lint_strict_passes_for_the_defaults_and_every_option(self):
        for values in ([], ["--set", "targets.configMap.enabled=true",
                            "--set", "metrics.serviceMonitor.enabled=true",
                            "--set", "metrics.prometheusRule.enabled=true",
                            "--set", "metrics.podMonitor.enabled=true",
                            "--set", "metrics.networkPolicy.enabled=true",
                            "--set", "metrics.networkPolicy.from[0].podSelector.matchLabels.a=b",
                            "--set", "foreignKeys=overwrite",
                            "--set", "sidecar.mode=regular"],
                       ["--set", "layout=shared", "--set", "deployment.enabled=false",
                        "--set", "metrics.service.selector.app=myapp"]):
            p = run([helm_bin(), "lint", "--strict", CHART_DIR] + values, check=False)
            self.assertEqual(p.returncode, 0, f"{values}:\n{p.stdout}{p.stderr}")
            self.assertIn("0 chart(s) failed", p.stdout)


class Template(unittest.TestCase):
    """The two pod shapes and the optional Prometheus Operator kinds, by Helm's .Capabilities."""

    def test_cluster_before_1_29_gets_regular_containers(self):
        spec = pod_spec(one(objects(helm_render(kube="1.28.0")), "Deployment"))
        self.assertNotIn(AGENT_CONTAINER, container_names(spec, "initContainers"))
        self.assertIn(AGENT_CONTAINER, container_names(spec, "containers"))
        self.assertIn("tailscaled", container_names(spec, "containers"))
        for c in spec["containers"]:
            self.assertNotIn("restartPolicy", c, c["name"])

    def test_current_cluster_gets_native_sidecars(self):
        spec = pod_spec(one(objects(helm_render(kube="v1.37.2")), "Deployment"))
        self.assertEqual(container_names(spec, "initContainers"), ["tailscaled", AGENT_CONTAINER])
        for c in spec["initContainers"]:
            self.assertEqual(c.get("restartPolicy"), "Always", c["name"])
        self.assertNotIn(AGENT_CONTAINER, container_names(spec, "containers"))

    def test_prometheus_operator_kinds_only_when_the_api_is_served(self):
        values = {"metrics.serviceMonitor.enabled": "true",
                  "metrics.prometheusRule.enabled": "true", "metrics.podMonitor.enabled": "true"}
        with_api = objects(helm_render(kube="v1.37.2", apis=[MONITORING], values=values))
        self.assertEqual(len(find(with_api, "ServiceMonitor")), 1)
        self.assertEqual(len(find(with_api, "PrometheusRule")), 1)
        self.assertEqual(len(find(with_api, "PodMonitor")), 1)
        without = objects(helm_render(kube="v1.37.2", values=values))
        self.assertEqual(find(without, "ServiceMonitor") + find(without, "PrometheusRule")
                         + find(without, "PodMonitor"), [])

    def test_kube_version_below_the_charts_minimum_is_refused(self):
        p = helm_render(kube="1.24.0", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("kubeVersion", p.stderr)


class Install(unittest.TestCase):
    """helm install / upgrade / uninstall on the real control plane."""

    @classmethod
    def setUpClass(cls):
        cls.env = read_env()
        cls.kubeconfig = cls.env["TSK_APISERVER_KUBECONFIG"]

    def kubectl(self, *args, check=True, stdin=None):
        return run([kubectl_bin(), "--kubeconfig", self.kubeconfig, "--request-timeout=30s"]
                   + list(args), check=check, stdin=stdin)

    def helm(self, *args, check=True, cwd=None):
        return run([helm_bin(), "--kubeconfig", self.kubeconfig] + list(args), check=check,
                   cwd=cwd)

    def restricted_namespace(self):
        ns = "helm-" + secrets.token_hex(4)
        self.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": RESTRICTED}}))
        return ns

    def left_behind(self, ns, release):
        out = self.kubectl("get", KINDS, "-n", ns, "-l", f"app.kubernetes.io/instance={release}",
                           "-o", "name").stdout.split()
        # Helm's own release records (Secrets named sh.helm.release.v1.<release>.v<N>).
        out += [n for n in self.kubectl("get", "secrets", "-n", ns, "-o", "name").stdout.split()
                if n.startswith(f"secret/sh.helm.release.v1.{release}.")]
        return out

    def pods(self, ns, release):
        return json.loads(self.kubectl("get", "pods", "-n", ns, "-l",
                                       f"app.kubernetes.io/instance={release}",
                                       "-o", "json").stdout)["items"]

    def replica_set_failures(self, ns):
        """Why the ReplicaSets could not create their Pods (e.g. PodSecurity forbade them)."""
        events = json.loads(self.kubectl("get", "events", "-n", ns, "-o", "json").stdout)
        return [e["message"] for e in events["items"] if e.get("reason") == "FailedCreate"]

    def delete_namespace_and_wait(self, ns):
        self.kubectl("delete", "namespace", ns, "--wait=false")
        gone = eventually(lambda: self.kubectl("get", "namespace", ns, check=False).returncode
                          != 0, timeout=120)
        self.assertTrue(gone, f"namespace {ns} still there 120 s after its deletion")

    def test_install_upgrade_uninstall_in_a_restricted_namespace(self):
        ns = self.restricted_namespace()
        rel = "ts"
        p = self.helm("install", rel, CHART_DIR, "-n", ns, "-o", "json")
        self.assertNotIn("PodSecurity", p.stderr, "the Deployment's pod template would violate "
                         "Pod Security restricted")
        release = json.loads(p.stdout)
        self.assertEqual(release["info"]["status"], "deployed")
        self.assertIn(f"rollout status deployment/{rel}-ts-kube-agent", release["info"]["notes"])
        # Layout (a): the agent's own Secret and tailscaled's state Secret, both pre-created.
        for secret in (f"{rel}-ts-kube-agent-identity", f"{rel}-ts-kube-agent"):
            self.kubectl("get", "secret", secret, "-n", ns)

        # The Deployment controller makes a ReplicaSet, which makes a Pod; PodSecurity admission
        # (enforce=restricted) accepts it. No scheduler: it stays Pending.
        created = eventually(lambda: self.pods(ns, rel) or self.replica_set_failures(ns) or None)
        self.assertTrue(created, "no Pod and no FailedCreate event within 60 s")
        self.assertEqual(self.replica_set_failures(ns), [])
        pod = self.pods(ns, rel)[0]
        self.assertEqual(pod["status"]["phase"], "Pending")
        self.assertEqual([c["name"] for c in pod["spec"]["initContainers"]],
                         ["tailscaled", AGENT_CONTAINER], "native sidecars on v1.37")
        token_volumes = [v for v in pod["spec"]["volumes"] if "projected" in v]
        self.assertTrue(token_volumes, "the ServiceAccount admission adds the projected token")
        first_template = pod["metadata"]["labels"]["pod-template-hash"]

        # helm upgrade with changed values: revision 2, the new values in the pod template, a
        # new ReplicaSet whose Pod is admitted too.
        self.helm("upgrade", rel, CHART_DIR, "-n", ns, "--set", "trackPeers=true",
                  "--set", "targets.configMap.enabled=true")
        status = json.loads(self.helm("status", rel, "-n", ns, "-o", "json").stdout)
        self.assertEqual((status["version"], status["info"]["status"]), (2, "deployed"))
        dep = json.loads(self.kubectl("get", "deployment", f"{rel}-ts-kube-agent", "-n", ns,
                                      "-o", "json").stdout)
        agent = [c for c in pod_spec(dep)["initContainers"] if c["name"] == AGENT_CONTAINER][0]
        self.assertIn({"name": "TS_TRACK_PEERS", "value": "true"}, agent["env"])
        self.kubectl("get", "configmap", f"{rel}-ts-kube-agent", "-n", ns)
        rolled = eventually(lambda: [p for p in self.pods(ns, rel) if p["metadata"]["labels"]
                                     ["pod-template-hash"] != first_template])
        self.assertTrue(rolled, "no Pod of the upgraded template within 60 s")
        self.assertEqual(self.replica_set_failures(ns), [])

        # helm uninstall: nothing of the release stays (its ReplicaSets and Pods go through the
        # garbage collector), and the namespace deletion completes.
        self.helm("uninstall", rel, "-n", ns, "--wait", "--timeout", "120s")
        left = eventually(lambda: not self.left_behind(ns, rel), timeout=60)
        self.assertTrue(left, f"left behind: {self.left_behind(ns, rel)}")
        self.delete_namespace_and_wait(ns)

    def readme_block(self, path, first_word):
        """The README's shell command starting with `first_word`, joined over `\\` lines."""
        text = read_text(path)
        m = re.search(rf"^{re.escape(first_word)} .*?(?<!\\)$", text, re.M | re.S)
        self.assertIsNotNone(m, f"{path} has no `{first_word} ...` command")
        return shlex.split(m[0].replace("\\\n", " "))

    def test_readme_commands_helm_install_and_kustomize_overlays(self):
        # README.md's install command as printed (image from a registry nobody here can pull:
        # fine without a kubelet), then the kustomize overlay as deploy/README.md documents it.
        cmd = self.readme_block(os.path.join(SOURCE_DIR, "README.md"), "helm install")
        self.assertEqual(cmd[:3], ["helm", "install", "ts"])
        self.assertIn("--create-namespace", cmd)
        ns = cmd[cmd.index("-n") + 1]
        self.helm(*cmd[1:], cwd=SOURCE_DIR)
        self.assertTrue(eventually(lambda: self.pods(ns, "ts") or self.replica_set_failures(ns)))
        self.assertEqual(self.replica_set_failures(ns), [])
        self.helm("uninstall", "ts", "-n", ns, "--wait", "--timeout", "120s")
        self.assertTrue(eventually(lambda: not self.left_behind(ns, "ts")))

        overlay = os.path.join(KUSTOMIZE_DIR, "overlays", "example")
        self.assertEqual(yaml_to_json(os.path.join(overlay, "kustomization.yaml"))[0]
                         ["namespace"], ns, "README's helm namespace and the overlay's differ")
        self.apply_overlay_dry_run(overlay, ns, native=True)

        # The overlay's commented `components:` for clusters before 1.29, switched on as its
        # comment says, in a copy of deploy/kustomize (the paths are relative to the overlay).
        work = tempfile.mkdtemp(prefix="kustomize-")
        try:
            tree = os.path.join(work, "kustomize")
            shutil.copytree(KUSTOMIZE_DIR, tree)
            path = os.path.join(tree, "overlays", "example", "kustomization.yaml")
            text = read_text(path)
            m = re.search(r"^# components:\n(#   - .*\n?)+", text, re.M)
            self.assertIsNotNone(m, "the overlay lacks the commented components: block")
            with open(path, "w") as f:
                f.write(text.replace(m[0], re.sub(r"^# ?", "", m[0], flags=re.M)))
            self.apply_overlay_dry_run(os.path.dirname(path), ns, native=False)
        finally:
            shutil.rmtree(work)
        self.delete_namespace_and_wait(ns)

    def test_install_refuses_values_the_agent_would_refuse(self):
        # Refused at `helm install`, before anything is created: not a crash-looping agent.
        ns = self.restricted_namespace()
        for values, message in ((["--set", "shutdownTimeout=30s"], "must be below "
                                 "deployment.terminationGracePeriodSeconds (30 s)"),
                                (["--set", "config.drift-check-interval=1d"],
                                 "at '/config/drift-check-interval'"),
                                (["--set", "targets.secret.keys={device_id,fqdn}"],
                                 "at '/targets/secret/keys/1'")):
            p = self.helm("install", "bad", CHART_DIR, "-n", ns, *values, check=False)
            self.assertNotEqual(p.returncode, 0, values)
            self.assertIn(message, p.stderr, values)
        self.assertEqual(self.helm("list", "-n", ns, "-q").stdout.split(), [])
        self.assertEqual(self.left_behind(ns, "bad"), [])
        self.delete_namespace_and_wait(ns)

    def test_without_the_example_tailscaled_in_your_pod_may_keep_its_state(self):
        # deployment.enabled=false (the sidecar added to your own pod): your tailscaled runs
        # under the chart's service account and needs get/update/patch on its state Secret.
        # Asked of the real API server's RBAC authorizer (kubectl auth can-i --as), for both
        # layouts: (a) containerboot's state Secret and the agent's own; (b) plain tailscaled,
        # the agent writing into the state Secret.
        ns = self.restricted_namespace()
        sa = f"system:serviceaccount:{ns}:ts-ts-kube-agent"

        def can(verb, obj):
            p = self.kubectl("auth", "can-i", verb, obj, "-n", ns, "--as", sa, check=False)
            return p.stdout.strip()

        # (a) layout own.
        self.helm("install", "ts", CHART_DIR, "-n", ns, "--set", "deployment.enabled=false",
                  "--set", "deployment.tailscaled.stateSecret=myapp-tailscale",
                  "--set", "targets.secret.name=myapp-identity")
        for verb in ("get", "update", "patch"):
            self.assertEqual(can(verb, "secret/myapp-tailscale"), "yes", verb)
        for verb in ("get", "patch"):
            self.assertEqual(can(verb, "secret/myapp-identity"), "yes", verb)
        self.assertEqual(can("update", "secret/myapp-identity"), "no")
        self.assertEqual(can("update", "secret/other"), "no")
        self.assertEqual(can("create", "secrets"), "no")
        self.assertEqual(can("delete", "secret/myapp-tailscale"), "no")
        for secret in ("myapp-tailscale", "myapp-identity"):
            self.kubectl("get", "secret", secret, "-n", ns)
        self.helm("uninstall", "ts", "-n", ns, "--wait", "--timeout", "120s")

        # (b) layout shared: one Secret, tailscaled's state, which the agent writes into.
        self.helm("install", "ts", CHART_DIR, "-n", ns, "--set", "deployment.enabled=false",
                  "--set", "layout=shared", "--set", "targets.secret.name=myapp-tailscale")
        for verb in ("get", "update", "patch"):
            self.assertEqual(can(verb, "secret/myapp-tailscale"), "yes", verb)
        self.assertEqual(can("get", "secret/myapp-identity"), "no")
        self.assertEqual(can("create", "secrets"), "no")
        got = json.loads(self.kubectl("get", "secrets", "-n", ns, "-l",
                                      "app.kubernetes.io/instance=ts", "-o", "json").stdout)
        self.assertEqual([i["metadata"]["name"] for i in got["items"]], ["myapp-tailscale"])
        self.helm("uninstall", "ts", "-n", ns, "--wait", "--timeout", "120s")
        self.delete_namespace_and_wait(ns)

    def bash_block(self, path, marker):
        """The ```sh block of `path` that contains `marker`, run by bash as written (cwd: the
        source tree; helm and kubectl are the pinned builds, on this API server)."""
        text = read_text(path)
        blocks = [b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if marker in b]
        self.assertEqual(len(blocks), 1, f"{path}: one ```sh block with {marker!r}")
        tools = os.path.join(self.work_dir(), "bin")
        os.makedirs(tools, exist_ok=True)
        for name, real in (("helm", helm_bin()), ("kubectl", kubectl_bin())):
            path_ = os.path.join(tools, name)
            with open(path_, "w") as f:
                f.write(f'#!/bin/sh\nexec {shlex.quote(real)} --kubeconfig '
                        f'{shlex.quote(self.kubeconfig)} "$@"\n')
            os.chmod(path_, 0o755)
        env = dict(os.environ, PATH=tools + os.pathsep + os.environ.get("PATH", ""))
        script = "set -eu\n" + "\n".join(line.strip() for line in blocks[0].splitlines())
        p = run(["bash", "-c", script], check=False, cwd=SOURCE_DIR, env=env)
        self.assertEqual(p.returncode, 0, f"{blocks[0]}\n{p.stdout}{p.stderr}")
        return p

    def work_dir(self):
        d = os.environ.get("TSK_WORK_DIR") or tempfile.gettempdir()
        return os.path.join(d, "helm-readme")

    def test_readme_without_helm_block_as_written(self):
        # README.md's kustomize commands, run by bash as printed: the namespace first, then
        # the overlay, whose agent image is the one README's docker build pushes.
        p = self.bash_block(os.path.join(SOURCE_DIR, "README.md"),
                            "kubectl apply -k deploy/kustomize/overlays/example")
        self.assertIn("created", p.stdout)
        dep = json.loads(self.kubectl("get", "deployment", "ts-kube-agent", "-n", "tailscale",
                                      "-o", "json").stdout)
        agent = [c for c in pod_spec(dep)["initContainers"] if c["name"] == AGENT_CONTAINER][0]
        readme = read_text(os.path.join(SOURCE_DIR, "README.md"))
        pushed = re.search(r"docker push (\S+)", readme)[1]
        self.assertEqual(agent["image"], pushed, "the overlay deploys an image nobody pushed")
        self.delete_namespace_and_wait("tailscale")

    def test_chart_readme_annotation_command_as_written(self):
        # The chart README's plain-Prometheus annotations, run by bash as printed: the quoted
        # `prometheus\.io/...` keys stay one key each.
        p = self.bash_block(os.path.join(CHART_DIR, "README.md"), "prometheus\\.io/scrape")
        svc = json.loads(self.kubectl("get", "service", "ts-ts-kube-agent", "-n", "tailscale",
                                      "-o", "json").stdout)
        ann = svc["metadata"].get("annotations", {})
        self.assertEqual((ann.get("prometheus.io/scrape"), ann.get("prometheus.io/port")),
                         ("true", "9002"), p.stdout)
        self.helm("uninstall", "ts", "-n", "tailscale", "--wait", "--timeout", "120s")
        self.delete_namespace_and_wait("tailscale")

    def apply_overlay_dry_run(self, overlay, ns, native):
        rendered = self.kubectl("kustomize", overlay).stdout
        spec = pod_spec(one(yaml_to_json(rendered, is_text=True), "Deployment"))
        if native:
            self.assertEqual(container_names(spec, "initContainers"),
                             ["tailscaled", AGENT_CONTAINER])
        else:
            self.assertEqual(container_names(spec, "initContainers"), [])
            self.assertIn(AGENT_CONTAINER, container_names(spec, "containers"))
        p = self.kubectl("apply", "--server-side", "--dry-run=server", "-k", overlay,
                         check=False)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.assertNotIn("Warning", p.stderr)
        for line in p.stdout.splitlines():
            self.assertTrue(line.endswith("serverside-applied (server dry run)"), line)
        self.assertEqual(len(p.stdout.splitlines()), len(split_rendered("\n" + rendered)))


if __name__ == "__main__":
    main()
