//go:build !unix

package zones

// Elsewhere a FIFO cannot be named in a config; the regular-file check
// still refuses devices.
const openNonblock = 0
