package main

// Values the way Helm builds them: YAML read with JSON number semantics (every number a
// float64, as sigs.k8s.io/yaml does), user values merged from -f files then --set, then
// coalesced over the chart defaults (user wins; a user null deletes a default), subchart
// values scoped under their name with globals copied down.

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	yaml "gopkg.in/yaml.v2"
)

// parseValuesYAML reads a values document into map[string]interface{} with JSON types.
func parseValuesYAML(data []byte) (map[string]interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	v, err := jsonify(raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("the top level must be a map, got %T", v)
	}
	return m, nil
}

// jsonify converts yaml.v2 output into what encoding/json would produce for the same document.
func jsonify(v interface{}) (interface{}, error) {
	converted, err := stringKeys(v)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(converted)
	if err != nil {
		return nil, err
	}
	var out interface{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func stringKeys(v interface{}) (interface{}, error) {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			c, err := stringKeys(val)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			c, err := stringKeys(val)
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		return m, nil
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, val := range t {
			c, err := stringKeys(val)
			if err != nil {
				return nil, err
			}
			l[i] = c
		}
		return l, nil
	default:
		return v, nil
	}
}

func userValues(files, sets, setStrings []string) (map[string]interface{}, error) {
	base := map[string]interface{}{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("values file: %w", err)
		}
		v, err := parseValuesYAML(data)
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w", f, err)
		}
		base = mergeMaps(base, v)
	}
	for _, s := range sets {
		if err := parseSet(s, base, false); err != nil {
			return nil, fmt.Errorf("--set %q: %w", s, err)
		}
	}
	for _, s := range setStrings {
		if err := parseSet(s, base, true); err != nil {
			return nil, fmt.Errorf("--set-string %q: %w", s, err)
		}
	}
	return base, nil
}

// mergeMaps deep-merges b over a (Helm's cli/values mergeMaps).
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]interface{}); ok {
			if am, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// --set parsing, following Helm's strvals: "a.b=c,d[0]=e,f={x,y}", backslash escapes "," "."
// "=" "[" and "{"; values typed unless --set-string.

type keySegment struct {
	name  string
	index int // -1: a map key; >= 0: list index after name
}

func parseSet(line string, dest map[string]interface{}, asString bool) error {
	for _, pair := range splitUnescaped(line, ',', true) {
		if pair == "" {
			continue
		}
		eq := indexUnescaped(pair, '=')
		if eq < 0 {
			return fmt.Errorf("key %q has no value (expected key=value)", unescape(pair))
		}
		segs, err := parseKey(pair[:eq])
		if err != nil {
			return err
		}
		raw := pair[eq+1:]
		var value interface{}
		if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
			var list []interface{}
			inner := raw[1 : len(raw)-1]
			if inner != "" {
				for _, item := range splitUnescaped(inner, ',', false) {
					list = append(list, typedValue(unescape(item), asString))
				}
			}
			if list == nil {
				list = []interface{}{}
			}
			value = list
		} else {
			value = typedValue(unescape(raw), asString)
		}
		if err := setPath(dest, segs, value); err != nil {
			return err
		}
	}
	return nil
}

func typedValue(v string, asString bool) interface{} {
	if asString {
		return v
	}
	switch {
	case strings.EqualFold(v, "true"):
		return true
	case strings.EqualFold(v, "false"):
		return false
	case strings.EqualFold(v, "null"):
		return nil
	case v == "0":
		return int64(0)
	}
	if v != "" && v[0] != '0' {
		if i, err := strconv.ParseInt(v, 10, 64); err == nil {
			return i
		}
	}
	return v
}

// splitUnescaped splits s at sep characters not preceded by a backslash and, when braces is
// set, not inside {...}. Escapes are kept for later unescaping.
func splitUnescaped(s string, sep byte, braces bool) []string {
	var parts []string
	depth := 0
	start := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++
		case braces && s[i] == '{':
			depth++
		case braces && s[i] == '}' && depth > 0:
			depth--
		case s[i] == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func indexUnescaped(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == c {
			return i
		}
	}
	return -1
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func parseKey(key string) ([]keySegment, error) {
	if key == "" {
		return nil, fmt.Errorf("empty key")
	}
	var segs []keySegment
	for _, part := range splitUnescaped(key, '.', false) {
		name := part
		indexes := []int{}
		for {
			open := indexUnescaped(name, '[')
			if open < 0 {
				break
			}
			closeIdx := strings.IndexByte(name[open:], ']')
			if closeIdx < 0 {
				return nil, fmt.Errorf("key %q: unterminated [", key)
			}
			n, err := strconv.Atoi(name[open+1 : open+closeIdx])
			if err != nil || n < 0 || n > 65535 {
				return nil, fmt.Errorf("key %q: list index must be 0..65535", key)
			}
			indexes = append(indexes, n)
			name = name[:open] + name[open+closeIdx+1:]
		}
		name = unescape(name)
		if name == "" {
			return nil, fmt.Errorf("key %q has an empty segment", key)
		}
		if len(indexes) > 1 {
			return nil, fmt.Errorf("key %q: nested list indexes are not supported", key)
		}
		if len(indexes) == 1 {
			segs = append(segs, keySegment{name, indexes[0]})
		} else {
			segs = append(segs, keySegment{name, -1})
		}
	}
	return segs, nil
}

func setPath(dest map[string]interface{}, segs []keySegment, value interface{}) error {
	cur := dest
	for i, s := range segs {
		last := i == len(segs)-1
		if s.index < 0 {
			if last {
				cur[s.name] = value
				return nil
			}
			next, ok := cur[s.name].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				cur[s.name] = next
			}
			cur = next
			continue
		}
		list, _ := cur[s.name].([]interface{})
		for len(list) <= s.index {
			list = append(list, nil)
		}
		cur[s.name] = list
		if last {
			list[s.index] = value
			return nil
		}
		next, ok := list[s.index].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			list[s.index] = next
		}
		cur = next
	}
	return nil
}

