#!/usr/bin/env python3
"""deploy/prometheus and deploy/grafana: promtool checks and unit-tests the alert rules, the
copies of the rules stay equal, the examples are well-formed, and every PromQL expression of the
dashboard and the rules uses only metric names the agent exports (checked against
testdata/agent-metrics.txt; TSK_AGENT_METRICS_URL, when set, checks a live agent's /metrics)."""

import json
import os
import re
import tempfile
import unittest

import check_metric_names
import k8s_schema
from deploylib import (CHART_DIR, GRAFANA_DIR, PROMETHEUS_DIR, TESTDATA_DIR, main, run, tool,
                       yaml_to_json)

RULES = os.path.join(PROMETHEUS_DIR, "ts-kube-agent.rules.yaml")
RULES_TEST = os.path.join(PROMETHEUS_DIR, "tests", "ts-kube-agent.rules.test.yaml")
DASHBOARD = os.path.join(GRAFANA_DIR, "ts-kube-agent-dashboard.json")
METRICS = os.path.join(TESTDATA_DIR, "agent-metrics.txt")
ALERTS = ["TsKubeAgentBusDisconnected", "TsKubeAgentPublishFailing", "TsKubeAgentApiForbidden",
          "TsKubeAgentIdentityOutOfSync", "TsKubeAgentTailscaledNotRunning",
          "TsKubeAgentNodeKeyExpiringSoon", "TsKubeAgentNodeKeyExpired",
          "TsKubeAgentBusFlapping", "TsKubeAgentBusMalformedLines", "TsKubeAgentDown",
          "TsKubeAgentAbsent", "TsKubeAgentRestarting", "TsKubeAgentDriftRepairs",
          "TsKubeAgentBusInvalidSelfNodes"]
# Prometheus's own series the rules use besides the agent's (the scrape's `up`).
ALLOW = ["--allow", "up"]


def rule_groups(path):
    doc = yaml_to_json(path)[0]
    return doc.get("groups") or doc["spec"]["groups"]


class PromtoolRules(unittest.TestCase):
    def test_rules_pass_promtool_check(self):
        promtool = tool("TSK_PROMTOOL", "promtool (Debian package prometheus)")
        for path in (RULES, os.path.join(CHART_DIR, "files", "prometheus-rules.yaml")):
            p = run([promtool, "check", "rules", path])
            self.assertIn(f"SUCCESS: {len(ALERTS)} rules found", p.stdout)

    def test_every_alert_fires_in_the_promtool_unit_tests(self):
        promtool = tool("TSK_PROMTOOL", "promtool (Debian package prometheus)")
        run([promtool, "test", "rules", RULES_TEST])
        tests = yaml_to_json(RULES_TEST)[0]["tests"]
        fired = {t["alertname"] for case in tests for t in case["alert_rule_test"]
                 if t.get("exp_alerts")}
        self.assertEqual(sorted(fired), sorted(ALERTS))

    def test_the_alerts_the_issue_asks_for(self):
        names = [r["alert"] for g in rule_groups(RULES) for r in g["rules"]]
        self.assertEqual(names, ALERTS)
        for g in rule_groups(RULES):
            for r in g["rules"]:
                self.assertIn(r["labels"]["severity"], ("critical", "warning", "info"))
                self.assertTrue(r["annotations"]["summary"] and r["annotations"]["description"])

    def test_operations_alert_table_lists_every_rule(self):
        text = open(os.path.join(os.path.dirname(PROMETHEUS_DIR), "..", "docs",
                                 "OPERATIONS.md")).read()
        section = text[text.index("## Alerts"):]
        section = section[:section.index("\n## ", 1)]
        listed = set()
        for row in re.findall(r"^\| (TsKubeAgent[A-Za-z / ]+?) \|", section, re.M):
            first, *rest = [n.strip() for n in row.split("/")]
            listed.add(first)
            # "TsKubeAgentNodeKeyExpiringSoon / Expired": the second shares the first's prefix.
            for r in rest:
                listed.add(re.sub(r"[A-Z][a-z]+$", "", first.replace("Soon", "")) + r
                           if not r.startswith("TsKubeAgent") else r)
        self.assertEqual(sorted(listed), sorted(ALERTS))

    def test_copies_of_the_rules_are_equal(self):
        plain = rule_groups(RULES)
        stale = "a copy is stale: run deploy/regenerate.py"
        self.assertEqual(rule_groups(os.path.join(CHART_DIR, "files", "prometheus-rules.yaml")),
                         plain, stale)
        self.assertEqual(rule_groups(os.path.join(PROMETHEUS_DIR, "prometheusrule.yaml")), plain,
                         stale)


