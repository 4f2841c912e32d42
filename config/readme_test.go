package config

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryKey keeps the README's configuration reference in
// step with the Config struct: every key, its default and its variable.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `") {
			cells := strings.Split(line, "|")
			rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = line
		}
	}
	for _, k := range Keys() {
		row, ok := rows[k.Path]
		if !ok {
			t.Errorf("README has no row for key %s", k.Path)
			continue
		}
		if k.Default != "" && !strings.Contains(row, "`"+k.Default+"`") {
			t.Errorf("README row for %s does not give the default %q: %s", k.Path, k.Default, row)
		}
		if k.Env != "" && !strings.Contains(row, "`"+k.Env+"`") {
			t.Errorf("README row for %s does not name %s", k.Path, k.Env)
		}
	}
}
