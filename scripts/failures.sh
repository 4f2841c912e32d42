#!/usr/bin/env bash
# failures.sh LOG prints the whole output (last 300 lines each) of every top-level test that failed
# in a `go test -v` log. The make targets filter the live output down to one line per test; this
# shows what the filter hid when something fails.
set -euo pipefail
log=${1:?usage: scripts/failures.sh LOG}
[ -f "$log" ] || exit 0
awk '
	/^=== RUN   Test[^\/]*$/ { n = 0; delete buf }
	{ buf[n++ % 300] = $0 }
	/^--- FAIL: / || /^panic: / {
		print "==== full output of the failed test (" file ") ===="
		start = n > 300 ? n - 300 : 0
		for (i = start; i < n; i++) print buf[i % 300]
		n = 0; delete buf
	}
' file="$log" "$log"
