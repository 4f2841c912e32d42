//go:build integration

package integration

import "syscall"

const (
	syscallTERM = syscall.SIGTERM
	syscallKILL = syscall.SIGKILL
)
