package main

// Loading a chart directory the way Helm's loader does: Chart.yaml metadata, values.yaml
// defaults, templates/ (every file is a template; "_*" files are partials), other files for
// .Files, subcharts under charts/<dir>/, and .helmignore.

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	semver "github.com/Masterminds/semver"
	yaml "gopkg.in/yaml.v2"
)

// Maintainer and Dependency mirror Helm's chart.Metadata sub-structures.
type Maintainer struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
	URL   string `yaml:"url"`
}

type Dependency struct {
	Name         string        `yaml:"name"`
	Version      string        `yaml:"version"`
	Repository   string        `yaml:"repository"`
	Condition    string        `yaml:"condition"`
	Tags         []string      `yaml:"tags"`
	Enabled      bool          `yaml:"enabled"`
	ImportValues []interface{} `yaml:"import-values"`
	Alias        string        `yaml:"alias"`
}

// Metadata is Chart.yaml; templates see its Go field names (.Chart.Name, .Chart.AppVersion).
type Metadata struct {
	Name         string            `yaml:"name"`
	Home         string            `yaml:"home"`
	Sources      []string          `yaml:"sources"`
	Version      string            `yaml:"version"`
	Description  string            `yaml:"description"`
	Keywords     []string          `yaml:"keywords"`
	Maintainers  []*Maintainer     `yaml:"maintainers"`
	Icon         string            `yaml:"icon"`
	APIVersion   string            `yaml:"apiVersion"`
	Condition    string            `yaml:"condition"`
	Tags         string            `yaml:"tags"`
	AppVersion   string            `yaml:"appVersion"`
	Deprecated   bool              `yaml:"deprecated"`
	Annotations  map[string]string `yaml:"annotations"`
	KubeVersion  string            `yaml:"kubeVersion"`
	Dependencies []*Dependency     `yaml:"dependencies"`
	Type         string            `yaml:"type"`
}

type chartFile struct {
	name string // slash-separated, relative to the chart root
	data []byte
}

// Chart is one loaded chart; subcharts hang off dependencies.
type Chart struct {
	Metadata     *Metadata
	dir          string
	values       map[string]interface{}
	templates    []chartFile
	files        []chartFile
	dependencies []*Chart
	parent       *Chart
}

// Name is the name the chart is known by in its parent (alias-aware).
func (c *Chart) Name() string { return c.Metadata.Name }

// templatePrefix is the prefix Helm gives this chart's template names, e.g.
// "parent/charts/child".
func (c *Chart) templatePrefix() string {
	if c.parent == nil {
		return c.Name()
	}
	return c.parent.templatePrefix() + "/charts/" + c.Name()
}

