// The pgx runner (ibcbench.bench.workload.pgx). scripts/install-system.sh builds it offline in
// GOPATH mode (GO111MODULE=off, GOPATH=/usr/share/gocode) against Debian's golang-*-dev sources:
// pgx v4 (golang-github-jackc-pgx-v4-dev) and what it needs. This file names the module and the Go
// version; its requirements are the ones Debian ships.
module ibcbench/runners/pgx

go 1.19

require github.com/jackc/pgx/v4 v4.15.0
