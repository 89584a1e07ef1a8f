#!/usr/bin/env python3
"""The manifests against the real control plane (kube-apiserver + kube-controller-manager
v1.37.2 and etcd 3.6, scripts/real-apiserver, started by the real_apiserver ctest fixture): the
chart's objects (native sidecars and regular containers) and the kustomize base's are created in
a fresh namespace with kubectl's strict (server-side field) validation, then the RBAC is
exercised for real with the service account's own token from the TokenRequest API: patch of the
named Secret allowed, anything else forbidden. Both layouts (docs/OPERATIONS.md, "Layouts"): (a)
the agent's own Secret beside tailscaled's state Secret, (b) the agent in the state Secret.
Re-applying the pre-created Secrets (an upgrade) keeps the keys written into them. The metrics
NetworkPolicy is created too. ServiceMonitor/PodMonitor/PrometheusRule need the Prometheus
Operator's CRDs: not here (test_chart.py checks them rendered)."""

import base64
import json
import os
import secrets
import unittest

from deploylib import (KUSTOMIZE_DIR, helm_render, kubectl_bin, main, objects, read_env, read_text,
                       run, SKIP, yaml_to_json)


class RealApiServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kubectl_bin = kubectl_bin()
        cls.env = read_env()
        cls.kubeconfig = cls.env["TSK_APISERVER_KUBECONFIG"]

    def kubectl(self, *args, stdin=None, check=True, kubeconfig=None):
        return run([self.kubectl_bin, "--kubeconfig", kubeconfig or self.kubeconfig,
                    "--request-timeout=30s"] + list(args), stdin=stdin, check=check)

    def fresh_namespace(self):
        ns = "deploy-" + secrets.token_hex(4)
        self.kubectl("create", "namespace", ns)
        return ns

    def create(self, ns, objs):
        """Creates the objects with strict client-side validation against the server's schema."""
        stream = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
        p = self.kubectl("create", "--validate=strict", "-n", ns, "-f", "-", stdin=stream,
                         check=False)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        return p.stdout

    def assert_rbac(self, ns, sa, secret):
        """Authorization as the service account: only get/patch of the named Secret."""
        who = f"system:serviceaccount:{ns}:{sa}"

        def can(verb, resource):
            p = self.kubectl("auth", "can-i", verb, resource, "-n", ns, "--as", who, check=False)
            return p.stdout.strip() == "yes"

        self.assertTrue(can("get", f"secrets/{secret}"))
        self.assertTrue(can("patch", f"secrets/{secret}"))
        for verb, resource in (("patch", "secrets/someone-else"), ("get", "secrets/someone-else"),
                               ("delete", f"secrets/{secret}"), ("list", "secrets"),
                               ("get", "configmaps/x"), ("patch", "pods/x")):
            self.assertFalse(can(verb, resource), f"{verb} {resource}")

    def can_i(self, ns, sa, verb, resource):
        p = self.kubectl("auth", "can-i", verb, resource, "-n", ns, "--as",
                         f"system:serviceaccount:{ns}:{sa}", check=False)
        return p.stdout.strip() == "yes"

    def assert_layout_a(self, ns, sa, identity, state):
        """The pod's service account: get/patch on the agent's Secret, get/update/patch on
        tailscaled's, no create (both pre-created), nothing else on either."""
        for verb in ("get", "patch"):
            self.assertTrue(self.can_i(ns, sa, verb, f"secrets/{identity}"), verb)
        for verb in ("get", "update", "patch"):
            self.assertTrue(self.can_i(ns, sa, verb, f"secrets/{state}"), verb)
        for verb, resource in (("update", f"secrets/{identity}"),
                               ("delete", f"secrets/{identity}"),
                               ("delete", f"secrets/{state}"), ("create", "secrets"),
                               ("list", "secrets"), ("watch", "secrets")):
            self.assertFalse(self.can_i(ns, sa, verb, resource), f"{verb} {resource}")

    def patch_as_service_account(self, ns, sa, secret):
        token = self.kubectl("create", "token", sa, "-n", ns, "--duration=10m").stdout.strip()
        kubeconfig = os.path.join(self.env["TSK_APISERVER_DIR"], f"sa-{ns}.kubeconfig")
        with open(kubeconfig, "w") as f:
            json.dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "sa",
                "clusters": [{"name": "c", "cluster": {
                    "server": self.env["TSK_APISERVER_URL"],
                    "certificate-authority": self.env["TSK_APISERVER_CA"]}}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa",
                                                        "namespace": ns}}]}, f)
        patch = json.dumps({"data": {"device_fqdn": base64.b64encode(b"x.ts.net.").decode()}})
        self.kubectl("patch", "secret", secret, "--type=strategic", "-p", patch,
                     kubeconfig=kubeconfig)
        got = self.kubectl("get", "secret", secret, "-o", "jsonpath={.data.device_fqdn}",
                           kubeconfig=kubeconfig).stdout
        self.assertEqual(base64.b64decode(got), b"x.ts.net.")
        self.kubectl("create", "secret", "generic", "other", "-n", ns)
        denied = self.kubectl("patch", "secret", "other", "--type=strategic", "-p", patch,
                              kubeconfig=kubeconfig, check=False)
        self.assertNotEqual(denied.returncode, 0)
        self.assertIn("forbidden", denied.stderr)
        os.unlink(kubeconfig)

    def test_validation_is_strict_an_unknown_field_is_rejected(self):
        ns = self.fresh_namespace()
        objs = objects(helm_render(name="rel", namespace=ns, kube="1.28.0"))
        d = [o for o in objs if o["kind"] == "Deployment"][0]
        sc = d["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        sc["readOnlyRootFileSystem"] = True  # the classic typo
        stream = json.dumps({"apiVersion": "v1", "kind": "List", "items": [d]})
        p = self.kubectl("create", "--validate=strict", "-n", ns, "-f", "-", stdin=stream,
                         check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("readOnlyRootFileSystem", p.stderr)

    def test_chart_regular_sidecar_objects_are_accepted_and_rbac_holds(self):
        ns = self.fresh_namespace()
        objs = objects(helm_render(name="rel", namespace=ns, kube="1.28.0"))
        self.create(ns, objs)
        self.assert_rbac(ns, "rel-ts-kube-agent", "rel-ts-kube-agent-identity")
        self.assert_layout_a(ns, "rel-ts-kube-agent", "rel-ts-kube-agent-identity",
                             "rel-ts-kube-agent")
        self.patch_as_service_account(ns, "rel-ts-kube-agent", "rel-ts-kube-agent-identity")

    def test_chart_layout_b_shared_state_secret_is_accepted_and_rbac_holds(self):
        # Plain tailscaled in your own pod: the agent's Secret is tailscaled's state Secret.
        ns = self.fresh_namespace()
        objs = objects(helm_render(name="rel", namespace=ns, kube="v1.37.2", values={
            "layout": "shared", "deployment.enabled": "false", "targets.secret.name": "ts-state",
            "metrics.service.selector.app": "myapp"}))
        self.assertEqual([o["metadata"]["name"] for o in objs if o["kind"] == "Secret"],
                         ["ts-state"])
        self.create(ns, objs)
        self.assert_rbac(ns, "rel-ts-kube-agent", "ts-state")
        for verb in ("get", "update", "patch"):
            self.assertTrue(self.can_i(ns, "rel-ts-kube-agent", verb, "secrets/ts-state"), verb)
        self.assertFalse(self.can_i(ns, "rel-ts-kube-agent", "create", "secrets"))
        self.assertFalse(self.can_i(ns, "rel-ts-kube-agent", "get",
                                    "secrets/rel-ts-kube-agent-identity"))
        self.patch_as_service_account(ns, "rel-ts-kube-agent", "ts-state")

    def test_chart_metrics_network_policy_is_accepted(self):
        ns = self.fresh_namespace()
        objs = objects(helm_render(name="rel", namespace=ns, kube="v1.37.2", values={
            "metrics.networkPolicy.enabled": "true",
            "metrics.networkPolicy.from[0].namespaceSelector.matchLabels"
            ".kubernetes\\.io/metadata\\.name": "monitoring",
            "metrics.networkPolicy.from[0].podSelector.matchLabels.app": "prometheus"}))
        policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
        self.assertEqual(len(policies), 1)
        stream = json.dumps({"apiVersion": "v1", "kind": "List", "items": policies})
        p = self.kubectl("apply", "--server-side", "--dry-run=server", "-n", ns, "-f", "-",
                         stdin=stream, check=False)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.assertNotIn("Warning", p.stderr)
        self.create(ns, objs)
        got = json.loads(self.kubectl("get", "networkpolicy", "rel-ts-kube-agent-metrics", "-n",
                                      ns, "-o", "json").stdout)
        # What the API server stored is what the chart rendered (nothing dropped or defaulted
        # away, e.g. endPort).
        self.assertEqual(got["spec"]["ingress"], policies[0]["spec"]["ingress"])
        self.assertEqual(got["spec"]["podSelector"], policies[0]["spec"]["podSelector"])

    def test_chart_native_sidecar_objects_are_accepted(self):
        ns = self.fresh_namespace()
        objs = objects(helm_render(name="rel", namespace=ns, kube="v1.37.2"))
        spec = [o for o in objs if o["kind"] == "Deployment"][0]["spec"]["template"]["spec"]
        self.assertEqual([c.get("restartPolicy") for c in spec["initContainers"]],
                         ["Always", "Always"])
        self.create(ns, objs)

    def test_chart_configmap_and_create_combination_is_accepted(self):
        ns = self.fresh_namespace()
        objs = objects(helm_render(name="rel", namespace=ns, kube="1.28.0", values={
            "targets.configMap.enabled": "true", "targets.secret.create": "false",
            "targets.secret.keys": "{device_id,device_fqdn}"}))
        self.create(ns, objs)
        who = f"system:serviceaccount:{ns}:rel-ts-kube-agent"
        for verb, resource, want in (("create", "secrets", "yes"),
                                     ("patch", "configmaps/rel-ts-kube-agent", "yes"),
                                     ("patch", "configmaps/other", "no")):
            p = self.kubectl("auth", "can-i", verb, resource, "-n", ns, "--as", who, check=False)
            self.assertEqual(p.stdout.strip(), want, f"{verb} {resource}")

    def test_reapplying_the_precreated_secrets_keeps_the_written_keys(self):
        """The agent's keys in its Secret, tailscaled's state in its own: an upgrade (or a
        second kubectl apply) of the empty pre-created Secrets keeps both (layout (a))."""
        ns = self.fresh_namespace()
        objs = [o for o in objects(helm_render(name="upg", namespace=ns))
                if o["kind"] == "Secret"]
        self.assertEqual(sorted(o["metadata"]["name"] for o in objs),
                         ["upg-ts-kube-agent", "upg-ts-kube-agent-identity"])
        stream = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
        self.kubectl("apply", "-n", ns, "-f", "-", stdin=stream)
        written = {"upg-ts-kube-agent-identity":
                   {"device_fqdn": base64.b64encode(b"demo.tail3f9a2c.ts.net.").decode()},
                   "upg-ts-kube-agent": {"_machinekey": base64.b64encode(b"state").decode()}}
        for name, data in written.items():
            self.kubectl("patch", "secret", name, "-n", ns, "--type=strategic",
                         "-p", json.dumps({"data": data}))
        self.kubectl("apply", "-n", ns, "-f", "-", stdin=stream)
        for name, data in written.items():
            got = json.loads(self.kubectl("get", "secret", name, "-n", ns, "-o", "json").stdout)
            self.assertEqual(got["data"], data, name)

    def test_kustomize_base_is_accepted_and_rbac_holds(self):
        ns = self.fresh_namespace()
        rendered = self.kubectl("kustomize", KUSTOMIZE_DIR).stdout
        objs = yaml_to_json(rendered, is_text=True)
        for o in objs:
            for s in o.get("subjects") or []:
                s["namespace"] = ns  # what an overlay's `namespace:` does
        self.create(ns, objs)
        self.assert_rbac(ns, "ts-kube-agent", "ts-kube-agent-identity")
        self.assert_layout_a(ns, "ts-kube-agent", "ts-kube-agent-identity", "ts-kube-agent")


if __name__ == "__main__":
    main()
