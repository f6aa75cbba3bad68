package health

import (
	"crypto/tls"
	"testing"

	"github.com/failoverdns/failoverdns/health/healthtest"
)

const serviceName = "keys.example.com"

// testPKI is a CA and leaves made in the test, so no certificate on disk can
// expire under us.
type testPKI struct {
	caFile    string
	good      tls.Certificate // keys.example.com, valid for a year
	wrongName tls.Certificate // other.test
	expired   tls.Certificate // keys.example.com, expired yesterday
	shortLife tls.Certificate // keys.example.com, expires in an hour
}

// certs makes a fresh PKI in t.TempDir(); ECDSA keys are cheap enough that
// sharing one across tests is not worth the global state.
func certs(t *testing.T) testPKI {
	t.Helper()
	p, err := makePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func makePKI(dir string) (testPKI, error) {
	p, err := healthtest.NewPKI(dir, serviceName)
	return testPKI{caFile: p.CAFile, good: p.Good, wrongName: p.WrongName, expired: p.Expired, shortLife: p.ShortLife}, err
}
