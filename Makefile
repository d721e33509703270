# wxhub's everyday commands. `make test` is the test command CI runs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

SQLC := go run github.com/sqlc-dev/sqlc/cmd/sqlc@v1.31.1

.PHONY: build run test fuzz-short lint generate check-generated

build:
	go build -buildvcs=auto -o bin/wxhub ./cmd/wxhub

# PostgreSQL, API, worker, simulator and demo accounts in one process.
run:
	go run ./cmd/wxhub dev

# Every package with the race detector against a throwaway PostgreSQL the tests start
# themselves (e2e's fault relay too, with -short skipping the campaign), then one round of
# the end-to-end fault campaign on its own, without the race detector's slowdown, so that
# its processes keep realistic timing; then the refresh benchmark in its quick mode (10,000
# credentials, one round, no figure asserted), so it cannot rot. Per-test RUN/PAUSE/CONT
# lines and passing subtests are left out of the output. The examples module (an unmodified
# WeChat SDK against the gateway) is a module of its own, so it is tested on its own.
TESTFILTER := grep -vE '^(=== (RUN|PAUSE|CONT|NAME)|[[:space:]]+--- PASS)'
test:
	go test -race -count=1 -v $$(go list ./... | grep -v '/e2e$$') 2>&1 | $(TESTFILTER)
	cd examples && go test -race -count=1 ./...
	go test -race -count=1 -short -v ./e2e 2>&1 | $(TESTFILTER)
	go test -count=1 -v -timeout 30m -run TestCampaign ./e2e 2>&1 | $(TESTFILTER)
	go run ./bench -quick

# Every fuzz target for 20,000 inputs beyond its seed corpus (the seeds run in `make test`).
# A count, not a duration: Go 1.26's fuzz coordinator can report a bare "context deadline
# exceeded" when a -fuzztime duration ends while a worker is mid-input on a busy machine
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
# For a real search, run one target for longer: go test -run XXX -fuzz '^FuzzName$$' -fuzztime 60s ./pkg
FUZZTIME ?= 20000x
fuzz-short:
	@for f in $$(grep -l '^func Fuzz' $$(find . -name '*_test.go' -not -path './.*')); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/p' $$f); do \
			echo "fuzz $$t in $$(dirname $$f), $(FUZZTIME)"; \
			go test -run XXX -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f) > /tmp/wxhub-fuzz.log 2>&1 || \
				{ cat /tmp/wxhub-fuzz.log; exit 1; }; \
		done; \
	done

lint: check-generated
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path './.*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	go vet ./...
	cd examples && go vet ./...

generate:
	$(SQLC) generate
	go run ./cmd/wxhub openapi > openapi/openapi.yaml

# Fails when the generated queries differ from what sqlc makes of queries/ and migrations/:
# a hand edit, or SQL changed without `make generate`.
check-generated:
	$(SQLC) diff
	go run ./cmd/wxhub openapi | diff -u openapi/openapi.yaml - || \
		{ echo "openapi/openapi.yaml differs from what the code produces: run make generate"; exit 1; }
