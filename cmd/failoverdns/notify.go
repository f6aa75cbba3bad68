package main

import (
	"net"
	"os"
)

// sdNotify sends a state line to the service manager (sd_notify(3)): under
// systemd's Type=notify, READY=1 is what ends "activating", so the unit is
// started only once the first probe round is done and every listener is
// bound. Without NOTIFY_SOCKET (not started by systemd) it does nothing. A
// name starting with '@' is in the abstract namespace, which Go's unix
// sockets map by themselves.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
