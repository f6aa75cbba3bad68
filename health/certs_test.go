package health

import (
	"testing"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

const serviceName = "keys.example.com"

// certs makes a fresh PKI in t.TempDir(); ECDSA keys are cheap enough that
// sharing one across tests is not worth the global state.
func certs(t *testing.T) testenv.PKI {
	t.Helper()
	p, err := testenv.NewPKI(t.TempDir(), serviceName)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
