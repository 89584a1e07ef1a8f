package main

// The template engine, as Helm's pkg/engine: one template set holding every chart's and
// subchart's templates (parents parsed last so their defines win), each non-partial template
// executed with its own chart's scope, "<no value>" blanked, output split into documents and
// ordered by kind like Helm's install order.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"text/template"

	semver "github.com/Masterminds/semver"
	sprig "github.com/Masterminds/sprig"
	yaml "gopkg.in/yaml.v2"
)

// KubeVersion and VersionSet mirror Helm's chartutil types.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (kv KubeVersion) String() string     { return kv.Version }
func (kv KubeVersion) GitVersion() string { return kv.Version }

type VersionSet []string

// Has reports whether a group/version (or group/version/Kind) is available.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type HelmVersion struct {
	Version      string
	GitCommit    string
	GitTreeState string
	GoVersion    string
}

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion HelmVersion
}

// builtinAPIs is what a cluster without add-ons serves (a subset of Helm's defaults, which come
// from client-go's scheme), with the kinds templates commonly probe for.
var builtinAPIs = map[string][]string{
	"v1": {"ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace", "PersistentVolume",
		"PersistentVolumeClaim", "Pod", "ReplicationController", "ResourceQuota", "Secret",
		"Service", "ServiceAccount"},
	"apps/v1":                         {"DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"},
	"batch/v1":                        {"CronJob", "Job"},
	"autoscaling/v1":                  {"HorizontalPodAutoscaler"},
	"autoscaling/v2":                  {"HorizontalPodAutoscaler"},
	"policy/v1":                       {"PodDisruptionBudget"},
	"networking.k8s.io/v1":            {"Ingress", "IngressClass", "NetworkPolicy"},
	"rbac.authorization.k8s.io/v1":    {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"},
	"storage.k8s.io/v1":               {"CSIDriver", "StorageClass", "VolumeAttachment"},
	"apiextensions.k8s.io/v1":         {"CustomResourceDefinition"},
	"admissionregistration.k8s.io/v1": {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"},
	"coordination.k8s.io/v1":          {"Lease"},
	"discovery.k8s.io/v1":             {"EndpointSlice"},
	"scheduling.k8s.io/v1":            {"PriorityClass"},
	"authentication.k8s.io/v1":        {"TokenReview"},
	"authorization.k8s.io/v1":         {"SelfSubjectAccessReview", "SubjectAccessReview"},
	"certificates.k8s.io/v1":          {"CertificateSigningRequest"},
	"node.k8s.io/v1":                  {"RuntimeClass"},
	"events.k8s.io/v1":                {"Event"},
}

func newCapabilities(kubeVersion string, extra []string) (*Capabilities, error) {
	v, err := semver.NewVersion(kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("--kube-version %q is not a version like v1.30.0: %v", kubeVersion, err)
	}
	var apis VersionSet
	var gvs []string
	for gv := range builtinAPIs {
		gvs = append(gvs, gv)
	}
	sort.Strings(gvs)
	for _, gv := range gvs {
		apis = append(apis, gv)
		for _, kind := range builtinAPIs[gv] {
			apis = append(apis, gv+"/"+kind)
		}
	}
	for _, a := range extra {
		for _, item := range strings.Split(a, ",") {
			if item = strings.TrimSpace(item); item != "" {
				apis = append(apis, item)
			}
		}
	}
	return &Capabilities{
		KubeVersion: KubeVersion{
			Version: fmt.Sprintf("v%d.%d.%d", v.Major(), v.Minor(), v.Patch()),
			Major:   fmt.Sprint(v.Major()),
			Minor:   fmt.Sprint(v.Minor()),
		},
		APIVersions: apis,
		HelmVersion: HelmVersion{Version: "v3.14.0+helm-render", GoVersion: "go1.19"},
	}, nil
}

func checkKubeVersion(c *Chart, caps *Capabilities) error {
	if c.Metadata.KubeVersion == "" {
		return nil
	}
	constraint, err := semver.NewConstraint(c.Metadata.KubeVersion)
	if err != nil {
		return fmt.Errorf("%s/Chart.yaml: kubeVersion %q: %v", c.dir, c.Metadata.KubeVersion, err)
	}
	v, err := semver.NewVersion(caps.KubeVersion.Version)
	if err != nil {
		return err
	}
	if !constraint.Check(v) {
		return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s",
			c.Metadata.KubeVersion, caps.KubeVersion.Version)
	}
	return nil
}

// Files is .Files: the chart's non-template files.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }

func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}

