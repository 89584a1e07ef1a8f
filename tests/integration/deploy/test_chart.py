#!/usr/bin/env python3
"""The Helm chart, rendered by `helm template` (the pinned Helm v4 of
scripts/real-apiserver/build.sh) for the defaults and the main value combinations; the rendered
objects are checked field by field."""

import os
import re
import shutil
import tempfile
import unittest

import k8s_schema
from deploylib import (AGENT_CONTAINER, CHART_DIR, SOURCE_DIR, STANDARD_LABELS,
                       agent_container_problems, container, env_of, find, helm_bin, helm_notes,
                       helm_render, helm_render_yaml, main, objects, one, pod_spec, read_text,
                       restricted_violations, run, selector_matches, yaml_to_json)

MONITORING = "monitoring.coreos.com/v1"
FULLNAME = "rel-ts-kube-agent"  # release "rel", chart "ts-kube-agent"
IDENTITY = FULLNAME + "-identity"  # layout own: the agent's Secret; FULLNAME is tailscaled's


def render(**kw):
    return objects(helm_render(**kw))


def agent_role(objs):
    return one(objs, "Role", FULLNAME)


def tailscaled_role(objs):
    return one(objs, "Role", FULLNAME + "-tailscaled")


def grants(objs):
    """Every (resource, verb, name) the chart's Roles give the pod's service account ("" name:
    any), both Roles together: the pod has one service account."""
    out = set()
    for role in find(objs, "Role"):
        for r in role["rules"]:
            for res in r["resources"]:
                for verb in r["verbs"]:
                    for name in r.get("resourceNames") or [""]:
                        out.add((res, verb, name))
    return out


def state_grants(name):
    return {("secrets", v, name) for v in ("get", "update", "patch")}


def identity_grants(name, resource="secrets"):
    return {(resource, v, name) for v in ("get", "patch")}


def rules_by_resource(role):
    out = {}
    for r in role["rules"]:
        for res in r["resources"]:
            out.setdefault(res, []).append(r)
    return out


class Defaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = render()

    def test_renders_the_expected_objects(self):
        kinds = sorted(o["kind"] for o in self.objs)
        self.assertEqual(kinds, ["Deployment", "Role", "Role", "RoleBinding", "RoleBinding",
                                 "Secret", "Secret", "Service", "ServiceAccount"])

    def test_agent_role_grants_only_get_and_patch_on_the_named_secret(self):
        self.assertEqual(agent_role(self.objs)["rules"], [{
            "apiGroups": [""], "resources": ["secrets"], "resourceNames": [IDENTITY],
            "verbs": ["get", "patch"]}])

    def test_role_binding_binds_the_role_to_the_service_account(self):
        rb = one(self.objs, "RoleBinding", FULLNAME)
        sa = one(self.objs, "ServiceAccount")
        self.assertEqual(rb["roleRef"], {"apiGroup": "rbac.authorization.k8s.io",
                                         "kind": "Role", "name": FULLNAME})
        self.assertEqual(rb["subjects"], [{"kind": "ServiceAccount",
                                           "name": sa["metadata"]["name"], "namespace": "ns1"}])
        spec = pod_spec(one(self.objs, "Deployment"))
        self.assertEqual(spec["serviceAccountName"], sa["metadata"]["name"])

    def test_precreated_secrets_carry_no_data(self):
        for name in (IDENTITY, FULLNAME):
            secret = one(self.objs, "Secret", name)
            self.assertNotIn("data", secret)
            self.assertNotIn("stringData", secret)
            self.assertEqual(secret["type"], "Opaque")

    def test_agent_container_is_restricted_with_probes_on_the_admin_port(self):
        spec = pod_spec(one(self.objs, "Deployment"))
        self.assertEqual(agent_container_problems(container(spec, AGENT_CONTAINER)), [])

    def test_whole_pod_passes_the_restricted_pod_security_standard(self):
        self.assertEqual(restricted_violations(pod_spec(one(self.objs, "Deployment"))), [])

    def test_agent_and_tailscaled_share_the_socket_through_an_emptydir(self):
        spec = pod_spec(one(self.objs, "Deployment"))
        agent, ts = container(spec, AGENT_CONTAINER), container(spec, "tailscaled")
        self.assertEqual(env_of(agent)["TS_SOCKET"], "/var/run/tailscale/tailscaled.sock")
        self.assertEqual(env_of(ts)["TS_SOCKET"], env_of(agent)["TS_SOCKET"])
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in (agent, ts):
            mounts = [m for m in c["volumeMounts"] if m["mountPath"] == "/var/run/tailscale"]
            self.assertEqual(len(mounts), 1, c["name"])
            self.assertEqual(volumes[mounts[0]["name"]], {"name": mounts[0]["name"],
                                                          "emptyDir": {}})
        self.assertTrue([m for m in agent["volumeMounts"] if m.get("readOnly")])

    def test_layout_a_agent_publishes_to_a_secret_of_its_own(self):
        # containerboot writes device_id/device_fqdn/device_ips into its state Secret itself
        # (tailscale cmd/containerboot storeDeviceID, storeDeviceEndpoints): the agent must
        # not be a second writer there.
        spec = pod_spec(one(self.objs, "Deployment"))
        agent_env = env_of(container(spec, AGENT_CONTAINER))
        self.assertEqual(agent_env["TS_KUBE_SECRET"], IDENTITY)
        self.assertEqual(agent_env["TS_KUBE_CONFIGMAP"], "")
        self.assertEqual(agent_env["TS_KUBE_CREATE_OBJECTS"], "false")
        self.assertEqual(agent_env["TS_KUBE_FOREIGN_KEYS"], "skip")
        self.assertEqual(agent_env["POD_UID"], {"fieldRef": {"fieldPath": "metadata.uid"}})
        self.assertEqual(agent_env["POD_NAMESPACE"],
                         {"fieldRef": {"fieldPath": "metadata.namespace"}})
        self.assertEqual(env_of(container(spec, "tailscaled"))["TS_KUBE_SECRET"], FULLNAME)
        self.assertEqual(tailscaled_role(self.objs)["rules"], [{
            "apiGroups": [""], "resources": ["secrets"], "resourceNames": [FULLNAME],
            "verbs": ["get", "update", "patch"]}])

    def test_rbac_is_exactly_the_two_named_secrets(self):
        # The pod's one service account holds both Roles: get/patch on the agent's Secret,
        # get/update/patch on tailscaled's; no create (both pre-created), nothing else.
        self.assertEqual(grants(self.objs), identity_grants(IDENTITY) | state_grants(FULLNAME))
        self.assertEqual({o["metadata"]["name"] for o in find(self.objs, "Secret")},
                         {IDENTITY, FULLNAME})

    def test_image_tag_defaults_to_the_app_version(self):
        spec = pod_spec(one(self.objs, "Deployment"))
        app_version = re.search(r'^appVersion:\s*"?([^"\n]+)"?',
                                read_text(os.path.join(CHART_DIR, "Chart.yaml")), re.M)[1]
        self.assertEqual(container(spec, AGENT_CONTAINER)["image"], f"ts-kube-agent:{app_version}")

    def test_every_object_has_the_standard_consistent_labels(self):
        for o in self.objs:
            labels = o["metadata"].get("labels") or {}
            for k in STANDARD_LABELS:
                self.assertIn(k, labels, f"{o['kind']} {o['metadata']['name']}")
            self.assertEqual(labels["app.kubernetes.io/instance"], "rel")
            self.assertEqual(labels["app.kubernetes.io/name"], "ts-kube-agent")
            self.assertEqual(labels["app.kubernetes.io/managed-by"], "Helm")
            self.assertEqual(labels["helm.sh/chart"], "ts-kube-agent-0.1.0")

    def test_selectors_pick_the_example_pods(self):
        d = one(self.objs, "Deployment")
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selector_matches(d["spec"]["selector"]["matchLabels"], pod_labels))
        svc = one(self.objs, "Service")
        self.assertTrue(selector_matches(svc["spec"]["selector"], pod_labels))
        self.assertEqual(svc["spec"]["ports"], [{"name": "metrics", "port": 9002,
                                                 "targetPort": 9002, "protocol": "TCP"}])

    def test_one_replica_replaced_not_rolled(self):
        d = one(self.objs, "Deployment")
        self.assertEqual(d["spec"]["replicas"], 1)
        self.assertEqual(d["spec"]["strategy"], {"type": "Recreate"})