class Examples(unittest.TestCase):
    def test_operator_examples_pass_the_field_schema(self):
        for name in ("prometheusrule.yaml", "servicemonitor.yaml", "podmonitor.yaml"):
            for obj in yaml_to_json(os.path.join(PROMETHEUS_DIR, name)):
                self.assertEqual(k8s_schema.validate(obj), [], name)

    def test_service_monitor_selects_the_kustomize_service(self):
        sm = yaml_to_json(os.path.join(PROMETHEUS_DIR, "servicemonitor.yaml"))[0]
        svc = [o for o in yaml_to_json(os.path.join(os.path.dirname(PROMETHEUS_DIR),
                                                    "kustomize", "base", "service.yaml"))][0]
        for k, v in sm["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(svc["metadata"]["labels"].get(k), v, k)
        self.assertIn(sm["spec"]["endpoints"][0]["port"], [p["name"] for p in svc["spec"]["ports"]])


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD) as f:
            cls.dash = json.load(f)
        cls.panels = [p for p in cls.dash["panels"] if p["type"] != "row"]

    def test_is_importable(self):
        d = self.dash
        self.assertEqual(d["uid"], "ts-kube-agent")
        self.assertIsInstance(d["schemaVersion"], int)
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        for p in self.panels:
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            self.assertTrue(p["targets"], p["title"])
            for t in p["targets"]:
                self.assertTrue(t["expr"].strip(), p["title"])

    def test_panels_do_not_overlap(self):
        cells = {}
        for p in self.dash["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells, f"{p['title']} overlaps {cells.get((x, y))}")
                    cells[(x, y)] = p["title"]

    def test_has_the_panels_an_operator_looks_at_first(self):
        exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in self.panels}
        wanted = {
            "Notify rate by kind": "ts_kube_agent_notifies_total",
            "Peers": "ts_kube_agent_peers_online",
            "Bus connected and reconnects": "ts_kube_agent_bus_reconnects_total",
            "Writes by result": "ts_kube_agent_publishes_total",
            "API latency": "ts_kube_agent_api_request_duration_seconds_bucket",
            "Identity age": "ts_kube_agent_last_in_sync_timestamp_seconds",
        }
        for title, metric in wanted.items():
            self.assertIn(title, exprs)
            self.assertIn(metric, exprs[title], title)

    def test_identity_age_panels_show_data_after_a_restart_with_nothing_to_write(self):
        # last_successful_write is set only by a write: after a restart that found the identity
        # unchanged it has no sample. Every identity-age panel reads last_in_sync, which the
        # first sync sets whether it wrote or not (agent unit test
        # PublisherTest.RestartWithUnchangedIdentityMakesNoWrite).
        ages = [p for p in self.panels if p["title"] == "Identity age"]
        self.assertEqual(len(ages), 2)
        for p in ages:
            first = p["targets"][0]["expr"]
            self.assertIn("ts_kube_agent_last_in_sync_timestamp_seconds", first, p["id"])


class MetricNames(unittest.TestCase):
    def checker(self, metrics, *files):
        return check_metric_names.main(["--metrics", metrics] + ALLOW + list(files))

    def test_dashboard_and_rules_use_only_exported_metric_names(self):
        self.assertEqual(self.checker(METRICS, DASHBOARD, RULES,
                                      os.path.join(PROMETHEUS_DIR, "prometheusrule.yaml")), 0)

    @unittest.skipUnless(os.environ.get("TSK_AGENT_METRICS_URL"), "no live agent configured")
    def test_against_a_live_agent(self):
        self.assertEqual(self.checker(os.environ["TSK_AGENT_METRICS_URL"], DASHBOARD, RULES), 0)

    def test_test_data_is_valid_exposition_format(self):
        promtool = tool("TSK_PROMTOOL", "promtool (Debian package prometheus)")
        with open(METRICS) as f:
            p = run([promtool, "check", "metrics"], stdin=f.read(), check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_checker_reports_an_unknown_metric_and_an_unknown_label(self):
        bad = {"panels": [{"title": "typo", "targets": [
            {"expr": 'sum(rate(ts_kube_agent_notify_total[5m]))'},
            {"expr": 'ts_kube_agent_publishes_total{reslt="failed"}'}]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(bad, f)
        try:
            metrics = check_metric_names.read_metrics(METRICS)
            problems, _ = check_metric_names.check(
                check_metric_names.dashboard_expressions(f.name), metrics, set())
        finally:
            os.unlink(f.name)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("unknown metric 'ts_kube_agent_notify_total'", problems[0])
        self.assertIn("has no label 'reslt'", problems[1])

    def test_extracts_metric_names_not_functions_labels_or_variables(self):
        names = check_metric_names.metric_names(
            'histogram_quantile(0.99, sum by (le, verb) '
            '(rate(a_bucket{x=~"$ns"}[$__rate_interval])))'
            ' / ignoring (verb) b_total offset 5m > bool 1e3 and on (pod) c')
        self.assertEqual(names, {"a_bucket", "b_total", "c"})


if __name__ == "__main__":
    main()
