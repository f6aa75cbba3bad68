package etcdtest

import "syscall"

// sysProcAttr has the kernel kill a member when the test binary dies, so a
// test that panics or times out leaves no etcd behind (cleanups do not run
// then).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