// coalesce returns the values a chart's templates see: user values over the chart's defaults,
// recursively into subcharts (Helm's chartutil.CoalesceValues).
func coalesce(c *Chart, user map[string]interface{}) (map[string]interface{}, []string) {
	var warnings []string
	warn := func(format string, args ...interface{}) {
		warnings = append(warnings, fmt.Sprintf(format, args...))
	}
	dst := deepCopyMap(user)
	coalesceChart(c, dst, "", warn)
	return dst, warnings
}

func coalesceChart(c *Chart, dst map[string]interface{}, prefix string, warn func(string, ...interface{})) {
	coalesceTables(dst, deepCopyMap(c.values), prefix, warn)
	for _, sub := range c.dependencies {
		subVals, ok := dst[sub.Name()].(map[string]interface{})
		if !ok {
			if dst[sub.Name()] != nil {
				warn("%s%s is not a table; subchart values replaced", prefix, sub.Name())
			}
			subVals = map[string]interface{}{}
			dst[sub.Name()] = subVals
		}
		coalesceGlobals(subVals, dst)
		coalesceChart(sub, subVals, prefix+sub.Name()+".", warn)
	}
}

func coalesceTables(dst, src map[string]interface{}, prefix string, warn func(string, ...interface{})) {
	for key, val := range src {
		full := prefix + key
		dv, present := dst[key]
		switch {
		case present && dv == nil:
			delete(dst, key)
		case !present:
			dst[key] = val
		case isTable(val):
			if isTable(dv) {
				coalesceTables(dv.(map[string]interface{}), val.(map[string]interface{}), full+".", warn)
			} else {
				warn("cannot overwrite table with non table for %s (%v)", full, val)
			}
		case isTable(dv) && val != nil:
			warn("destination for %s is a table; ignoring non-table value (%v)", full, val)
		}
	}
}

func coalesceGlobals(child, parent map[string]interface{}) {
	pg, _ := parent["global"].(map[string]interface{})
	cg, _ := child["global"].(map[string]interface{})
	if cg == nil {
		cg = map[string]interface{}{}
	}
	for k, v := range pg {
		if vm, ok := v.(map[string]interface{}); ok {
			if cm, ok := cg[k].(map[string]interface{}); ok {
				cg[k] = mergeMaps(cm, vm)
				continue
			}
		}
		cg[k] = deepCopy(v)
	}
	child["global"] = cg
}

func isTable(v interface{}) bool {
	_, ok := v.(map[string]interface{})
	return ok
}

func deepCopyMap(m map[string]interface{}) map[string]interface{} {
	return deepCopy(m).(map[string]interface{})
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[k] = deepCopy(val)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, val := range t {
			l[i] = deepCopy(val)
		}
		return l
	default:
		return v
	}
}

// lookupPath resolves "a.b.c" in values; ok is false when any step is missing.
func lookupPath(values map[string]interface{}, dotted string) (interface{}, bool) {
	var cur interface{} = values
	for _, part := range strings.Split(dotted, ".") {
		m, ok := cur.(map[string]interface{})
		if !ok {
			return nil, false
		}
		cur, ok = m[part]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// subchartEnabled evaluates a dependency's condition ("a.enabled,b.enabled": the first path
// that resolves to a bool decides) against the parent's coalesced values.
func subchartEnabled(dep *Dependency, parentValues map[string]interface{}) bool {
	if dep == nil || dep.Condition == "" {
		return true
	}
	for _, cond := range strings.Split(dep.Condition, ",") {
		v, ok := lookupPath(parentValues, strings.TrimSpace(cond))
		if !ok {
			continue
		}
		if b, ok := v.(bool); ok {
			return b
		}
	}
	return true
}
