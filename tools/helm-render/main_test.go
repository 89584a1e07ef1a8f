package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeChart(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func renderArgs(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(args, &out, &errOut)
	return out.String(), err
}

const chartYAML = "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"9.9\"\n"

func TestSetParsesTypedValuesLikeHelm(t *testing.T) {
	cases := []struct {
		set  string
		want map[string]interface{}
	}{
		{"a.b=c", map[string]interface{}{"a": map[string]interface{}{"b": "c"}}},
		{"n=42,t=true,f=false,z=0,lead=007,nul=null", map[string]interface{}{
			"n": int64(42), "t": true, "f": false, "z": int64(0), "lead": "007", "nul": nil}},
		{"l={x,y}", map[string]interface{}{"l": []interface{}{"x", "y"}}},
		{"a[1].b=2", map[string]interface{}{"a": []interface{}{nil, map[string]interface{}{"b": int64(2)}}}},
		{`a\.b=c`, map[string]interface{}{"a.b": "c"}},
		{`a=b\,c`, map[string]interface{}{"a": "b,c"}},
		{"empty=", map[string]interface{}{"empty": ""}},
	}
	for _, c := range cases {
		got := map[string]interface{}{}
		if err := parseSet(c.set, got, false); err != nil {
			t.Fatalf("%s: %v", c.set, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.set, got, c.want)
		}
	}
}

func TestSetStringKeepsEveryValueAString(t *testing.T) {
	got := map[string]interface{}{}
	if err := parseSet("n=42,t=true", got, true); err != nil {
		t.Fatal(err)
	}
	if got["n"] != "42" || got["t"] != "true" {
		t.Errorf("got %#v", got)
	}
}

func TestSetRejectsAKeyWithoutValue(t *testing.T) {
	if err := parseSet("justakey", map[string]interface{}{}, false); err == nil ||
		!strings.Contains(err.Error(), "has no value") {
		t.Errorf("err = %v", err)
	}
}

func TestValuesFilesUseJSONNumbers(t *testing.T) {
	v, err := parseValuesYAML([]byte("port: 9002\nratio: 0.5\nbig: 1000000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v["port"].(float64); !ok {
		t.Errorf("port is %T, want float64 as in Helm", v["port"])
	}
}

func TestUserNullDeletesADefaultAndTablesMerge(t *testing.T) {
	c := &Chart{Metadata: &Metadata{Name: "x"}, values: map[string]interface{}{
		"keep": "d", "drop": "d", "tbl": map[string]interface{}{"a": 1.0, "b": 2.0},
	}}
	got, _ := coalesce(c, map[string]interface{}{"drop": nil, "tbl": map[string]interface{}{"b": 3.0}})
	want := map[string]interface{}{"keep": "d", "tbl": map[string]interface{}{"a": 1.0, "b": 3.0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func TestRendersHelmFunctionsAndContext(t *testing.T) {
	dir := writeChart(t, map[string]string{
		"Chart.yaml":       chartYAML,
		"values.yaml":      "name: web\nport: 8080\nlabels:\n  b: two\n  a: one\ntext: \"{{ .Release.Name }}-x\"\n",
		"templates/_h.tpl": `{{- define "demo.full" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end }}`,
		"templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "demo.full" . }}
  labels:
    {{- toYaml .Values.labels | nindent 4 }}
data:
  port: {{ .Values.port | quote }}
  tpl: {{ tpl .Values.text . }}
  kube: {{ .Capabilities.KubeVersion.Version }}
  minor: {{ .Capabilities.KubeVersion.Minor | quote }}
  hasApps: {{ .Capabilities.APIVersions.Has "apps/v1" | quote }}
  hasMon: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}
  tmpl: {{ .Template.Name }}
  file: {{ .Files.Get "files/a.txt" | trim }}
  app: {{ .Chart.AppVersion }}
  ns: {{ .Release.Namespace }}
  missing: "{{ .Values.nothere }}"
  lookup: {{ lookup "v1" "Secret" "ns" "n" | len | quote }}
  json: {{ toJson .Values.labels | quote }}
  yamlRoundTrip: {{ (fromYaml "x: 1").x | quote }}
`,
		"files/a.txt":         "hello\n",
		"templates/NOTES.txt": "Installed {{ .Release.Name }}\n",
	})
	notes := filepath.Join(t.TempDir(), "notes")
	out, err := renderArgs(t, "--name", "rel", "--namespace", "ns1", "--kube-version", "1.28.3",
		"-a", "monitoring.coreos.com/v1", "--notes-out", notes, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Source: demo/templates/cm.yaml", "name: rel-demo", "    a: one\n    b: two",
		`port: "8080"`, "tpl: rel-x", "kube: v1.28.3", `minor: "28"`, `hasApps: "true"`,
		`hasMon: "true"`, "tmpl: demo/templates/cm.yaml", "file: hello", "app: 9.9", "ns: ns1",
		`missing: ""`, `lookup: "0"`, `json: "{\"a\":\"one\",\"b\":\"two\"}"`, `yamlRoundTrip: "1"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(notes); string(b) != "Installed rel\n" {
		t.Errorf("notes = %q", b)
	}
	if strings.Contains(out, "Installed") {
		t.Errorf("NOTES.txt leaked into the manifests")
	}
}

func TestRequiredAndFailReportTheMessageAndTemplate(t *testing.T) {
	dir := writeChart(t, map[string]string{
		"Chart.yaml":       chartYAML,
		"templates/a.yaml": `x: {{ required "set .Values.must, please" .Values.must }}`,
	})
	_, err := renderArgs(t, dir)
	if err == nil || !strings.Contains(err.Error(), "demo/templates/a.yaml") ||
		!strings.HasSuffix(err.Error(), "set .Values.must, please") {
		t.Errorf("err = %v", err)
	}
	if _, err := renderArgs(t, "--set", "must=1", dir); err != nil {
		t.Errorf("with the value set: %v", err)
	}
}

func TestKubeVersionConstraintIsEnforced(t *testing.T) {
	dir := writeChart(t, map[string]string{"Chart.yaml": chartYAML + "kubeVersion: \">=1.29.0-0\"\n"})
	if _, err := renderArgs(t, "--kube-version", "1.28.0", dir); err == nil ||
		!strings.Contains(err.Error(), "incompatible with Kubernetes v1.28.0") {
		t.Errorf("err = %v", err)
	}
	if _, err := renderArgs(t, "--kube-version", "v1.30.1", dir); err != nil {
		t.Errorf("1.30: %v", err)
	}
}

func TestInvalidYAMLOutputNamesTheTemplate(t *testing.T) {
	dir := writeChart(t, map[string]string{
		"Chart.yaml":       chartYAML,
		"templates/b.yaml": "a: [unclosed\n",
	})
	if _, err := renderArgs(t, dir); err == nil || !strings.Contains(err.Error(), "demo/templates/b.yaml") {
		t.Errorf("err = %v", err)
	}
}

func TestOrdersByKindAndShowsOnlyWhatIsAsked(t *testing.T) {
	dir := writeChart(t, map[string]string{
		"Chart.yaml":       chartYAML,
		"templates/a.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n",
		"templates/b.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: s\n---\n# empty\n",
	})
	out, err := renderArgs(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Index(out, "kind: ServiceAccount") > strings.Index(out, "kind: Deployment") {
		t.Errorf("ServiceAccount should come first:\n%s", out)
	}
	out, err = renderArgs(t, "--show-only", "templates/a.yaml", dir)
	if err != nil || strings.Contains(out, "ServiceAccount") {
		t.Errorf("show-only: %v\n%s", err, out)
	}
	if _, err := renderArgs(t, "--show-only", "templates/nope.yaml", dir); err == nil {
		t.Errorf("show-only of a missing template should fail")
	}
}

func TestSubchartValuesAreScopedAndConditionsApply(t *testing.T) {
	dir := writeChart(t, map[string]string{
		"Chart.yaml":                    chartYAML + "dependencies:\n  - name: child\n    version: 0.1.0\n    condition: child.enabled\n",
		"values.yaml":                   "global:\n  g: fromparent\nchild:\n  msg: overridden\n",
		"templates/p.yaml":              "parent: {{ include \"child.msg\" (dict \"Values\" .Values.child) }}\n",
		"charts/child/Chart.yaml":       "apiVersion: v2\nname: child\nversion: 0.1.0\n",
		"charts/child/values.yaml":      "msg: default\nenabled: true\nother: kept\n",
		"charts/child/templates/_h.tpl": `{{- define "child.msg" -}}{{ .Values.msg }}{{- end }}`,
		"charts/child/templates/c.yaml": "child: {{ .Values.msg }}-{{ .Values.other }}-{{ .Values.global.g }}-{{ .Chart.Name }}\n",
	})
	out, err := renderArgs(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"parent: overridden", "child: overridden-kept-fromparent-child",
		"# Source: demo/charts/child/templates/c.yaml"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = renderArgs(t, "--set", "child.enabled=false", dir)
	if err != nil || strings.Contains(out, "child:") {
		t.Errorf("disabled subchart rendered: %v\n%s", err, out)
	}
}

func TestJSONOutputAndYAMLToJSON(t *testing.T) {
	dir := writeChart(t, map[string]string{
		"Chart.yaml":       chartYAML,
		"templates/a.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
	})
	out, err := renderArgs(t, "-o", "json", dir)
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		Source string                 `json:"source"`
		Object map[string]interface{} `json:"object"`
	}
	if err := json.Unmarshal([]byte(out), &docs); err != nil || len(docs) != 2 {
		t.Fatalf("%v: %s", err, out)
	}
	if docs[0].Object["kind"] != "Secret" || docs[0].Source != "demo/templates/a.yaml" {
		t.Errorf("docs[0] = %+v", docs[0])
	}
	stream := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(stream, []byte("a: 1\n---\n---\nb: [x]\n"), 0o644)
	out, err = renderArgs(t, "--yaml2json", stream)
	var plain []interface{}
	if err != nil || json.Unmarshal([]byte(out), &plain) != nil || len(plain) != 2 {
		t.Errorf("yaml2json: %v %s", err, out)
	}
}

func TestJSONOutputRejectsARepeatedKey(t *testing.T) {
	dir := writeChart(t, map[string]string{
		"Chart.yaml":       chartYAML,
		"templates/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
	})
	if _, err := renderArgs(t, "-o", "json", dir); err == nil || !strings.Contains(err.Error(), "already set") {
		t.Errorf("err = %v", err)
	}
}

func TestBadChartsAreReportedClearly(t *testing.T) {
	if _, err := renderArgs(t, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a chart directory") {
		t.Errorf("err = %v", err)
	}
	dir := writeChart(t, map[string]string{"Chart.yaml": "apiVersion: v2\nname: x\nversion: one\n"})
	if _, err := renderArgs(t, dir); err == nil || !strings.Contains(err.Error(), "SemVer") {
		t.Errorf("err = %v", err)
	}
	dir = writeChart(t, map[string]string{"Chart.yaml": chartYAML, "templates/x.yaml": "{{ .Values.a.b.c }}"})
	if _, err := renderArgs(t, dir); err == nil || !strings.Contains(err.Error(), "demo/templates/x.yaml") {
		t.Errorf("nil map access: err = %v", err)
	}
}