func loadChart(dir string, parent *Chart) (*Chart, error) {
	metaBytes, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a chart directory: %w", dir, err)
	}
	meta := &Metadata{}
	if err := yaml.Unmarshal(metaBytes, meta); err != nil {
		return nil, fmt.Errorf("%s/Chart.yaml: %w", dir, err)
	}
	if err := validateMetadata(meta); err != nil {
		return nil, fmt.Errorf("%s/Chart.yaml: %w", dir, err)
	}
	c := &Chart{Metadata: meta, dir: dir, parent: parent, values: map[string]interface{}{}}
	if data, err := os.ReadFile(filepath.Join(dir, "values.yaml")); err == nil {
		if c.values, err = parseValuesYAML(data); err != nil {
			return nil, fmt.Errorf("%s/values.yaml: %w", dir, err)
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	ignore, err := readHelmignore(dir)
	if err != nil {
		return nil, err
	}
	subchartDirs := map[string]bool{}
	err = filepath.Walk(dir, func(p string, info os.FileInfo, walkErr error) error {
		if walkErr != nil {
			return walkErr
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if ignore.matches(rel, info.IsDir()) {
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if info.IsDir() {
			if path.Dir(rel) == "charts" {
				subchartDirs[p] = true
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "Chart.lock" ||
			rel == "values.schema.json" || rel == ".helmignore":
			return nil
		case strings.HasPrefix(rel, "charts/"):
			if strings.HasSuffix(rel, ".tgz") {
				return fmt.Errorf("%s: packaged subcharts are not supported; unpack it into charts/<name>/", p)
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, "templates/") {
			c.templates = append(c.templates, chartFile{rel, data})
		} else {
			c.files = append(c.files, chartFile{rel, data})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var subDirs []string
	for d := range subchartDirs {
		subDirs = append(subDirs, d)
	}
	sort.Strings(subDirs)
	for _, d := range subDirs {
		sub, err := loadChart(d, c)
		if err != nil {
			return nil, err
		}
		c.dependencies = append(c.dependencies, sub)
	}
	if err := applyAliases(c); err != nil {
		return nil, err
	}
	return c, nil
}

func validateMetadata(m *Metadata) error {
	if m.APIVersion == "" {
		return fmt.Errorf("apiVersion is required (v2)")
	}
	if m.APIVersion != "v1" && m.APIVersion != "v2" {
		return fmt.Errorf("apiVersion %q is not v1 or v2", m.APIVersion)
	}
	if m.Name == "" {
		return fmt.Errorf("name is required")
	}
	if m.Version == "" {
		return fmt.Errorf("version is required")
	}
	if _, err := semver.StrictNewVersion(m.Version); err != nil {
		return fmt.Errorf("version %q is not SemVer 2: %v", m.Version, err)
	}
	if m.Type != "" && m.Type != "application" && m.Type != "library" {
		return fmt.Errorf("type %q is not application or library", m.Type)
	}
	return nil
}

// applyAliases renames subcharts listed with an alias in the parent's dependencies.
func applyAliases(c *Chart) error {
	for _, dep := range c.Metadata.Dependencies {
		if dep.Alias == "" {
			continue
		}
		found := false
		for _, sub := range c.dependencies {
			if sub.Metadata.Name == dep.Name {
				copyMeta := *sub.Metadata
				copyMeta.Name = dep.Alias
				sub.Metadata = &copyMeta
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s/Chart.yaml: dependency %q (alias %q) is not in charts/", c.dir, dep.Name, dep.Alias)
		}
	}
	return nil
}

// dependencyFor returns the Chart.yaml entry describing sub, if any.
func (c *Chart) dependencyFor(sub *Chart) *Dependency {
	for _, dep := range c.Metadata.Dependencies {
		if dep.Alias == sub.Name() || (dep.Alias == "" && dep.Name == sub.Name()) {
			return dep
		}
	}
	return nil
}

// helmignore implements the subset of .helmignore Helm documents: blank lines and # comments
// skipped, "dir/" matches directories, patterns with a slash match the relative path, others
// the base name, all with path.Match globbing.
type helmignore struct{ patterns []string }

func readHelmignore(dir string) (*helmignore, error) {
	data, err := os.ReadFile(filepath.Join(dir, ".helmignore"))
	if os.IsNotExist(err) {
		return &helmignore{}, nil
	}
	if err != nil {
		return nil, err
	}
	h := &helmignore{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			return nil, fmt.Errorf("%s/.helmignore: negated patterns (%q) are not supported", dir, line)
		}
		if _, err := path.Match(strings.TrimSuffix(line, "/"), "x"); err != nil {
			return nil, fmt.Errorf("%s/.helmignore: bad pattern %q: %v", dir, line, err)
		}
		h.patterns = append(h.patterns, line)
	}
	return h, nil
}

func (h *helmignore) matches(rel string, isDir bool) bool {
	for _, p := range h.patterns {
		dirOnly := strings.HasSuffix(p, "/")
		p = strings.TrimSuffix(p, "/")
		if dirOnly && !isDir {
			continue
		}
		target := path.Base(rel)
		if strings.Contains(p, "/") {
			target = rel
			p = strings.TrimPrefix(p, "/")
		}
		if ok, _ := path.Match(p, target); ok {
			return true
		}
	}
	return false
}
