package health

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return testPKI{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "failoverdns test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return testPKI{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return testPKI{}, err
	}

	serial := int64(1)
	leaf := func(name string, notBefore, notAfter time.Time) (tls.Certificate, error) {
		serial++
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			DNSNames:     []string{name},
			NotBefore:    notBefore,
			NotAfter:     notAfter,
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
	}

	var p testPKI
	if p.good, err = leaf(serviceName, now.Add(-time.Hour), now.Add(365*24*time.Hour)); err != nil {
		return p, err
	}
	if p.wrongName, err = leaf("other.test", now.Add(-time.Hour), now.Add(365*24*time.Hour)); err != nil {
		return p, err
	}
	if p.expired, err = leaf(serviceName, now.Add(-48*time.Hour), now.Add(-24*time.Hour)); err != nil {
		return p, err
	}
	if p.shortLife, err = leaf(serviceName, now.Add(-time.Hour), now.Add(time.Hour)); err != nil {
		return p, err
	}
	p.caFile = filepath.Join(dir, "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(p.caFile, caPEM, 0o600); err != nil {
		return p, err
	}
	return p, nil
}
