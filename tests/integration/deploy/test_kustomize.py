#!/usr/bin/env python3
"""deploy/kustomize: `kubectl kustomize` renders it, every object passes the field schema, the
security and RBAC properties hold, and the base equals the Helm chart's defaults (release
"ts-kube-agent") minus Helm's own labels, for native and regular sidecars."""

import copy
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import k8s_schema
from deploylib import (AGENT_CONTAINER, KUSTOMIZE_DIR, SOURCE_DIR, agent_container_problems,
                       container, env_of, helm_bin, helm_render, kubectl_bin, main, objects, one,
                       pod_spec, restricted_violations, run, selector_matches, yaml_to_json)

HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
REGENERATE = "the base is stale: run deploy/regenerate.py"


def kustomize(path):
    out = run([kubectl_bin(), "kustomize", path]).stdout
    return yaml_to_json(out, is_text=True)


def without_helm_labels(objs):
    out = copy.deepcopy(objs)
    for o in out:
        metas = [o["metadata"]]
        if o["kind"] == "Deployment":
            metas.append(o["spec"]["template"]["metadata"])
        for meta in metas:
            for k in HELM_ONLY_LABELS:
                (meta.get("labels") or {}).pop(k, None)
    return out


def by_key(objs):
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = kustomize(KUSTOMIZE_DIR)

    def test_renders_the_expected_objects(self):
        self.assertEqual(sorted((o["kind"], o["metadata"]["name"]) for o in self.objs), [
            ("Deployment", "ts-kube-agent"), ("Role", "ts-kube-agent"),
            ("Role", "ts-kube-agent-tailscaled"), ("RoleBinding", "ts-kube-agent"),
            ("RoleBinding", "ts-kube-agent-tailscaled"), ("Secret", "ts-kube-agent"),
            ("Secret", "ts-kube-agent-identity"), ("Service", "ts-kube-agent"),
            ("ServiceAccount", "ts-kube-agent")])

    def test_every_object_passes_the_field_schema(self):
        for o in self.objs:
            self.assertEqual(k8s_schema.validate(o), [])

    def test_agent_role_is_get_and_patch_on_the_named_secret(self):
        self.assertEqual(one(self.objs, "Role", "ts-kube-agent")["rules"], [{
            "apiGroups": [""], "resources": ["secrets"],
            "resourceNames": ["ts-kube-agent-identity"], "verbs": ["get", "patch"]}])

    def test_layout_a_tailscaled_keeps_its_own_state_secret(self):
        spec = pod_spec(one(self.objs, "Deployment"))
        self.assertEqual(env_of(container(spec, AGENT_CONTAINER))["TS_KUBE_SECRET"],
                         "ts-kube-agent-identity")
        self.assertEqual(env_of(container(spec, "tailscaled"))["TS_KUBE_SECRET"],
                         "ts-kube-agent")
        self.assertEqual(one(self.objs, "Role", "ts-kube-agent-tailscaled")["rules"], [{
            "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["ts-kube-agent"],
            "verbs": ["get", "update", "patch"]}])

    def test_pod_is_restricted_and_the_agent_probes_its_admin_port(self):
        spec = pod_spec(one(self.objs, "Deployment"))
        self.assertEqual(restricted_violations(spec), [])
        self.assertEqual(agent_container_problems(container(spec, AGENT_CONTAINER)), [])
        self.assertEqual([c["name"] for c in spec["initContainers"]],
                         ["tailscaled", AGENT_CONTAINER])

    def test_service_selects_the_pods(self):
        d = one(self.objs, "Deployment")
        svc = one(self.objs, "Service")
        self.assertTrue(selector_matches(svc["spec"]["selector"],
                                         d["spec"]["template"]["metadata"]["labels"]))

    def test_equals_the_chart_defaults(self):
        chart = without_helm_labels(objects(helm_render(name="ts-kube-agent",
                                                        namespace="default")))
        self.assertEqual(by_key(self.objs), by_key(chart), REGENERATE)


