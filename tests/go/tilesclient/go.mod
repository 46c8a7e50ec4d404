module glasslog.example/tilesclient

go 1.17

require golang.org/x/mod v0.7.0

// Debian's golang-golang-x-mod-dev installs the x/mod source here; building
// needs no network (GOPROXY=off, GOFLAGS=-mod=mod).
replace golang.org/x/mod => /usr/share/gocode/src/golang.org/x/mod
