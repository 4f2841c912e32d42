package main

import "github.com/ferrylabs/ferry/integration/internal/history"

// userID is the identity of a user record: its "topic|index|" prefix.
func userID(data []byte) []byte { return []byte(history.DefaultID(data)) }