func (f Files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func (f Files) sortedNames() []string {
	var names []string
	for n := range f {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (f Files) AsConfig() string {
	m := map[string]string{}
	for _, n := range f.sortedNames() {
		m[path.Base(n)] = string(f[n])
	}
	return toYAML(m)
}

func (f Files) AsSecrets() string {
	m := map[string]string{}
	for _, n := range f.sortedNames() {
		m[path.Base(n)] = b64(f[n])
	}
	return toYAML(m)
}

// Helm's YAML/JSON functions. toYaml goes through JSON like sigs.k8s.io/yaml, so the output
// (sorted keys, JSON number forms) matches Helm's byte for byte.

func toYAMLBytes(v interface{}) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var obj interface{}
	if err := yaml.Unmarshal(j, &obj); err != nil {
		return nil, err
	}
	return yaml.Marshal(obj)
}

func toYAML(v interface{}) string {
	b, err := toYAMLBytes(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

func mustToYAML(v interface{}) (string, error) {
	b, err := toYAMLBytes(v)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

func fromYAML(s string) map[string]interface{} {
	m, err := parseValuesYAML([]byte(s))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	var raw interface{}
	if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
		return []interface{}{err.Error()}
	}
	v, err := jsonify(raw)
	if err != nil {
		return []interface{}{err.Error()}
	}
	l, ok := v.([]interface{})
	if !ok {
		return []interface{}{fmt.Sprintf("not an array: %T", v)}
	}
	return l
}

func toJSON(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	var l []interface{}
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return []interface{}{err.Error()}
	}
	return l
}

func required(msg string, v interface{}) (interface{}, error) {
	if v == nil {
		return v, errors.New(msg)
	}
	if s, ok := v.(string); ok && s == "" {
		return v, errors.New(msg)
	}
	return v, nil
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

const maxIncludeDepth = 1000

// installFuncs gives t Helm's function map; include and tpl close over t.
func installFuncs(t *template.Template, strict bool) {
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	depth := map[string]int{}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if depth[name] > maxIncludeDepth {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		depth[name]++
		defer func() { depth[name]-- }()
		var b strings.Builder
		err := t.ExecuteTemplate(&b, name, data)
		return b.String(), err
	}
	funcs["tpl"] = func(text string, vals interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		installFuncs(clone, strict)
		name := "tpl"
		if m, ok := vals.(map[string]interface{}); ok {
			if tm, ok := m["Template"].(map[string]interface{}); ok {
				if n, ok := tm["Name"].(string); ok {
					name = n + "/tpl"
				}
			}
		}
		parsed, err := clone.New(name).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", text, err)
		}
		var b strings.Builder
		if err := parsed.Execute(&b, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
		}
		return strings.ReplaceAll(b.String(), "<no value>", ""), nil
	}
	funcs["required"] = required
	funcs["toYaml"] = toYAML
	funcs["mustToYaml"] = mustToYAML
	funcs["fromYaml"] = fromYAML
	funcs["fromYamlArray"] = fromYAMLArray
	funcs["toJson"] = toJSON
	funcs["mustToJson"] = func(v interface{}) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	}
	funcs["fromJson"] = fromJSON
	funcs["fromJsonArray"] = fromJSONArray
	funcs["toToml"] = func(interface{}) (string, error) {
		return "", errors.New("toToml is not supported by helm-render")
	}
	funcs["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil // as `helm template`: no cluster to look in
	}
	t.Funcs(funcs)
	if strict {
		t.Option("missingkey=error")
	} else {
		t.Option("missingkey=zero")
	}
}

type renderedTemplate struct {
	name    string // e.g. "ts-kube-agent/templates/role.yaml"
	relName string // e.g. "templates/role.yaml" (for --show-only)
	output  string
}

type renderResult struct {
	manifests []renderedTemplate
	notes     string
	warnings  []string
}

type templateJob struct {
	chart   *Chart
	file    chartFile
	name    string
	values  map[string]interface{}
	enabled bool
}

// collectJobs walks the enabled charts, pairing each template with its chart's scoped values.
func collectJobs(c *Chart, values map[string]interface{}, enabled bool, jobs *[]templateJob) {
	for _, f := range c.templates {
		*jobs = append(*jobs, templateJob{c, f, c.templatePrefix() + "/" + f.name, values, enabled})
	}
	for _, sub := range c.dependencies {
		subVals, _ := values[sub.Name()].(map[string]interface{})
		subEnabled := enabled && subchartEnabled(c.dependencyFor(sub), values)
		collectJobs(sub, subVals, subEnabled, jobs)
	}
}

func render(c *Chart, user map[string]interface{}, release map[string]interface{}, caps *Capabilities, strict bool) (*renderResult, error) {
	values, warnings := coalesce(c, user)
	var jobs []templateJob
	collectJobs(c, values, true, &jobs)
	// Deeper paths first, so that parent charts parse last and their defines win (Helm's order).
	sort.SliceStable(jobs, func(i, j int) bool {
		di, dj := strings.Count(jobs[i].name, "/"), strings.Count(jobs[j].name, "/")
		if di != dj {
			return di > dj
		}
		return jobs[i].name < jobs[j].name
	})
	t := template.New("gotpl")
	installFuncs(t, strict)
	for _, j := range jobs {
		if _, err := t.New(j.name).Parse(string(j.file.data)); err != nil {
			return nil, fmt.Errorf("parse error in %s", strings.TrimPrefix(err.Error(), "template: "))
		}
	}
	result := &renderResult{warnings: warnings}
	for _, j := range jobs {
		base := path.Base(j.file.name)
		if !j.enabled || strings.HasPrefix(base, "_") || j.chart.Metadata.Type == "library" {
			continue
		}
		top := map[string]interface{}{
			"Values":       j.values,
			"Release":      release,
			"Chart":        j.chart.Metadata,
			"Capabilities": caps,
			"Files":        chartFiles(j.chart),
			"Template": map[string]interface{}{
				"Name":     j.name,
				"BasePath": j.chart.templatePrefix() + "/templates",
			},
		}
		var b strings.Builder
		if err := t.ExecuteTemplate(&b, j.name, top); err != nil {
			return nil, cleanExecError(err)
		}
		out := strings.ReplaceAll(b.String(), "<no value>", "")
		if base == "NOTES.txt" {
			if j.chart == c {
				result.notes = out
			}
			continue
		}
		result.manifests = append(result.manifests, renderedTemplate{j.name, j.file.name, out})
	}
	sort.SliceStable(result.manifests, func(i, k int) bool {
		return result.manifests[i].name < result.manifests[k].name
	})
	return result, nil
}

func chartFiles(c *Chart) Files {
	f := Files{}
	for _, file := range c.files {
		f[file.name] = file.data
	}
	return f
}

// cleanExecError shortens Go's execution errors the way Helm does: the template location, then
// the innermost message (what `fail` or `required` said).
func cleanExecError(err error) error {
	tokens := strings.SplitN(err.Error(), ": ", 3)
	if len(tokens) != 3 {
		return fmt.Errorf("execution error: %v", err)
	}
	location, msg := tokens[1], tokens[2]
	if m := innermostCall.FindAllStringIndex(msg, -1); m != nil {
		msg = msg[m[len(m)-1][1]:]
	}
	return fmt.Errorf("execution error at (%s): %s", location, msg)
}

var innermostCall = regexp.MustCompile(`error calling \w+: `)

var docSeparator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

func kindRank(kind string) int {
	for i, k := range installOrder {
		if k == kind {
			return i
		}
	}
	return len(installOrder)
}

type manifestDoc struct {
	source string
	body   string
	rank   int
	seq    int
}

// writeManifests splits every rendered template into YAML documents, checks each parses, and
// prints them in Helm's install order with "# Source:" headers.
func writeManifests(w io.Writer, rendered []renderedTemplate, showOnly []string, format string) error {
	var docs []manifestDoc
	matched := map[string]bool{}
	for _, r := range rendered {
		if len(showOnly) > 0 {
			keep := false
			for _, s := range showOnly {
				if s == r.relName || s == r.name {
					keep = true
					matched[s] = true
				}
			}
			if !keep {
				continue
			}
		}
		for _, body := range docSeparator.Split(r.output, -1) {
			if strings.TrimSpace(body) == "" {
				continue
			}
			var head struct {
				Kind string `yaml:"kind"`
			}
			if err := yaml.Unmarshal([]byte(body), &head); err != nil {
				return fmt.Errorf("YAML parse error on %s: %v\n--- rendered document ---\n%s", r.name, err, body)
			}
			docs = append(docs, manifestDoc{r.name, strings.TrimSpace(body), kindRank(head.Kind), len(docs)})
		}
	}
	for _, s := range showOnly {
		if !matched[s] {
			return fmt.Errorf("could not find template %s in chart", s)
		}
	}
	sort.SliceStable(docs, func(i, j int) bool {
		if docs[i].rank != docs[j].rank {
			return docs[i].rank < docs[j].rank
		}
		return docs[i].seq < docs[j].seq
	})
	if format == "json" {
		var out []interface{}
		for _, d := range docs {
			objs, err := decodeYAMLDocuments([]byte(d.body))
			if err != nil {
				return fmt.Errorf("%s: %w", d.source, err)
			}
			for _, obj := range objs {
				out = append(out, map[string]interface{}{"source": d.source, "object": obj})
			}
		}
		return writeJSON(w, out)
	}
	for _, d := range docs {
		if _, err := fmt.Fprintf(w, "---\n# Source: %s\n%s\n", d.source, d.body); err != nil {
			return err
		}
	}
	return nil
}

// decodeYAMLDocuments parses every document of a YAML stream into JSON-typed values. Stricter
// than Helm: a key repeated in one mapping is an error (the API server rejects it too, while a
// plain decode would silently keep the last value).
func decodeYAMLDocuments(data []byte) ([]interface{}, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.SetStrict(true)
	var docs []interface{}
	for {
		var raw interface{}
		err := dec.Decode(&raw)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if raw == nil {
			continue
		}
		v, err := jsonify(raw)
		if err != nil {
			return nil, err
		}
		docs = append(docs, v)
	}
	return docs, nil
}

func writeJSON(w io.Writer, v interface{}) error {
	if v == nil {
		v = []interface{}{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
