package spec

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// storable reports, through add, every string of v's JSON encoding (a
// key or a value, anywhere) that holds a NUL character, which PostgreSQL's
// text and jsonb refuse: a spec or release holding one could never be
// written to the audit trail, whose writes would then be retried forever
// and nothing of the run recorded. It walks the encoding, which is what the
// trail stores, so no field is missed; field names the root ("" for a
// spec's own fields).
func storable(add func(string, string, ...any), root string, v any) {
	b, err := json.Marshal(v)
	if err != nil || !strings.Contains(string(b), `\u0000`) {
		return
	}
	var doc any
	if json.Unmarshal(b, &doc) != nil {
		return
	}
	walkStrings(doc, root, func(path string) {
		add(path, "must not hold a NUL character (\\u0000): the audit trail cannot store it")
	})
}

// walkStrings calls bad with the path of each key or string value of doc
// that holds a NUL.
func walkStrings(doc any, path string, bad func(string)) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch d := doc.(type) {
	case string:
		if strings.ContainsRune(d, 0) {
			bad(path)
		}
	case []any:
		for i, e := range d {
			walkStrings(e, fmt.Sprintf("%s[%d]", path, i), bad)
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(d)) {
			if strings.ContainsRune(k, 0) {
				bad(join(strings.ReplaceAll(k, "\x00", `\u0000`)))
				continue
			}
			walkStrings(d[k], join(k), bad)
		}
	}
}