class Overlays(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kustomize-", dir=os.environ.get("TSK_WORK_DIR"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def overlay(self, body):
        d = tempfile.mkdtemp(dir=self.tmp)
        rel = os.path.relpath(KUSTOMIZE_DIR, d)
        with open(os.path.join(d, "kustomization.yaml"), "w") as f:
            f.write(body.replace("@KUSTOMIZE@", rel))
        return kustomize(d)

    def test_example_overlay_moves_everything_into_its_namespace(self):
        objs = kustomize(os.path.join(KUSTOMIZE_DIR, "overlays", "example"))
        for o in objs:
            self.assertEqual(o["metadata"]["namespace"], "tailscale", o["kind"])
        for rb in (one(objs, "RoleBinding", "ts-kube-agent"),
                   one(objs, "RoleBinding", "ts-kube-agent-tailscaled")):
            self.assertEqual(rb["subjects"][0]["namespace"], "tailscale")

    def test_example_overlays_commented_component_works_as_its_comment_says(self):
        """The example overlay's commented `components:` for clusters before 1.29, switched on
        in a copy of deploy/kustomize (its paths are relative to the overlay), builds and gives
        the chart's 1.28 Deployment."""
        tree = os.path.join(tempfile.mkdtemp(dir=self.tmp), "kustomize")
        shutil.copytree(KUSTOMIZE_DIR, tree)
        path = os.path.join(tree, "overlays", "example", "kustomization.yaml")
        with open(path) as f:
            text = f.read()
        m = re.search(r"^# components:\n(#   - .*\n?)+", text, re.M)
        self.assertIsNotNone(m, "the overlay lacks the commented components: block")
        with open(path, "w") as f:
            f.write(text.replace(m[0], re.sub(r"^# ?", "", m[0], flags=re.M)))
        p = run([kubectl_bin(), "kustomize", os.path.dirname(path)], check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        spec = pod_spec(one(yaml_to_json(p.stdout, is_text=True), "Deployment"))
        self.assertNotIn("initContainers", spec)
        self.assertEqual([c["name"] for c in spec["containers"]][:2],
                         ["tailscaled", AGENT_CONTAINER])

    def test_regular_sidecar_component_matches_the_chart_on_1_28(self):
        objs = self.overlay("resources:\n  - @KUSTOMIZE@/base\n"
                            "components:\n  - @KUSTOMIZE@/components/regular-sidecar\n")
        chart = without_helm_labels(objects(helm_render(name="ts-kube-agent",
                                                        namespace="default", kube="1.28.0")))
        self.assertEqual(one(objs, "Deployment"), one(chart, "Deployment"))
        spec = pod_spec(one(objs, "Deployment"))
        self.assertNotIn("initContainers", spec)
        self.assertEqual(restricted_violations(spec), [])
        self.assertEqual(env_of(container(spec, AGENT_CONTAINER))["TS_KUBE_SECRET"],
                         "ts-kube-agent-identity")


class Regenerate(unittest.TestCase):
    """deploy/regenerate.py, run on a copy of deploy/ with the pinned Helm, writes exactly the
    committed files: the kustomize base, the PodMonitor example, the rules' copies and the
    chart README's snippet."""

    def test_regenerate_reproduces_the_committed_files(self):
        work = tempfile.mkdtemp(prefix="regenerate-", dir=os.environ.get("TSK_WORK_DIR"))
        try:
            deploy = os.path.join(work, "deploy")
            shutil.copytree(os.path.join(SOURCE_DIR, "deploy"), deploy)
            p = subprocess.run([sys.executable, os.path.join(deploy, "regenerate.py"), "--helm",
                                helm_bin()], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            written = [l.split(" ", 1)[1] for l in p.stdout.splitlines()
                       if l.startswith("wrote ")]
            self.assertIn("deploy/prometheus/podmonitor.yaml", written)
            self.assertIn("deploy/kustomize/base/tailscaled-secret.yaml", written)
            for rel in written:
                self.assertTrue(filecmp.cmp(os.path.join(work, rel),
                                            os.path.join(SOURCE_DIR, rel), shallow=False),
                                f"{rel} differs from what deploy/regenerate.py writes: run it")
            base = os.path.join(SOURCE_DIR, "deploy", "kustomize", "base")
            generated = {r for r in written if r.startswith("deploy/kustomize/base/")}
            listed = yaml_to_json(os.path.join(base, "kustomization.yaml"))[0]["resources"]
            self.assertEqual(sorted("deploy/kustomize/base/" + r for r in listed),
                             sorted(generated), "kustomization.yaml lists other files")
        finally:
            shutil.rmtree(work)


class Yamllint(unittest.TestCase):
    def test_base_and_rendered_output_pass_yamllint(self):
        yamllint = os.environ.get("TSK_YAMLLINT", "")
        if not yamllint:
            self.skipTest("yamllint not found; run scripts/install-deps.sh")
        config = os.path.join(os.path.dirname(KUSTOMIZE_DIR), ".yamllint")
        run([yamllint, "--strict", "-c", config, KUSTOMIZE_DIR])
        rendered = run([kubectl_bin(), "kustomize", KUSTOMIZE_DIR]).stdout
        p = run([yamllint, "--strict", "-c", config, "-"], stdin=rendered, check=False)
        self.assertEqual(p.returncode, 0, p.stdout)


if __name__ == "__main__":
    main()
