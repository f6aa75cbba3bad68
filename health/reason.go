package health

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"syscall"
)

// Reason classifies a failed probe into a bounded set, for the
// failoverdns_health_check_failures_total{reason} label: decided where the
// error is made, never guessed from its text.
type Reason uint8

const (
	ReasonNone        Reason = iota // the probe succeeded
	ReasonTimeout                   // no answer within the check's timeout
	ReasonRefused                   // the port is closed (RST)
	ReasonUnreachable               // no route to the node
	ReasonStatus                    // http(s): a status code not in expect
	ReasonBody                      // http(s): the body lacks the expected text, or could not be read
	ReasonTLS                       // handshake, certificate or ca_file
	ReasonOther                     // anything else (reset, closed, canceled, source address)
)

var reasonNames = [...]string{"", "timeout", "refused", "unreachable", "status", "body", "tls", "other"}

// String is the metrics label: "" for ReasonNone.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "other"
}

// classified is an error whose Reason its maker knew.
type classified struct {
	reason Reason
	err    error
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

// because marks err with the reason a check found it for.
func because(r Reason, err error) error { return &classified{r, err} }

// reasonOf classifies a check's error. timedOut is the check's own deadline
// having passed (the context's error, which the error may not wrap).
func reasonOf(err error, timedOut, canceled bool) Reason {
	var c *classified
	var ce *caError
	var he x509.HostnameError
	var cie x509.CertificateInvalidError
	var uae x509.UnknownAuthorityError
	var rhe tls.RecordHeaderError
	var ae tls.AlertError
	var cve *tls.CertificateVerificationError
	switch {
	case err == nil:
		return ReasonNone
	case errors.As(err, &ce):
		return ReasonTLS
	case canceled:
		return ReasonOther
	case timedOut:
		return ReasonTimeout
	case errors.As(err, &c):
		return c.reason
	case errors.As(err, &he), errors.As(err, &cie), errors.As(err, &uae),
		errors.As(err, &rhe), errors.As(err, &ae), errors.As(err, &cve):
		return ReasonTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ReasonUnreachable
	case errors.Is(err, syscall.ETIMEDOUT):
		return ReasonTimeout
	}
	return ReasonOther
}
