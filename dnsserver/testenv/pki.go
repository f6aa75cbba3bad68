package testenv

// Throwaway certificates for tests of https and tls checks: a CA written to
// a file (for ca_file) and leaves for one host that are valid, for the wrong
// name, expired, or about to expire. They are made at run time, so no
// certificate on disk can expire under a test.

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
	"sync"
	"testing"
	"time"
)

// PKI is a CA and four leaves for Host.
type PKI struct {
	CAFile    string          // the CA in PEM
	Good      tls.Certificate // Host, valid for a year
	WrongName tls.Certificate // other.test
	Expired   tls.Certificate // Host, expired yesterday
	ShortLife tls.Certificate // Host, expires in an hour
}

// NewPKI makes a PKI for host and writes the CA to dir/ca.pem.
func NewPKI(dir, host string) (PKI, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PKI{}, err
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
		return PKI{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return PKI{}, err
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
	var p PKI
	year := 365 * 24 * time.Hour
	if p.Good, err = leaf(host, now.Add(-time.Hour), now.Add(year)); err != nil {
		return p, err
	}
	if p.WrongName, err = leaf("other.test", now.Add(-time.Hour), now.Add(year)); err != nil {
		return p, err
	}
	if p.Expired, err = leaf(host, now.Add(-48*time.Hour), now.Add(-24*time.Hour)); err != nil {
		return p, err
	}
	if p.ShortLife, err = leaf(host, now.Add(-time.Hour), now.Add(time.Hour)); err != nil {
		return p, err
	}
	p.CAFile = filepath.Join(dir, "ca.pem")
	err = os.WriteFile(p.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	return p, err
}

var shared struct {
	sync.Mutex
	pkis map[string]PKI
}

// SharedPKI is NewPKI for host made once per test binary, in a folder of
// its own that outlives every test (keys are cheap, but not free under
// -race).
func SharedPKI(tb testing.TB, host string) PKI {
	tb.Helper()
	shared.Lock()
	defer shared.Unlock()
	if p, ok := shared.pkis[host]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "failoverdns-pki-")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := NewPKI(dir, host)
	if err != nil {
		tb.Fatal(err)
	}
	if shared.pkis == nil {
		shared.pkis = map[string]PKI{}
	}
	shared.pkis[host] = p
	return p
}
