#!/usr/bin/env python3
"""The Secret and ConfigMaps of deploy/ (kustomize base, chart renders) accepted by kube-emu
(tools/kube-emu, HTTPS, the kinds it serves), and the property the pre-created objects rely
on: re-applying their manifest (an upgrade) keeps the identity keys the agent wrote.

TSK_KUBE_EMU is the kube-emu binary. kube-emu serves Secrets, ConfigMaps and Namespaces only;
the other kinds are checked on a real kube-apiserver (test_apiserver.py)."""

import base64
import json
import os
import subprocess
import tempfile
import time
import unittest

from deploylib import (KUSTOMIZE_DIR, helm_render, kubectl_bin, main, objects, read_text, run,
                       tool, yaml_to_json)

SERVED_KINDS = ("Secret", "ConfigMap")


class KubeEmu(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kubectl_bin = kubectl_bin()
        emu = tool("TSK_KUBE_EMU", "kube-emu (build the kube-emu target)")
        cls.dir = tempfile.mkdtemp(prefix="kube-emu-", dir=os.environ.get("TSK_WORK_DIR"))
        cls.kubeconfig = os.path.join(cls.dir, "kubeconfig")
        port_file = os.path.join(cls.dir, "port")
        cls.log = open(os.path.join(cls.dir, "kube-emu.log"), "w")
        cls.emu = subprocess.Popen(
            [emu, "--gen-certs", os.path.join(cls.dir, "pki"), "--token", "admintoken=admin",
             "--allow-all-user", "admin", "--kubeconfig-out", cls.kubeconfig,
             "--port-file", port_file], stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and read_text(port_file).strip()):
            if cls.emu.poll() is not None or time.monotonic() > deadline:
                cls.tearDownClass()
                raise AssertionError("kube-emu did not start: "
                                     + read_text(os.path.join(cls.dir, "kube-emu.log")))
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.emu.terminate()
        cls.emu.wait(timeout=30)
        cls.log.close()

    def kubectl(self, *args, stdin=None, check=True):
        return run([self.kubectl_bin, "--kubeconfig", self.kubeconfig, "--request-timeout=20s"]
                   + list(args), stdin=stdin, check=check)

    def served(self, objs):
        return [o for o in objs if o["kind"] in SERVED_KINDS]

    def apply(self, ns, objs):
        stream = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
        # kube-emu serves no OpenAPI schema: fields are checked by k8s_schema and the real
        # API server; here the objects go through kubectl apply's real requests.
        return self.kubectl("apply", "--validate=false", "-n", ns, "-f", "-", stdin=stream)

    def test_kustomize_base_secret_is_accepted(self):
        rendered = self.kubectl("kustomize", KUSTOMIZE_DIR).stdout
        objs = self.served(yaml_to_json(rendered, is_text=True))
        # Layout (a): the agent's Secret and tailscaled's state Secret.
        self.assertEqual(sorted((o["kind"], o["metadata"]["name"]) for o in objs),
                         [("Secret", "ts-kube-agent"), ("Secret", "ts-kube-agent-identity")])
        self.apply("default", objs)
        for name in ("ts-kube-agent", "ts-kube-agent-identity"):
            got = json.loads(self.kubectl("get", "secret", name, "-o", "json").stdout)
            self.assertEqual(got["type"], "Opaque")
            self.assertEqual(got["metadata"]["labels"]["app.kubernetes.io/name"],
                             "ts-kube-agent")

    def test_chart_targets_and_config_are_accepted(self):
        objs = self.served(objects(helm_render(name="emu", namespace="default", values={
            "targets.configMap.enabled": "true", "targets.secret.keys": "{device_id}"})))
        self.assertEqual(sorted((o["kind"], o["metadata"]["name"]) for o in objs), [
            ("ConfigMap", "emu-ts-kube-agent"), ("ConfigMap", "emu-ts-kube-agent-config"),
            ("Secret", "emu-ts-kube-agent"), ("Secret", "emu-ts-kube-agent-identity")])
        self.apply("default", objs)
        cfg = json.loads(self.kubectl("get", "configmap", "emu-ts-kube-agent-config",
                                      "-o", "json").stdout)
        self.assertIn("secret-keys", cfg["data"]["config.yaml"])

    def test_reapplying_the_precreated_secrets_keeps_the_written_keys(self):
        # The agent's keys in its Secret, tailscaled's state in its own: an upgrade (or a
        # second kubectl apply) of the empty pre-created Secrets keeps both.
        objs = self.served(objects(helm_render(name="upg", namespace="default")))
        self.apply("default", objs)
        written = {"upg-ts-kube-agent-identity":
                   {"device_fqdn": base64.b64encode(b"demo.tail3f9a2c.ts.net.").decode()},
                   "upg-ts-kube-agent": {"_machinekey": base64.b64encode(b"state").decode()}}
        for name, data in written.items():
            self.kubectl("patch", "secret", name, "--type=strategic",
                         "-p", json.dumps({"data": data}))
        self.apply("default", objs)  # what an upgrade (or a second kubectl apply) does
        for name, data in written.items():
            got = json.loads(self.kubectl("get", "secret", name, "-o", "json").stdout)
            self.assertEqual(got["data"], data, name)


if __name__ == "__main__":
    main()
