module github.com/failoverdns/failoverdns

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/hashicorp/go-sockaddr v1.0.7
	github.com/miekg/dns v1.1.73
)

require (
	github.com/gaissmai/bart v0.30.0 // indirect
	github.com/hashicorp/errwrap v1.1.0 // indirect
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