class SidecarPlacement(unittest.TestCase):
    def placement(self, kube, mode=None):
        values = {"sidecar.mode": mode} if mode else {}
        spec = pod_spec(one(render(kube=kube, values=values), "Deployment"))
        init = [c["name"] for c in spec.get("initContainers") or []]
        regular = [c["name"] for c in spec["containers"]]
        return spec, init, regular

    def assert_native(self, spec, init, regular):
        self.assertEqual(init, ["tailscaled", AGENT_CONTAINER], "agent after tailscaled")
        self.assertEqual(regular, ["app"])
        for c in spec["initContainers"]:
            self.assertEqual(c.get("restartPolicy"), "Always", c["name"])

    def assert_regular(self, spec, init, regular):
        self.assertEqual(init, [])
        self.assertEqual(regular, ["tailscaled", AGENT_CONTAINER, "app"])
        for c in spec["containers"]:
            self.assertNotIn("restartPolicy", c)

    def test_native_sidecar_on_1_30(self):
        self.assert_native(*self.placement("1.30.0"))

    def test_native_sidecar_on_1_29(self):
        self.assert_native(*self.placement("v1.29.0"))

    def test_regular_container_on_1_28(self):
        self.assert_regular(*self.placement("1.28.9"))

    def test_force_native_before_1_29_is_refused(self):
        # Before 1.29 the API server drops an init container's restartPolicy: tailscaled would
        # be an init container that never exits, and the pod would stay in Init.
        p = helm_render(kube="1.28.0", values={"sidecar.mode": "native"}, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("sidecar.mode native needs Kubernetes >= 1.29 (native sidecars), and this "
                      "cluster is v1.28.0: use sidecar.mode auto or regular", p.stderr)

    def test_force_regular_on_1_30(self):
        self.assert_regular(*self.placement("1.30.0", "regular"))

    def test_both_placements_keep_the_agent_restricted(self):
        for kube in ("1.28.0", "1.30.0"):
            spec = self.placement(kube)[0]
            self.assertEqual(agent_container_problems(container(spec, AGENT_CONTAINER)), [])
            self.assertEqual(restricted_violations(spec), [])

    def test_without_the_app_tailscaled_is_the_main_container(self):
        objs = render(values={"deployment.app.enabled": "false"})
        spec = pod_spec(one(objs, "Deployment"))
        self.assertEqual([c["name"] for c in spec["initContainers"]], [AGENT_CONTAINER])
        self.assertEqual([c["name"] for c in spec["containers"]], ["tailscaled"])

    def test_unknown_mode_is_an_error_naming_the_value(self):
        p = helm_render(values={"sidecar.mode": "sometimes"}, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at '/sidecar/mode': value must be one of 'auto', 'native', 'regular'",
                      p.stderr)


class Targets(unittest.TestCase):
    def test_configmap_only(self):
        objs = render(values={"targets.secret.enabled": "false",
                              "targets.configMap.enabled": "true"})
        rules = rules_by_resource(agent_role(objs))
        self.assertEqual(list(rules), ["configmaps"])
        self.assertEqual(rules["configmaps"], [{
            "apiGroups": [""], "resources": ["configmaps"], "resourceNames": [FULLNAME],
            "verbs": ["get", "patch"]}])
        self.assertEqual(len(find(objs, "ConfigMap", FULLNAME)), 1)
        spec = pod_spec(one(objs, "Deployment"))
        env = env_of(container(spec, AGENT_CONTAINER))
        self.assertEqual(env["TS_KUBE_SECRET"], "")
        self.assertEqual(env["TS_KUBE_CONFIGMAP"], FULLNAME)
        # tailscaled keeps its pre-created state Secret, the only Secret.
        state = env_of(container(spec, "tailscaled"))["TS_KUBE_SECRET"]
        self.assertEqual(state, FULLNAME)
        self.assertEqual([o["metadata"]["name"] for o in find(objs, "Secret")], [FULLNAME])
        self.assertEqual(grants(objs), identity_grants(FULLNAME, "configmaps")
                         | state_grants(FULLNAME))

    def test_secret_and_configmap_with_custom_names(self):
        objs = render(values={"targets.secret.name": "node-identity",
                              "targets.configMap.enabled": "true",
                              "targets.configMap.name": "node-identity-public"})
        rules = rules_by_resource(agent_role(objs))
        self.assertEqual(rules["secrets"][0]["resourceNames"], ["node-identity"])
        self.assertEqual(rules["configmaps"][0]["resourceNames"], ["node-identity-public"])
        for r in agent_role(objs)["rules"]:
            self.assertEqual(r["verbs"], ["get", "patch"])
        self.assertEqual(len(find(objs, "Secret", "node-identity")), 1)
        self.assertEqual(len(find(objs, "ConfigMap", "node-identity-public")), 1)
        env = env_of(container(pod_spec(one(objs, "Deployment")), AGENT_CONTAINER))
        self.assertEqual((env["TS_KUBE_SECRET"], env["TS_KUBE_CONFIGMAP"]),
                         ("node-identity", "node-identity-public"))

    def test_not_precreated_adds_create_without_resource_names(self):
        objs = render(values={"targets.secret.create": "false"})
        role = agent_role(objs)
        self.assertEqual(role["rules"], [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [IDENTITY],
             "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}])
        self.assertEqual(find(objs, "Secret", IDENTITY), [])
        env = env_of(container(pod_spec(one(objs, "Deployment")), AGENT_CONTAINER))
        self.assertEqual(env["TS_KUBE_CREATE_OBJECTS"], "true")

    def test_allow_create_off_keeps_the_role_to_get_and_patch(self):
        objs = render(values={"targets.secret.create": "false", "rbac.allowCreate": "false"})
        self.assertEqual([r["verbs"] for r in agent_role(objs)["rules"]], [["get", "patch"]])
        env = env_of(container(pod_spec(one(objs, "Deployment")), AGENT_CONTAINER))
        self.assertEqual(env["TS_KUBE_CREATE_OBJECTS"], "false")

    def test_verbs_are_minimal_in_every_combination(self):
        combos = [{}, {"targets.configMap.enabled": "true"},
                  {"targets.secret.enabled": "false", "targets.configMap.enabled": "true",
                   "targets.configMap.create": "false"},
                  {"targets.secret.create": "false", "targets.configMap.enabled": "true"}]
        for values in combos:
            for r in agent_role(render(values=values))["rules"]:
                if r["verbs"] == ["create"]:
                    self.assertNotIn("resourceNames", r, values)
                else:
                    self.assertEqual(r["verbs"], ["get", "patch"], values)
                    self.assertEqual(len(r["resourceNames"]), 1, values)

    def test_no_target_is_an_error_saying_what_to_enable(self):
        p = helm_render(values={"targets.secret.enabled": "false"}, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("enable targets.secret or targets.configMap", p.stderr)

    def test_invalid_object_name_is_an_error(self):
        p = helm_render(values={"targets.secret.name": "Not_Valid"}, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at '/targets/secret/name'", p.stderr)
        self.assertIn("'Not_Valid' does not match pattern", p.stderr)

    def test_keep_on_uninstall_annotates_the_secret(self):
        objs = render(values={"targets.secret.keepOnUninstall": "true"})
        self.assertEqual(one(objs, "Secret", IDENTITY)["metadata"]["annotations"],
                         {"helm.sh/resource-policy": "keep"})
        self.assertNotIn("annotations", one(objs, "Secret", FULLNAME)["metadata"])

    def test_key_sets_go_to_the_agent_config_file(self):
        objs = render(values={"targets.secret.keys": "{device_id,device_fqdn,tags}",
                              "config.publish-wait": "50ms:2s"})
        cm = one(objs, "ConfigMap", FULLNAME + "-config")
        cfg = yaml_to_json(cm["data"]["config.yaml"], is_text=True)[0]
        self.assertEqual(cfg, {"secret-keys": ["device_id", "device_fqdn", "tags"],
                               "publish-wait": "50ms:2s"})
        spec = pod_spec(one(objs, "Deployment"))
        agent = container(spec, AGENT_CONTAINER)
        self.assertEqual(env_of(agent)["TS_AGENT_CONFIG"], "/etc/ts-kube-agent/config.yaml")
        mount = [m for m in agent["volumeMounts"] if m["mountPath"] == "/etc/ts-kube-agent"][0]
        volume = [v for v in spec["volumes"] if v["name"] == mount["name"]][0]
        self.assertEqual(volume["configMap"]["name"], FULLNAME + "-config")
        self.assertIn("checksum/config", one(objs, "Deployment")["spec"]["template"]
                      ["metadata"]["annotations"])

    def test_no_config_file_by_default(self):
        objs = render()
        self.assertEqual(find(objs, "ConfigMap"), [])
        env = env_of(container(pod_spec(one(objs, "Deployment")), AGENT_CONTAINER))
        self.assertNotIn("TS_AGENT_CONFIG", env)


class Metrics(unittest.TestCase):
    def test_service_monitor_when_enabled_and_the_api_exists(self):
        objs = render(values={"metrics.serviceMonitor.enabled": "true",
                              "metrics.serviceMonitor.labels.release": "prom"},
                      apis=[MONITORING])
        sm = one(objs, "ServiceMonitor")
        svc = one(objs, "Service")
        self.assertTrue(selector_matches(sm["spec"]["selector"]["matchLabels"],
                                         svc["metadata"]["labels"]))
        self.assertEqual(sm["metadata"]["labels"]["release"], "prom")
        endpoint = sm["spec"]["endpoints"][0]
        self.assertEqual((endpoint["port"], endpoint["path"], endpoint["interval"]),
                         ("metrics", "/metrics", "30s"))
        self.assertIn("metrics", [p["name"] for p in svc["spec"]["ports"]])
        self.assertEqual(sm["spec"]["namespaceSelector"], {"matchNames": ["ns1"]})

    def test_no_service_monitor_without_the_api_and_notes_say_why(self):
        objs = objects(helm_render(values={"metrics.serviceMonitor.enabled": "true"}))
        self.assertEqual(find(objs, "ServiceMonitor"), [])
        notes = helm_notes(values={"metrics.serviceMonitor.enabled": "true"})
        self.assertIn("does not serve\nmonitoring.coreos.com/v1", notes)

    def test_no_service_monitor_when_disabled(self):
        self.assertEqual(find(render(apis=[MONITORING]), "ServiceMonitor"), [])

    def test_prometheus_rule_carries_the_deploy_prometheus_rules(self):
        objs = render(values={"metrics.prometheusRule.enabled": "true"}, apis=[MONITORING])
        rule = one(objs, "PrometheusRule")
        plain = yaml_to_json(os.path.join(SOURCE_DIR, "deploy", "prometheus",
                                          "ts-kube-agent.rules.yaml"))[0]
        self.assertEqual(rule["spec"], plain)
        self.assertEqual(find(render(values={"metrics.prometheusRule.enabled": "true"}),
                              "PrometheusRule"), [])

    def test_prometheus_rule_per_alert_switches_and_runbook_urls(self):
        plain = yaml_to_json(os.path.join(SOURCE_DIR, "deploy", "prometheus",
                                          "ts-kube-agent.rules.yaml"))[0]
        names = [r["alert"] for g in plain["groups"] for r in g["rules"]]
        objs = render(values={"metrics.prometheusRule.enabled": "true",
                              "metrics.prometheusRule.disabled":
                                  "{TsKubeAgentBusFlapping,TsKubeAgentAbsent}",
                              "metrics.prometheusRule.runbookUrl": "https://wiki.example.com/r"},
                      apis=[MONITORING])
        rules = [r for g in one(objs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
        self.assertEqual([r["alert"] for r in rules],
                         [n for n in names if n not in ("TsKubeAgentBusFlapping",
                                                        "TsKubeAgentAbsent")])
        for r in rules:
            self.assertEqual(r["annotations"]["runbook_url"],
                             "https://wiki.example.com/r#" + r["alert"].lower())
        p = helm_render(apis=[MONITORING], check=False,
                        values={"metrics.prometheusRule.enabled": "true",
                                "metrics.prometheusRule.disabled": "{TsKubeAgentBusFlap}"})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('metrics.prometheusRule.disabled: no alert "TsKubeAgentBusFlap"', p.stderr)

    def test_custom_port_flows_to_probes_container_env_and_service(self):
        objs = render(values={"metrics.port": "9102"})
        agent = container(pod_spec(one(objs, "Deployment")), AGENT_CONTAINER)
        self.assertEqual(agent_container_problems(agent, port=9102), [])
        self.assertEqual(env_of(agent)["TS_LOCAL_ADDR_PORT"], "[::]:9102")
        self.assertEqual(one(objs, "Service")["spec"]["ports"][0]["targetPort"], 9102)

    def test_bad_port_is_an_error(self):
        p = helm_render(values={"metrics.port": "70000"}, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at '/metrics/port': maximum: got 70,000, want 65,535", p.stderr)


class Layouts(unittest.TestCase):
    """Layout (a), "own" (the default): the agent publishes to a Secret of its own, tailscaled
    (containerboot) keeps its state Secret. Layout (b), "shared": plain tailscaled in your own
    pod; the agent writes the upstream keys into tailscaled's state Secret
    (docs/OPERATIONS.md, "Layouts: who writes which key")."""

    SHARED = {"layout": "shared", "deployment.enabled": "false"}

    def refused(self, values, message):
        p = helm_render(values=values, check=False)
        self.assertNotEqual(p.returncode, 0, f"{values} rendered")
        self.assertIn(message, p.stderr, values)

    def test_shared_targets_the_state_secret(self):
        objs = render(values=self.SHARED)
        self.assertEqual(grants(objs), identity_grants(FULLNAME) | state_grants(FULLNAME))
        self.assertEqual(agent_role(objs)["rules"][0]["resourceNames"], [FULLNAME])
        self.assertEqual([o["metadata"]["name"] for o in find(objs, "Secret")], [FULLNAME])
        self.assertEqual(find(objs, "Deployment"), [])

    def test_shared_with_a_named_state_secret(self):
        for values in ({"targets.secret.name": "ts-state"},
                       {"deployment.tailscaled.stateSecret": "ts-state"},
                       {"targets.secret.name": "ts-state",
                        "deployment.tailscaled.stateSecret": "ts-state"}):
            objs = render(values=dict(self.SHARED, **values))
            self.assertEqual(grants(objs), identity_grants("ts-state") | state_grants("ts-state"),
                             values)
            self.assertEqual([o["metadata"]["name"] for o in find(objs, "Secret")], ["ts-state"])

    def test_shared_state_secret_not_precreated_gets_create_for_both(self):
        objs = render(values=dict(self.SHARED, **{"targets.secret.create": "false"}))
        self.assertEqual(find(objs, "Secret"), [])
        self.assertEqual(grants(objs), identity_grants(FULLNAME) | state_grants(FULLNAME)
                         | {("secrets", "create", "")})

    def test_shared_with_the_example_containerboot_is_refused(self):
        self.refused({"layout": "shared"}, "layout shared is for plain tailscaled")

    def test_shared_names_must_agree(self):
        self.refused(dict(self.SHARED, **{"targets.secret.name": "a",
                                          "deployment.tailscaled.stateSecret": "b"}),
                     'layout shared: targets.secret.name "a" and '
                     'deployment.tailscaled.stateSecret "b" must name the same Secret')

    def test_shared_needs_the_secret_target(self):
        self.refused(dict(self.SHARED, **{"targets.secret.enabled": "false",
                                          "targets.configMap.enabled": "true"}),
                     "targets.secret.enabled must be true")

    def test_own_refuses_the_state_secret_as_the_agents_target(self):
        self.refused({"targets.secret.name": FULLNAME},
                     f'targets.secret.name "{FULLNAME}" is tailscaled\'s state Secret')
        self.refused({"targets.secret.name": "x", "deployment.tailscaled.stateSecret": "x"},
                     "set layout=shared for plain tailscaled without containerboot")

    def test_unknown_layout_is_refused(self):
        self.refused({"layout": "both"}, "at '/layout': value must be one of 'own', 'shared'")

    def test_own_with_named_secrets(self):
        objs = render(values={"targets.secret.name": "node-identity",
                              "deployment.tailscaled.stateSecret": "node-state"})
        spec = pod_spec(one(objs, "Deployment"))
        self.assertEqual(env_of(container(spec, AGENT_CONTAINER))["TS_KUBE_SECRET"],
                         "node-identity")
        self.assertEqual(env_of(container(spec, "tailscaled"))["TS_KUBE_SECRET"], "node-state")
        self.assertEqual(grants(objs), identity_grants("node-identity")
                         | state_grants("node-state"))
        self.assertEqual(sorted(o["metadata"]["name"] for o in find(objs, "Secret")),
                         ["node-identity", "node-state"])

    def test_own_state_secret_not_precreated_gives_tailscaled_create(self):
        objs = render(values={"deployment.tailscaled.createStateSecret": "false"})
        self.assertEqual([o["metadata"]["name"] for o in find(objs, "Secret")], [IDENTITY])
        self.assertEqual(tailscaled_role(objs)["rules"][1],
                         {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]})
        self.assertEqual(agent_role(objs)["rules"], [{
            "apiGroups": [""], "resources": ["secrets"], "resourceNames": [IDENTITY],
            "verbs": ["get", "patch"]}])

    def test_own_state_secret_kept_on_uninstall(self):
        objs = render(values={"deployment.tailscaled.keepStateSecretOnUninstall": "true"})
        self.assertEqual(one(objs, "Secret", FULLNAME)["metadata"]["annotations"],
                         {"helm.sh/resource-policy": "keep"})
        self.assertNotIn("annotations", one(objs, "Secret", IDENTITY)["metadata"])

    def test_own_without_tailscaled_rbac_or_example_knows_no_state_secret(self):
        objs = render(values={"deployment.enabled": "false", "rbac.tailscaled": "false",
                              "targets.secret.name": FULLNAME})
        self.assertEqual([o["metadata"]["name"] for o in find(objs, "Secret")], [FULLNAME])
        self.assertEqual(grants(objs), identity_grants(FULLNAME))

    def test_notes_name_both_secrets(self):
        text = helm_notes()
        self.assertIn(f"Secret    ns1/{IDENTITY}", text)
        self.assertIn(f"tailscaled (containerboot) keeps its state, and writes its own device "
                      f"keys, in Secret ns1/{FULLNAME}", text)
        text = helm_notes(values=self.SHARED)
        self.assertIn(f"the agent writes the upstream keys into tailscaled's state Secret "
                      f"ns1/{FULLNAME}", text)


class ForeignKeys(unittest.TestCase):
    def agent_env(self, **values):
        return env_of(container(pod_spec(one(render(values=values), "Deployment")),
                                AGENT_CONTAINER))

    def test_default_skip_and_overwrite_reaches_the_agent(self):
        self.assertEqual(self.agent_env()["TS_KUBE_FOREIGN_KEYS"], "skip")
        self.assertEqual(self.agent_env(foreignKeys="overwrite")["TS_KUBE_FOREIGN_KEYS"],
                         "overwrite")

    def test_other_values_are_refused(self):
        p = helm_render(values={"foreignKeys": "take"}, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at '/foreignKeys': value must be one of 'skip', 'overwrite'", p.stderr)
        p = helm_render(values={"config.foreign-keys": "overwrite"}, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("config.foreign-keys is set by the chart through an environment "
                      "variable, which wins over the config file: use foreignKeys instead",
                      p.stderr)


def peer_matches(peer, policy_ns, src_ns, src_ns_labels, src_labels):
    """A NetworkPolicyPeer (matchLabels selectors) against a source pod, as Kubernetes reads
    it: podSelector alone means pods of the policy's namespace; namespaceSelector alone every
    pod of the matching namespaces; both, both."""
    if "ipBlock" in peer:
        return False
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    ns_ok = (src_ns == policy_ns) if ns_sel is None else selector_matches(
        ns_sel.get("matchLabels") or {}, src_ns_labels)
    pod_ok = pod_sel is None or selector_matches(pod_sel.get("matchLabels") or {}, src_labels)
    return ns_ok and pod_ok


def port_matches(p, protocol, port):
    return (p.get("protocol", "TCP") == protocol and
            p["port"] <= port <= p.get("endPort", p["port"]))


def np_allows(policy, src_ns, src_labels, protocol, port, policy_ns="ns1"):
    """Whether the policy lets a pod (namespace src_ns, labels) reach port/protocol of the pods
    it selects: some ingress rule whose `from` (absent: everyone) and `ports` (absent: all)
    both match."""
    ns_labels = {"kubernetes.io/metadata.name": src_ns}
    for rule in policy["spec"].get("ingress") or []:
        peers = rule.get("from")
        if peers is not None and not any(peer_matches(p, policy_ns, src_ns, ns_labels,
                                                      src_labels) for p in peers):
            continue
        ports = rule.get("ports")
        if ports is None or any(port_matches(p, protocol, port) for p in ports):
            return True
    return False


PROMETHEUS_PEER = {
    "metrics.networkPolicy.from[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name":
        "monitoring",
    "metrics.networkPolicy.from[0].podSelector.matchLabels.app\\.kubernetes\\.io/name":
        "prometheus"}
PROMETHEUS = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
STRANGER = ("other", {"app": "curl"})


class NetworkPolicy(unittest.TestCase):
    def policy(self, **values):
        objs = render(values=dict({"metrics.networkPolicy.enabled": "true"}, **values))
        return objs, one(objs, "NetworkPolicy", FULLNAME + "-metrics")

    def test_off_by_default(self):
        self.assertEqual(find(render(), "NetworkPolicy"), [])

    def test_only_the_given_peers_reach_the_admin_port_other_ports_stay_open(self):
        objs, np = self.policy(**PROMETHEUS_PEER)
        pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selector_matches(np["spec"]["podSelector"]["matchLabels"], pod_labels))
        self.assertEqual(np["spec"]["policyTypes"], ["Ingress"])
        self.assertTrue(np_allows(np, *PROMETHEUS, "TCP", 9002))
        self.assertFalse(np_allows(np, *STRANGER, "TCP", 9002))
        self.assertFalse(np_allows(np, "monitoring", {"app": "grafana"}, "TCP", 9002))
        self.assertFalse(np_allows(np, "ns1", {"app.kubernetes.io/name": "prometheus"}, "TCP",
                                   9002), "the namespace selector must match too")
        for protocol, port in (("TCP", 1), ("TCP", 8080), ("TCP", 9001), ("TCP", 9003),
                               ("TCP", 65535), ("UDP", 41641), ("UDP", 9002), ("SCTP", 9002)):
            self.assertTrue(np_allows(np, *STRANGER, protocol, port), (protocol, port))

    def test_no_peers_means_nobody_not_everybody(self):
        _, np = self.policy()
        for who in (PROMETHEUS, STRANGER):
            self.assertFalse(np_allows(np, *who, "TCP", 9002), who)
        self.assertTrue(np_allows(np, *STRANGER, "TCP", 8080))
        for rule in np["spec"]["ingress"]:
            self.assertIn("ports", rule, "a rule without ports would open the admin port")

    def test_allow_other_ports_false_leaves_only_the_admin_port_rule(self):
        _, np = self.policy(**PROMETHEUS_PEER, **{"metrics.networkPolicy.allowOtherPorts":
                                                  "false"})
        self.assertEqual(len(np["spec"]["ingress"]), 1)
        self.assertTrue(np_allows(np, *PROMETHEUS, "TCP", 9002))
        self.assertFalse(np_allows(np, *STRANGER, "TCP", 8080))
        self.assertFalse(np_allows(np, *PROMETHEUS, "UDP", 41641))

    def test_admin_port_at_the_ends_of_the_range(self):
        for port in (1, 65535):
            _, np = self.policy(**PROMETHEUS_PEER, **{"metrics.port": str(port)})
            self.assertTrue(np_allows(np, *PROMETHEUS, "TCP", port))
            self.assertFalse(np_allows(np, *STRANGER, "TCP", port))
            other = 2 if port == 1 else 65534
            self.assertTrue(np_allows(np, *STRANGER, "TCP", other))
            for rule in np["spec"]["ingress"]:
                for p in rule["ports"]:
                    self.assertLessEqual(p["port"], p.get("endPort", p["port"]), p)

    def test_custom_port_and_your_own_pods(self):
        objs, np = self.policy(**PROMETHEUS_PEER, **{
            "metrics.port": "9102", "deployment.enabled": "false",
            "metrics.service.selector.app": "myapp"})
        self.assertEqual(np["spec"]["podSelector"], {"matchLabels": {"app": "myapp"}})
        self.assertTrue(np_allows(np, *PROMETHEUS, "TCP", 9102))
        self.assertFalse(np_allows(np, *STRANGER, "TCP", 9102))
        self.assertTrue(np_allows(np, *STRANGER, "TCP", 9002))

    def test_without_pods_to_select_it_is_refused(self):
        p = helm_render(values={"metrics.networkPolicy.enabled": "true",
                                "deployment.enabled": "false"}, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("metrics.networkPolicy.enabled needs the pods to select", p.stderr)

    def test_peer_fields_are_checked_by_the_schema(self):
        p = helm_render(values={"metrics.networkPolicy.enabled": "true",
                                "metrics.networkPolicy.from[0].podSelectr.matchLabels.a": "b"},
                        check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at '/metrics/networkPolicy/from/0'", p.stderr)


def operator_relabel_keep(configs, labels):
    """relabel_keep for the Prometheus Operator's spelling (sourceLabels)."""
    return relabel_keep([{"source_labels": c.get("sourceLabels", []),
                          **{k: v for k, v in c.items() if k != "sourceLabels"}}
                         for c in configs], labels)


class PodMonitor(unittest.TestCase):
    def render_pm(self, apis=(MONITORING,), **values):
        objs = render(values=dict({"metrics.podMonitor.enabled": "true"}, **values), apis=apis)
        return objs, find(objs, "PodMonitor")

    def test_off_by_default_and_without_the_api(self):
        self.assertEqual(find(render(apis=[MONITORING]), "PodMonitor"), [])
        self.assertEqual(self.render_pm(apis=())[1], [])
        notes = helm_notes(values={"metrics.podMonitor.enabled": "true"})
        self.assertIn("no PodMonitor was created", notes)

    def test_scrapes_the_agent_container_of_the_example_pods(self):
        objs, pms = self.render_pm(**{"metrics.podMonitor.labels.release": "prom"})
        self.assertEqual(len(pms), 1)
        pm = pms[0]
        self.assertEqual(pm["metadata"]["labels"]["release"], "prom")
        spec = pod_spec(one(objs, "Deployment"))
        pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selector_matches(pm["spec"]["selector"]["matchLabels"], pod_labels))
        ep = pm["spec"]["podMetricsEndpoints"][0]
        self.assertEqual((ep["port"], ep["path"], ep["interval"], ep["scrapeTimeout"]),
                         ("metrics", "/metrics", "30s", "10s"))
        # Prometheus makes one target per container port; only the agent's stays.
        kept = []
        for c in spec.get("initContainers", []) + spec["containers"]:
            for port in c.get("ports") or [{"name": ""}]:
                if port.get("name") != ep["port"]:
                    continue
                if operator_relabel_keep(ep["relabelings"], {
                        "__meta_kubernetes_pod_container_name": c["name"]}):
                    kept.append(c["name"])
        self.assertEqual(kept, [AGENT_CONTAINER])
        self.assertFalse(operator_relabel_keep(ep["relabelings"], {
            "__meta_kubernetes_pod_container_name": "app"}))

    def test_selector_falls_back_to_the_service_selector(self):
        base = {"deployment.enabled": "false", "metrics.service.selector.app": "myapp"}
        pm = self.render_pm(**base)[1][0]
        self.assertEqual(pm["spec"]["selector"], {"matchLabels": {"app": "myapp"}})
        pm = self.render_pm(**base, **{"metrics.podMonitor.selector.tier": "web"})[1][0]
        self.assertEqual(pm["spec"]["selector"], {"matchLabels": {"tier": "web"}})
        self.assertEqual(self.render_pm(**{"deployment.enabled": "false"})[1], [])

    def test_static_example_is_the_rendered_template(self):
        # deploy/prometheus/podmonitor.yaml is written by deploy/regenerate.py from the
        # template: one source of truth.
        rendered = objects(helm_render(
            name="ts-kube-agent", namespace="default", apis=[MONITORING],
            values={"deployment.enabled": "false", "metrics.podMonitor.enabled": "true",
                    "metrics.podMonitor.selector.app": "myapp"}))
        pm = one(rendered, "PodMonitor")
        for k in ("helm.sh/chart", "app.kubernetes.io/managed-by"):
            pm["metadata"]["labels"].pop(k)
        static = yaml_to_json(os.path.join(SOURCE_DIR, "deploy", "prometheus",
                                           "podmonitor.yaml"))
        self.assertEqual(static, [pm], "deploy/prometheus/podmonitor.yaml is stale: run "
                                       "deploy/regenerate.py")


class ChartMetadata(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.chart = yaml_to_json(os.path.join(CHART_DIR, "Chart.yaml"))[0]

    def test_well_kept_metadata(self):
        c = self.chart
        for key in ("description", "kubeVersion", "sources", "maintainers", "keywords",
                    "annotations"):
            self.assertTrue(c.get(key), key)
        for url in c["sources"]:
            self.assertRegex(url, r"^https://[^\s]+$")
        for m in c["maintainers"]:
            self.assertTrue(m.get("name"))
        self.assertIn("tailscale", c["keywords"])

    def test_artifacthub_images_are_the_images_the_defaults_run(self):
        listed = yaml_to_json(self.chart["annotations"]["artifacthub.io/images"], is_text=True)[0]
        spec = pod_spec(one(render(), "Deployment"))
        running = [{"name": c["name"], "image": c["image"]}
                   for c in spec.get("initContainers", []) + spec["containers"]]
        self.assertEqual(sorted(listed, key=lambda i: i["name"]),
                         sorted(running, key=lambda i: i["name"]))

    def test_kube_version_floor_is_the_networkpolicy_endport_one(self):
        self.assertEqual(self.chart["kubeVersion"], ">=1.25.0-0")
        self.assertIsInstance(helm_render(kube="1.25.0", values={
            "metrics.networkPolicy.enabled": "true"}, check=False), list)


def agent_options():
    """(name, env) of every row of the agent's options table (agent/config.cc options(), the one
    description of its flags, environment variables and config-file keys)."""
    text = read_text(os.path.join(SOURCE_DIR, "agent", "config.cc"))
    body = text[text.index("const std::vector<OptionDef>& options()"):
                text.index("std::string_view shownDefault")]
    rows = re.findall(r'\.name = "([a-z-]+)",\s*\.env = "([A-Z_]*)"', body)
    assert len(rows) == body.count(".name = "), "an option row this parser does not read"
    return rows


def agent_option_names():
    """The agent's config-file keys: its options (but "config") and the key-set keys."""
    text = read_text(os.path.join(SOURCE_DIR, "agent", "config.cc"))
    keysets = re.search(r"kKeySetYamlKeys = \{([^}]*)\}", text)[1]
    return ([n for n, _ in agent_options() if n != "config"]
            + re.findall(r'"([a-z-]+)"', keysets))


def chart_agent_env_names():
    """Every environment variable name the chart's agent container template can render, in any
    branch (templates/_helpers.tpl, define "ts-kube-agent.sidecarContainer"; extraEnv aside)."""
    text = read_text(os.path.join(CHART_DIR, "templates", "_helpers.tpl"))
    start = text.index('{{- define "ts-kube-agent.sidecarContainer" -}}')
    block = text[start:text.index("{{- end }}\n\n{{- define", start)]
    env = block[block.index("  env:\n"):block.index("\n  {{- with $v.envFrom }}")]
    return re.findall(r"^    - name: ([A-Z_]+)$", env, re.M)


def agent_identity_keys():
    text = read_text(os.path.join(SOURCE_DIR, "agent", "identity.cc"))
    return re.findall(r'"([a-z_]+)"', re.search(r"kKeyNames = \{([^}]*)\}", text)[1])


class FailFast(unittest.TestCase):
    """What the agent would refuse at start (agent/config.cc) fails `helm template` (and so
    `helm install`) with a message naming the value, through values.schema.json or
    templates/validate.yaml; good values still render."""

    def refused(self, values, *expected, kube="1.30.0", args=()):
        p = helm_render(*args, kube=kube, values=values, check=False)
        self.assertNotEqual(p.returncode, 0, f"{values} rendered")
        for e in expected:
            self.assertIn(e, p.stderr, values)
        p = run([helm_bin(), "lint", "--strict", CHART_DIR, "--kube-version", kube]
                + [a for k, v in values.items() for a in ("--set", f"{k}={v}")] + list(args),
                check=False)
        # `helm lint` fails on the schema; a template's `fail` it only logs (Helm's lint mode
        # turns `fail` into an INFO line "funcMap fail"): the message must be there.
        if p.returncode == 0:
            self.assertIn("funcMap fail", p.stderr, f"helm lint passed {values} silently")
            for e in expected:
                self.assertIn(e.replace('"', '\\"'), p.stderr, values)

    def test_schema_lists_what_the_agent_accepts(self):
        schema = yaml_to_json(os.path.join(CHART_DIR, "values.schema.json"))[0]
        props = schema["properties"]
        self.assertEqual(sorted(props["config"]["properties"]), sorted(agent_option_names()))
        self.assertIs(props["config"]["additionalProperties"], False)
        for t in ("secret", "configMap"):
            self.assertEqual(props["targets"]["properties"][t]["properties"]["keys"]["items"]
                             ["enum"], agent_identity_keys())

    def test_every_variable_the_chart_sets_is_an_agent_option(self):
        agent_env = {env for _, env in agent_options() if env}
        names = chart_agent_env_names()
        self.assertIn("TS_AGENT_CONFIG", names)  # the parser sees the conditional ones too
        self.assertEqual([n for n in names if n not in agent_env], [])
        # And what a render with every target and a config file actually sets.
        objs = render(values={"targets.configMap.enabled": "true",
                              "targets.secret.keys": "{device_id}",
                              "config.publish-wait": "50ms:2s"})
        for d in find(objs, "Deployment"):
            rendered = [e["name"] for e in container(pod_spec(d), AGENT_CONTAINER)["env"]]
            self.assertIn("TS_AGENT_CONFIG", rendered)
            self.assertEqual([n for n in rendered if n not in agent_env], [])
        cfg = yaml_to_json(one(objs, "ConfigMap", FULLNAME + "-config")["data"]["config.yaml"],
                           is_text=True)[0]
        self.assertEqual([k for k in cfg if k not in agent_option_names()], [])

    def test_unknown_identity_key(self):
        self.refused({"targets.secret.keys": "{device_id,device_name}"},
                     "at '/targets/secret/keys/1': value must be one of 'device_id'")
        self.refused({"targets.configMap.enabled": "true",
                      "targets.configMap.keys": "{tailnet}"},
                     "at '/targets/configMap/keys/0': value must be one of")

    def test_unknown_config_key(self):
        self.refused({"config.publish_wait": "1s"},
                     "at '/config': additional properties 'publish_wait' not allowed")

    def test_config_key_the_chart_sets_by_env(self):
        self.refused({"config.log-level": "debug"}, "config.log-level is set by the chart "
                     "through an environment variable, which wins over the config file: use "
                     "logLevel instead")

    def test_malformed_durations(self):
        self.refused({"shutdownTimeout": "10sec"},
                     "at '/shutdownTimeout'", "'10sec' does not match pattern")
        self.refused({"config.drift-check-interval": "1d"},
                     "at '/config/drift-check-interval'")
        self.refused({"config.publish-wait": "20ms-1s"}, "at '/config/publish-wait'")

    def test_durations_out_of_the_agents_bounds(self):
        self.refused({"config.drift-check-interval": "500ms"}, 'config.drift-check-interval '
                     '"500ms" must be 0 (only after a reconnect) or from 1s to 24h')
        self.refused({"config.drift-check-interval": "25h"}, "from 1s to 24h")
        self.refused({"config.publish-wait": "2s:1s"}, 'config.publish-wait "2s:1s" must be '
                     "MIN:MAX durations from 0s to 1h with MIN <= MAX")
        self.refused({"shutdownTimeout": "2h", "deployment.terminationGracePeriodSeconds":
                      "10000"}, "shutdownTimeout \"2h\" is longer than the agent's bound of 1h")

    def test_shutdown_timeout_not_below_the_grace_period(self):
        self.refused({"shutdownTimeout": "30s"}, 'shutdownTimeout "30s" must be below '
                     "deployment.terminationGracePeriodSeconds (30 s)")
        self.refused({"shutdownTimeout": "1m", "deployment.terminationGracePeriodSeconds": "45"},
                     "(45 s)")

    def test_track_peers_with_status_fetch(self):
        self.refused({"trackPeers": "true", "config.start-mode": "status-fetch"},
                     "trackPeers needs config.start-mode initial-status")

    def test_native_before_1_29(self):
        self.refused({"sidecar.mode": "native"}, "sidecar.mode native needs Kubernetes >= 1.29",
                     kube="1.28.0")

    def test_object_names_not_dns_1123(self):
        for key, bad in (("targets.secret.name", "a..b"), ("targets.secret.name", "-ts"),
                         ("targets.configMap.name", "Ts"),
                         ("deployment.tailscaled.stateSecret", "ts_state"),
                         ("serviceAccount.name", "SA"), ("fullnameOverride", "x.y"),
                         ("sidecar.containerName", "Agent")):
            self.refused({"targets.configMap.enabled": "true", key: bad},
                         "at '/" + key.replace(".", "/") + "'")

    def test_good_values_still_render(self):
        for values in ({}, {"shutdownTimeout": "29.5s"}, {"shutdownTimeout": "0"},
                       {"config.publish-wait": "20ms:1s", "config.drift-check-interval": "0",
                        "config.start-mode": "status-fetch", "config.api-qps": "0.5",
                        "config.max-line-bytes": "64Mi"},
                       {"config.drift-check-interval": "1m30s"},
                       {"targets.secret.keys": "{device_id,tags,host_name}",
                        "targets.secret.name": "ts.state-1"},
                       {"deployment.enabled": "false", "shutdownTimeout": "40s"}):
            p = helm_render(values=values, check=False)
            self.assertIsInstance(p, list, f"{values}: {getattr(p, 'stderr', '')}")
        self.assertIsInstance(helm_render(kube="1.28.0", values={"sidecar.mode": "regular"},
                                          check=False), list)


class TailscaledImage(unittest.TestCase):
    def test_default_tailscaled_image_is_a_pinned_release_the_agent_supports(self):
        # Not the moving "stable"/"latest"; at least 1.100, which the default start mode
        # (initial-status) needs (docs/OPERATIONS.md, "Start modes").
        spec = pod_spec(one(render(), "Deployment"))
        image = container(spec, "tailscaled")["image"]
        m = re.fullmatch(r"tailscale/tailscale:v(\d+)\.(\d+)\.(\d+)", image)
        self.assertIsNotNone(m, f"{image}: not a pinned release tag")
        self.assertGreaterEqual((int(m[1]), int(m[2])), (1, 100), image)
        tpl = readme_block("# templates/_tailscaled.tpl")
        self.assertIn(f"image: {image}", tpl, "the README's tailscaled and the chart's differ")


class Extras(unittest.TestCase):
    """envFrom, extra volumes and mounts, a startup probe: off by default, rendered when set,
    valid for the API (FieldSchema) and still restricted."""

    def test_off_by_default(self):
        agent = container(pod_spec(one(render(), "Deployment")), AGENT_CONTAINER)
        self.assertNotIn("envFrom", agent)
        self.assertNotIn("startupProbe", agent)
        self.assertEqual([m["name"] for m in agent["volumeMounts"]], ["tailscale-socket"])

    def test_rendered_when_set(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("""envFrom:
  - configMapRef:
      name: agent-env
extraVolumeMounts:
  - name: extra-ca
    mountPath: /etc/extra-ca
    readOnly: true
extraVolumes:
  - name: extra-ca
    configMap:
      name: extra-ca
probes:
  startup:
    enabled: true
""")
            f.flush()
            dep = one(objects(helm_render("-f", f.name)), "Deployment")
        spec = pod_spec(dep)
        agent = container(spec, AGENT_CONTAINER)
        self.assertEqual(agent["envFrom"], [{"configMapRef": {"name": "agent-env"}}])
        self.assertIn({"name": "extra-ca", "mountPath": "/etc/extra-ca", "readOnly": True},
                      agent["volumeMounts"])
        self.assertIn({"name": "extra-ca", "configMap": {"name": "extra-ca"}}, spec["volumes"])
        self.assertEqual(agent["startupProbe"], {
            "httpGet": {"path": "/livez", "port": 9002}, "periodSeconds": 2,
            "timeoutSeconds": 2, "failureThreshold": 30})
        self.assertEqual(agent_container_problems(agent), [])
        self.assertEqual(restricted_violations(spec), [])
        self.assertEqual(k8s_schema.validate(dep), [])


class Notes(unittest.TestCase):
    def test_notes_say_how_to_check_it_worked(self):
        text = helm_notes(values={"targets.configMap.enabled": "true"})
        for want in (f"Secret    ns1/{IDENTITY}\n", f"ConfigMap ns1/{FULLNAME}\n",
                     "rollout status deployment/rel-ts-kube-agent", "/readyz",
                     f"get secret {IDENTITY} -o jsonpath='{{.data.device_fqdn}}'"):
            self.assertIn(want, text)


class AppVersion(unittest.TestCase):
    def test_chart_helper_and_cmake_agree_on_the_version(self):
        chart = read_text(os.path.join(CHART_DIR, "Chart.yaml"))
        helpers = read_text(os.path.join(CHART_DIR, "templates", "_helpers.tpl"))
        cmake = read_text(os.path.join(SOURCE_DIR, "CMakeLists.txt"))
        app = re.search(r'^appVersion:\s*"?([^"\n]+)"?', chart, re.M)[1]
        helper = re.search(r'define "ts-kube-agent.defaultAppVersion" -}}\s*(\S+)\s*{{', helpers)[1]
        project = re.search(r"project\(ts-kube-agent VERSION (\S+)", cmake)[1]
        self.assertEqual((app, helper), (project, project))


TINY_CHART = """apiVersion: v2
name: myapp
version: 1.0.0
appVersion: "2.0"
dependencies:
  - name: ts-kube-agent
    version: 0.1.0
    repository: file://../ts-kube-agent
"""

TINY_VALUES = """ts-kube-agent:
  deployment:
    enabled: false
  metrics:
    service:
      selector:
        app: myapp
"""

# The user's own Deployment, written as the chart README documents it.
TINY_DEPLOYMENT = """{{- $agent := dict "root" $ "values" (index .Values "ts-kube-agent") }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-myapp
spec:
  selector:
    matchLabels:
      app: myapp
  template:
    metadata:
      labels:
        app: myapp
    spec:
      serviceAccountName: {{ .Release.Name }}-ts-kube-agent
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      initContainers:
        - name: tailscaled
          image: tailscale/tailscale:stable
          restartPolicy: Always
          env:
            - name: TS_SOCKET
              value: /var/run/tailscale/tailscaled.sock
          volumeMounts:
            - name: tailscale-socket
              mountPath: /var/run/tailscale
        {{- include "ts-kube-agent.initContainers" $agent | nindent 8 }}
      containers:
        - name: web
          image: nginx
        {{- include "ts-kube-agent.containers" $agent | nindent 8 }}
      volumes:
        {{- include "ts-kube-agent.sidecarVolumes" $agent | nindent 8 }}
"""


class NamedSidecarTemplate(unittest.TestCase):
    """The agent added to another chart's workload through the named templates, with the
    ts-kube-agent chart as a dependency (charts/ts-kube-agent), as a user would."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tiny-chart-")
        os.makedirs(os.path.join(cls.dir, "templates"))
        shutil.copytree(CHART_DIR, os.path.join(cls.dir, "charts", "ts-kube-agent"))
        for name, text in (("Chart.yaml", TINY_CHART), ("values.yaml", TINY_VALUES),
                           ("templates/deployment.yaml", TINY_DEPLOYMENT)):
            with open(os.path.join(cls.dir, name), "w") as f:
                f.write(text)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def render(self, kube, *extra):
        return helm_render(*extra, chart=self.dir, kube=kube)

    def test_native_on_1_30_after_tailscaled(self):
        objs = objects(self.render("1.30.0"))
        spec = pod_spec(one(objs, "Deployment", "rel-myapp"))
        self.assertEqual([c["name"] for c in spec["initContainers"]],
                         ["tailscaled", AGENT_CONTAINER])
        self.assertEqual([c["name"] for c in spec["containers"]], ["web"])
        agent = container(spec, AGENT_CONTAINER)
        self.assertEqual(agent["restartPolicy"], "Always")
        self.assertEqual(agent_container_problems(agent), [])
        self.assertEqual(agent["image"], "ts-kube-agent:0.1.0", "the agent's appVersion, "
                         "not the parent chart's")

    def test_regular_on_1_28(self):
        spec = pod_spec(one(objects(self.render("1.28.0")), "Deployment", "rel-myapp"))
        self.assertEqual([c["name"] for c in spec["containers"]], ["web", AGENT_CONTAINER])
        self.assertNotIn("restartPolicy", container(spec, AGENT_CONTAINER))

    def test_names_match_the_subchart_rbac_and_secret(self):
        rendered = self.render("1.30.0")
        objs = objects(rendered)
        sources = {o["kind"] + "/" + o["metadata"]["name"]: s for s, o in rendered}
        self.assertTrue(sources["Role/rel-ts-kube-agent"].startswith(
            "myapp/charts/ts-kube-agent/templates/"))
        spec = pod_spec(one(objs, "Deployment", "rel-myapp"))
        env = env_of(container(spec, AGENT_CONTAINER))
        role = one(objs, "Role", "rel-ts-kube-agent")
        self.assertEqual(role["rules"][0]["resourceNames"], [env["TS_KUBE_SECRET"]])
        self.assertEqual(len(find(objs, "Secret", env["TS_KUBE_SECRET"])), 1)
        self.assertEqual(spec["serviceAccountName"],
                         one(objs, "ServiceAccount")["metadata"]["name"])
        self.assertEqual(spec["volumes"], [{"name": "tailscale-socket", "emptyDir": {}}])
        svc = one(objs, "Service")
        self.assertEqual(svc["spec"]["selector"], {"app": "myapp"})
        self.assertEqual(find(objs, "Deployment", "rel-ts-kube-agent"), [],
                         "the example Deployment stays off")

    def test_layout_shared_through_the_parent_targets_the_state_secret(self):
        objs = objects(self.render("1.30.0", "--set", "ts-kube-agent.layout=shared",
                                   "--set", "ts-kube-agent.targets.secret.name=myapp-ts"))
        env = env_of(container(pod_spec(one(objs, "Deployment", "rel-myapp")), AGENT_CONTAINER))
        self.assertEqual(env["TS_KUBE_SECRET"], "myapp-ts")
        self.assertEqual(grants(objs), identity_grants("myapp-ts") | state_grants("myapp-ts"))
        self.assertEqual([o["metadata"]["name"] for o in find(objs, "Secret")], ["myapp-ts"])

    def test_values_set_through_the_parent_reach_the_sidecar(self):
        objs = objects(self.render("1.30.0", "--set", "ts-kube-agent.trackPeers=true",
                                   "--set", "ts-kube-agent.targets.secret.name=myapp-ts"))
        env = env_of(container(pod_spec(one(objs, "Deployment", "rel-myapp")), AGENT_CONTAINER))
        self.assertEqual((env["TS_TRACK_PEERS"], env["TS_KUBE_SECRET"]), ("true", "myapp-ts"))
        self.assertEqual(one(objs, "Role", "rel-ts-kube-agent")["rules"][0]["resourceNames"],
                         ["myapp-ts"])


def readme_block(first_line):
    """The chart README's ```yaml block whose first line is `first_line`, without that line."""
    readme = read_text(os.path.join(CHART_DIR, "README.md"))
    m = re.search(r"```yaml\n" + re.escape(first_line) + r"\n(.*?)```", readme, re.S)
    assert m, f"the chart README lacks the ```yaml block starting {first_line!r}"
    return m[1]


# The README's pod-template fragment, in a Deployment (the README shows only the pod spec).
README_DEPLOYMENT_HEAD = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-myapp
spec:
  selector:
    matchLabels:
      app: myapp
  template:
    metadata:
      labels:
        app: myapp
    spec:"""


class ReadmeNamedTemplates(unittest.TestCase):
    """The README's "With Helm: the named templates" blocks, as written (values.yaml,
    templates/_tailscaled.tpl, the pod template), in a parent chart with this chart as its
    dependency: tailscaled is where the agent is (native sidecars on >= 1.29, regular
    containers before: an init container without restartPolicy that never exits keeps the pod
    in Init), and tailscaled, which runs under the same service account, gets its Role with
    deployment.enabled=false."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="readme-chart-")
        os.makedirs(os.path.join(cls.dir, "templates"))
        shutil.copytree(CHART_DIR, os.path.join(cls.dir, "charts", "ts-kube-agent"))
        files = {"Chart.yaml": TINY_CHART,
                 "values.yaml": readme_block("# values.yaml"),
                 "templates/_tailscaled.tpl": readme_block("# templates/_tailscaled.tpl"),
                 "templates/deployment.yaml": README_DEPLOYMENT_HEAD + readme_block(
                     "# templates/deployment.yaml (pod template spec)")}
        for name, text in files.items():
            with open(os.path.join(cls.dir, name), "w") as f:
                f.write(text)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def spec(self, kube):
        return pod_spec(one(objects(helm_render(chart=self.dir, kube=kube)), "Deployment",
                            "rel-myapp"))

    def test_native_sidecars_on_1_29_and_later(self):
        for kube in ("1.29.0", "1.30.0", "v1.37.2"):
            spec = self.spec(kube)
            self.assertEqual([c["name"] for c in spec["initContainers"]],
                             ["tailscaled", AGENT_CONTAINER], kube)
            for c in spec["initContainers"]:
                self.assertEqual(c.get("restartPolicy"), "Always", (kube, c["name"]))
            self.assertEqual([c["name"] for c in spec["containers"]], ["myapp"], kube)

    def test_regular_containers_before_1_29_no_init_container_that_never_exits(self):
        for kube in ("1.25.0", "1.28.0"):
            spec = self.spec(kube)
            self.assertEqual(spec.get("initContainers") or [], [], kube)
            self.assertEqual([c["name"] for c in spec["containers"]],
                             ["myapp", "tailscaled", AGENT_CONTAINER], kube)
            for c in spec["containers"]:
                self.assertNotIn("restartPolicy", c, (kube, c["name"]))

    def test_tailscaled_gets_its_state_secret_role_without_the_example_deployment(self):
        # Layout own: your containerboot's state Secret (TS_KUBE_SECRET in the README's
        # tailscaled) is the one the chart pre-creates and grants tailscaled; the agent
        # publishes to another Secret and gets nothing on the state.
        objs = objects(helm_render(chart=self.dir, kube="1.30.0"))
        self.assertEqual(find(objs, "Deployment", "rel-ts-kube-agent"), [])
        spec = pod_spec(one(objs, "Deployment", "rel-myapp"))
        state = env_of(container(spec, "tailscaled"))["TS_KUBE_SECRET"]
        target = env_of(container(spec, AGENT_CONTAINER))["TS_KUBE_SECRET"]
        self.assertNotEqual(state, target)
        self.assertEqual(grants(objs), state_grants(state) | identity_grants(target))
        self.assertEqual(sorted(o["metadata"]["name"] for o in find(objs, "Secret")),
                         sorted([state, target]))
        role = one(objs, "Role", "rel-ts-kube-agent-tailscaled")
        self.assertEqual([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [state],
                           "verbs": ["get", "update", "patch"]}], role["rules"])
        binding = one(objs, "RoleBinding", "rel-ts-kube-agent-tailscaled")
        self.assertEqual(binding["roleRef"]["name"], "rel-ts-kube-agent-tailscaled")
        self.assertEqual([(s["kind"], s["name"]) for s in binding["subjects"]],
                         [("ServiceAccount", spec["serviceAccountName"])])

    def test_rbac_tailscaled_false_leaves_it_to_the_user(self):
        objs = objects(helm_render("--set", "ts-kube-agent.rbac.tailscaled=false",
                                   chart=self.dir, kube="1.30.0"))
        self.assertEqual(find(objs, "Role", "rel-ts-kube-agent-tailscaled"), [])
        self.assertEqual(len(find(objs, "Role", "rel-ts-kube-agent")), 1)


def relabel_keep(configs, labels):
    """Prometheus's `keep` relabelling (source labels joined by `separator`, default ";";
    the regex anchored at both ends, as Prometheus anchors it); the other actions (replace
    into target_label) do not drop targets and are skipped."""
    for c in configs:
        if c.get("action", "replace") != "keep":
            continue
        value = c.get("separator", ";").join(labels.get(n, "") for n in c["source_labels"])
        if not re.fullmatch(c.get("regex", "(.*)"), value):
            return False
    return True


class ReadmeScrapeConfig(unittest.TestCase):
    """The chart README's plain-Prometheus job keeps the agent's metrics port and nothing
    else of the pods of a cluster: CoreDNS and exporters name their port `metrics` too."""

    def test_keeps_only_the_agent_container(self):
        readme = read_text(os.path.join(CHART_DIR, "README.md"))
        m = re.search(r"```yaml\n( *scrape_configs:.*?)```", readme, re.S)
        self.assertIsNotNone(m, "the chart README lacks its scrape_configs block")
        job = yaml_to_json(m[1], is_text=True)[0]["scrape_configs"][0]
        relabel = job["relabel_configs"]
        # Prometheus's pod role makes one target per container port: every port of the
        # example pod as rendered, plus CoreDNS and an exporter.
        targets = []
        spec = pod_spec(one(render(), "Deployment"))
        for c in spec.get("initContainers", []) + spec["containers"]:
            for port in c.get("ports") or [{"name": "", "containerPort": 0}]:
                targets.append({"__meta_kubernetes_pod_container_name": c["name"],
                                "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                                "__meta_kubernetes_namespace": "ns1"})
        for name in ("coredns", "node-exporter"):
            targets.append({"__meta_kubernetes_pod_container_name": name,
                            "__meta_kubernetes_pod_container_port_name": "metrics",
                            "__meta_kubernetes_namespace": "kube-system"})
        kept = [t["__meta_kubernetes_pod_container_name"] for t in targets
                if relabel_keep(relabel, t)]
        self.assertEqual(kept, [AGENT_CONTAINER])



class ReadmeSnippet(unittest.TestCase):
    """The README's copy-paste snippet is the container the chart renders (native mode)."""

    def test_snippet_equals_the_rendered_sidecar(self):
        readme = read_text(os.path.join(CHART_DIR, "README.md"))
        m = re.search(r"```yaml\n(# ts-kube-agent sidecar snippet.*?)```", readme, re.S)
        self.assertIsNotNone(m, "README.md lacks the '# ts-kube-agent sidecar snippet' block")
        snippet = yaml_to_json(m[1], is_text=True)[0]
        objs = objects(helm_render(name="ts-kube-agent", namespace="default"))
        spec = pod_spec(one(objs, "Deployment"))
        rendered = container(spec, AGENT_CONTAINER)
        self.assertEqual(snippet["initContainers"], [rendered],
                         "the README snippet is stale: run deploy/regenerate.py")
        self.assertEqual(snippet["volumes"], [{"name": "tailscale-socket", "emptyDir": {}}])


class FieldSchema(unittest.TestCase):
    """Every object of every combination has only known fields of the right types (an env
    value rendered as a bool, or a float label, would fail here)."""

    COMBOS = [
        ({}, "1.30.0"), ({}, "1.28.0"),
        ({"targets.configMap.enabled": "true", "targets.secret.create": "false",
          "metrics.serviceMonitor.enabled": "true", "metrics.prometheusRule.enabled": "true",
          "targets.secret.keys": "{device_id}", "trackPeers": "true",
          "deployment.tailscaled.hostname": "web", "deployment.tailscaled.extraArgs": "--ssh",
          "image.digest": "sha256:" + "a" * 64, "image.tag": "1.0",
          "extraEnv[0].name": "X", "extraEnv[0].value": "1", "foreignKeys": "overwrite",
          "metrics.podMonitor.enabled": "true", "metrics.networkPolicy.enabled": "true",
          **PROMETHEUS_PEER}, "1.30.0"),
        ({"layout": "shared", "deployment.enabled": "false", "targets.secret.name": "ts-state",
          "metrics.service.selector.app": "myapp", "metrics.podMonitor.enabled": "true",
          "metrics.networkPolicy.enabled": "true",
          "metrics.networkPolicy.allowOtherPorts": "false"}, "1.30.0"),
        ({"targets.secret.enabled": "false", "targets.configMap.enabled": "true",
          "deployment.app.enabled": "false", "serviceAccount.create": "false",
          "serviceAccount.name": "mine"}, "1.29.0"),
    ]

    def test_every_object_of_every_combination(self):
        for values, kube in self.COMBOS:
            for src, obj in helm_render(values=values, kube=kube, apis=[MONITORING]):
                self.assertEqual(k8s_schema.validate(obj), [], f"{src} with {values}")

    def test_labels_and_env_values_stay_strings_for_numeric_looking_values(self):
        objs = render(values={"image.tag": "1.0"})
        d = one(objs, "Deployment")
        self.assertEqual(d["metadata"]["labels"]["app.kubernetes.io/version"], "1.0")
        self.assertEqual(container(pod_spec(d), AGENT_CONTAINER)["image"], "ts-kube-agent:1.0")


class Yamllint(unittest.TestCase):
    def test_values_and_rendered_output_pass_yamllint(self):
        yamllint = os.environ.get("TSK_YAMLLINT", "")
        if not yamllint:
            self.skipTest("yamllint not found; run scripts/install-deps.sh")
        config = os.path.join(SOURCE_DIR, "deploy", ".yamllint")
        run([yamllint, "--strict", "-c", config, os.path.join(CHART_DIR, "values.yaml")])
        out_dir = tempfile.mkdtemp()
        combos = {
            "defaults": {},
            "regular": {"sidecar.mode": "regular"},
            "everything": {"targets.configMap.enabled": "true", "targets.secret.create": "false",
                           "metrics.serviceMonitor.enabled": "true",
                           "metrics.prometheusRule.enabled": "true",
                           "metrics.podMonitor.enabled": "true",
                           "metrics.networkPolicy.enabled": "true",
                           "targets.secret.keys": "{device_id}", **PROMETHEUS_PEER},
        }
        for name, values in combos.items():
            path = os.path.join(out_dir, name + ".yaml")
            with open(path, "w") as f:
                f.write(helm_render_yaml(values=values, apis=[MONITORING]))
            p = run([yamllint, "--strict", "-c", config, path], check=False)
            self.assertEqual(p.returncode, 0, f"{name}:\n{p.stdout}{p.stderr}")
        shutil.rmtree(out_dir)


if __name__ == "__main__":
    main()
