//go:build unix

package zones

import "syscall"

const openNonblock = syscall.O_NONBLOCK
