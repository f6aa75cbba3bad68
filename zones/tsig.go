package zones

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// TSIGKey is one [[tsig]] key allowed to sign UPDATEs.
type TSIGKey struct {
	Name      string `toml:"name"`
	Algorithm string `toml:"algorithm"`
	Secret    string `toml:"secret"`

	secret []byte
}

// SecretBytes returns the decoded secret.
func (k *TSIGKey) SecretBytes() []byte { return k.secret }

// tsigAlgorithms maps accepted algorithm names to their wire names.
var tsigAlgorithms = map[string]string{
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha512": dns.HmacSHA512,
}

func (c *Config) validateTSIG(file string, errs *ErrorList) {
	seen := map[string]bool{}
	for i := range c.TSIG {
		k := &c.TSIG[i]
		at := fmt.Sprintf("tsig[%d]", i)
		if _, ok := dns.IsDomainName(k.Name); !ok || k.Name == "" {
			errs.add(file, c.line(at+".name"), "tsig key name %q is not a domain name (e.g. name = \"admin.\")", k.Name)
			continue
		}
		k.Name = canonical(k.Name)
		if seen[k.Name] {
			errs.add(file, c.line(at+".name"), "tsig key %q is defined twice", k.Name)
		}
		seen[k.Name] = true
		alg, ok := tsigAlgorithms[strings.TrimSuffix(strings.ToLower(k.Algorithm), ".")]
		if !ok {
			errs.add(file, c.line(at+".algorithm"), "tsig key %s: algorithm %q: want \"hmac-sha256\" or \"hmac-sha512\"", k.Name, k.Algorithm)
		}
		k.Algorithm = alg
		b, err := base64.StdEncoding.DecodeString(k.Secret)
		switch {
		case err != nil:
			errs.add(file, c.line(at+".secret"), "tsig key %s: secret is not base64 (generate one with `tsig-keygen -a hmac-sha256 %s`)", k.Name, strings.TrimSuffix(k.Name, "."))
		case len(b) < 16:
			errs.add(file, c.line(at+".secret"), "tsig key %s: secret is %d bytes; use at least 16 (32 for hmac-sha256)", k.Name, len(b))
		}
		k.secret = b
	}
}

// TSIGKey returns the key with canonical name, or nil.
func (c *Config) TSIGKey(name string) *TSIGKey {
	name = strings.ToLower(name)
	for i := range c.TSIG {
		if c.TSIG[i].Name == name {
			return &c.TSIG[i]
		}
	}
	return nil
}
