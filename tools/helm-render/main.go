// Command helm-render renders a Helm chart directory the way `helm template` does, for machines
// without Helm: Go's text/template (the engine Helm uses) with sprig's TxtFuncMap (Helm's
// function library, minus env/expandenv as in Helm) and Helm's own functions (include, tpl,
// required, toYaml, fromYaml, fromYamlArray, toJson, fromJson, fromJsonArray, lookup).
//
//	helm-render [flags] [RELEASE_NAME] CHART_DIR
//
//	-f, --values FILE          values file; repeatable, later files win
//	--set a.b=c,x[0]=y         repeatable; typed like Helm (int64, bool, null deletes a default)
//	--set-string a.b=c         as --set, every value a string
//	--name NAME                release name (default "release-name")
//	--namespace NS             release namespace (default "default")
//	--kube-version V           .Capabilities.KubeVersion (default v1.30.0)
//	-a, --api-versions G/V     add to .Capabilities.APIVersions (also G/V/Kind); repeatable
//	--show-only PATH           render only this template (e.g. templates/role.yaml); repeatable
//	--notes-out FILE           write the rendered top-level NOTES.txt to FILE
//	--strict                   fail on a missing map key instead of rendering it empty
//	--is-upgrade               .Release.IsUpgrade=true, IsInstall=false
//	-o yaml|json               json: a JSON array of {"source": ..., "object": ...} instead
//
//	helm-render --yaml2json FILE|-   converts a multi-document YAML stream (kubectl kustomize
//	                                 output, say) to a JSON array, with Helm's YAML semantics.
//
// Output is what `helm template` prints: a multi-document YAML stream, each document preceded
// by "# Source: <chart>/templates/<file>", ordered by Helm's install order of kinds. Subcharts
// under charts/<dir>/ are loaded with Helm's value scoping (values.<name>, global) and
// Chart.yaml dependency conditions and aliases. Exit status 1 with a message naming the
// template on any error (parse, execution, `required`, `fail`, invalid YAML output).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	valueFiles  stringList
	sets        stringList
	setStrings  stringList
	apiVersions stringList
	showOnly    stringList
	release     string
	namespace   string
	kubeVersion string
	notesOut    string
	strict      bool
	isUpgrade   bool
	output      string
	yaml2json   string
	chartDir    string
}

func parseArgs(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("helm-render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&o.valueFiles, "f", "values file (repeatable)")
	fs.Var(&o.valueFiles, "values", "values file (repeatable)")
	fs.Var(&o.sets, "set", "set values on the command line (repeatable)")
	fs.Var(&o.setStrings, "set-string", "set STRING values on the command line (repeatable)")
	fs.Var(&o.apiVersions, "a", "extra API version for .Capabilities.APIVersions (repeatable)")
	fs.Var(&o.apiVersions, "api-versions", "extra API version for .Capabilities.APIVersions (repeatable)")
	fs.Var(&o.showOnly, "show-only", "render only this template path (repeatable)")
	fs.StringVar(&o.release, "name", "release-name", "release name")
	fs.StringVar(&o.namespace, "namespace", "default", "release namespace")
	fs.StringVar(&o.kubeVersion, "kube-version", "v1.30.0", "Kubernetes version for .Capabilities")
	fs.StringVar(&o.notesOut, "notes-out", "", "write the rendered NOTES.txt to this file")
	fs.BoolVar(&o.strict, "strict", false, "fail on missing map keys")
	fs.BoolVar(&o.isUpgrade, "is-upgrade", false, "render as an upgrade")
	fs.StringVar(&o.output, "o", "yaml", "output format: yaml or json")
	fs.StringVar(&o.yaml2json, "yaml2json", "", "convert this multi-document YAML file (- for stdin) to JSON and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: helm-render [flags] [RELEASE_NAME] CHART_DIR")
		fs.PrintDefaults()
	}
	// Like helm, accept flags before and after the positional arguments.
	var positional []string
	nameSet := false
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "name" {
			nameSet = true
		}
	})
	if o.yaml2json != "" {
		if len(positional) != 0 {
			return nil, fmt.Errorf("--yaml2json takes no chart")
		}
		return o, nil
	}
	if o.output != "yaml" && o.output != "json" {
		return nil, fmt.Errorf("-o must be yaml or json, not %q", o.output)
	}
	switch len(positional) {
	case 1:
		o.chartDir = positional[0]
	case 2:
		if nameSet {
			return nil, fmt.Errorf("release name given twice (--name and %q)", positional[0])
		}
		o.release, o.chartDir = positional[0], positional[1]
	default:
		fs.Usage()
		return nil, fmt.Errorf("expected [RELEASE_NAME] CHART_DIR, got %d arguments", len(positional))
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	if o.yaml2json != "" {
		return convertYAMLStream(o.yaml2json, stdout)
	}
	chart, err := loadChart(o.chartDir, nil)
	if err != nil {
		return err
	}
	user, err := userValues(o.valueFiles, o.sets, o.setStrings)
	if err != nil {
		return err
	}
	caps, err := newCapabilities(o.kubeVersion, o.apiVersions)
	if err != nil {
		return err
	}
	if err := checkKubeVersion(chart, caps); err != nil {
		return err
	}
	release := map[string]interface{}{
		"Name":      o.release,
		"Namespace": o.namespace,
		"Service":   "Helm",
		"Revision":  1,
		"IsInstall": !o.isUpgrade,
		"IsUpgrade": o.isUpgrade,
	}
	result, err := render(chart, user, release, caps, o.strict)
	if err != nil {
		return err
	}
	for _, w := range result.warnings {
		fmt.Fprintf(stderr, "helm-render: warning: %s\n", w)
	}
	var out bytes.Buffer
	if err := writeManifests(&out, result.manifests, o.showOnly, o.output); err != nil {
		return err
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return err
	}
	if o.notesOut != "" {
		if err := os.WriteFile(o.notesOut, []byte(result.notes), 0o644); err != nil {
			return fmt.Errorf("writing notes: %w", err)
		}
	}
	return nil
}

// convertYAMLStream prints a multi-document YAML file as a JSON array (empty documents skipped).
func convertYAMLStream(name string, stdout io.Writer) error {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return err
	}
	docs, err := decodeYAMLDocuments(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return writeJSON(stdout, docs)
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintf(os.Stderr, "helm-render: %v\n", err)
		}
		os.Exit(1)
	}
}
