package netns

import "syscall"

// sysProcAttr has the kernel kill the test binary in the namespace when
// the one that started it dies, so a parent that panics or times out
// leaves no child (nor the child's etcd members) behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
