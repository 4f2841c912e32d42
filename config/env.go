package config

import (
	"strings"
)

// maxSuggestDistance is the largest edit distance at which an unknown
// variable is taken for a misspelt key: a dropped, doubled or swapped letter
// (FERRY_KAFKA_BROKER, FERRY_KAFKA_BROKRES) is one or two edits, while
// unrelated names are many edits apart.
const maxSuggestDistance = 2

// linkVariable reports whether name has the shape of a variable that
// Kubernetes injects for every Service in the namespace, or that a Docker
// link injects, rather than one a user set for ferry. A Service named
// "ferry" or "ferry-metrics" yields FERRY_SERVICE_HOST,
// FERRY_METRICS_PORT_9090_TCP_ADDR and so on, which share ferry's prefix;
// refusing them would stop ferry from starting in such a namespace.
//
// The shapes, each after a non-empty service or alias name:
//
//	_SERVICE_HOST, _SERVICE_PORT, _SERVICE_PORT_<port name>  (Kubernetes)
//	_PORT, _PORT_<digits>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR] (Kubernetes, Docker)
//	_ENV_<variable>                                          (Docker)
//
// No key's variable has one of these shapes (TestLinkVariableNoKey), so
// ignoring them hides no typo of a real key. A Docker link's <ALIAS>_NAME is
// not matched: kafka.tls.server_name ends in _NAME too.
func linkVariable(name string) bool {
	if hasStemSuffix(name, "_SERVICE_HOST") || hasStemSuffix(name, "_SERVICE_PORT") || hasStemSuffix(name, "_PORT") {
		return true
	}
	if hasStemInfix(name, "_SERVICE_PORT_") || hasStemInfix(name, "_ENV_") {
		return true
	}
	// The stem may itself contain _PORT_ (a Service named "port-a"), so try
	// every occurrence.
	for i := 1; i < len(name); i++ {
		j := strings.Index(name[i:], "_PORT_")
		if j < 0 {
			break
		}
		i += j
		if portProtoTail(name[i+len("_PORT_"):]) {
			return true
		}
	}
	return false
}

// hasStemSuffix reports whether s is a non-empty stem followed by suffix.
func hasStemSuffix(s, suffix string) bool {
	return len(s) > len(suffix) && strings.HasSuffix(s, suffix)
}

// hasStemInfix reports whether s is a non-empty stem, infix and a non-empty tail.
func hasStemInfix(s, infix string) bool {
	i := strings.Index(s[min(1, len(s)):], infix)
	return i >= 0 && 1+i+len(infix) < len(s)
}

// portProtoTail reports whether s is <digits>_<TCP|UDP|SCTP>, optionally
// followed by _PROTO, _PORT or _ADDR.
func portProtoTail(s string) bool {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	if n == 0 || n == len(s) || s[n] != '_' {
		return false
	}
	proto, field, _ := strings.Cut(s[n+1:], "_")
	switch proto {
	case "TCP", "UDP", "SCTP":
	default:
		return false
	}
	switch {
	case !strings.Contains(s[n+1:], "_"):
		return true
	case field == "PROTO", field == "PORT", field == "ADDR":
		return true
	}
	return false
}

// suggestEnv returns the variable of the settable key closest to name, if it
// is within maxSuggestDistance edits, or "". Case is ignored, so
// FERRY_kafka_group suggests FERRY_KAFKA_GROUP; a tie goes to the key
// listed first.
func suggestEnv(name string) string {
	upper := strings.ToUpper(name)
	best, bestDist := "", maxSuggestDistance+1
	for _, k := range keyTable {
		if k.fileOnly {
			continue
		}
		if d := editDistance(upper, k.env, bestDist); d < bestDist {
			best, bestDist = k.env, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, or any value of
// at least limit once the distance is known to reach it. Variable names are
// ASCII, so it counts bytes.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unknownEnvWarning is the warning for a FERRY_ variable that names no key.
func unknownEnvWarning(name string) string {
	w := "environment variable " + name + ": " + ErrUnknownKey.Error() + ", ignored"
	if s := suggestEnv(name); s != "" {
		w += "; did you mean " + s + "?"
	}
	return w
}
