package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// The ferry log messages the checker reads (connector/consume.go).
const (
	MsgAssigned  = "partitions assigned"
	MsgRevoked   = "partitions revoked"
	MsgLost      = "partitions lost: not committing them"
	MsgCommitted = "offsets committed"
)

// LogEvent is one JSON log line of ferry, with the fields the checker uses.
type LogEvent struct {
	Time       time.Time          `json:"time"`
	Msg        string             `json:"msg"`
	Partitions map[string][]int32 `json:"partitions"` // assigned, revoked, lost
	Offsets    map[string]int64   `json:"offsets"`    // committed: "topic/partition" -> next offset
	Reason     string             `json:"reason"`     // committed: autocommit, revoke or shutdown
	Member     string             `json:"member"`
	Generation int64              `json:"generation"`
}

// ReadLog parses a ferry JSON log in file order. Lines that are not JSON
// objects with a "msg" (stderr noise, a panic trace) are skipped; a field of an
// unexpected type is left zero without dropping the line.
func ReadLog(path string) ([]LogEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []LogEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var ev LogEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			var typeErr *json.UnmarshalTypeError
			if !errors.As(err, &typeErr) {
				continue
			}
		}
		if ev.Msg != "" {
			out = append(out, ev)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}
