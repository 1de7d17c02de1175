# Build, test and demo targets. Every target that starts containerd needs
# root; see README.md.

GO            ?= go
BIN           := bin
PKG           := github.com/chroot-applier/containerd-chroot-applier
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT        ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS       := -s -w -X $(PKG)/internal/version.Version=$(VERSION) \
                 -X $(PKG)/internal/version.Commit=$(COMMIT)
# The whole suite takes about six minutes on two cores once the tools are
# cached; the timeout leaves room for a first run that builds containerd.
TEST_TIMEOUT  ?= 30m
TEST_FLAGS    ?=
BENCH_ARGS    ?=
FUZZ          ?= FuzzApply
FUZZ_PKG      ?= ./applier
FUZZTIME      ?= 60s

.PHONY: all build demo test vet bench fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
		-o $(BIN)/containerd-chroot-applier ./cmd/containerd-chroot-applier

demo: require-root deps
	$(GO) run ./integration/demo

# The purego run tests the plain Go SHA-256 blocks, which serve processors
# without the SHA extensions and which the first run does not reach here.
test: require-root deps
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./...
	$(GO) test -count=1 -tags purego ./internal/sha256pair

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

bench: require-root
	@if [ ! -d bench ]; then \
		echo "make bench: ./bench does not exist in this tree yet"; exit 1; fi
	$(GO) run ./bench $(BENCH_ARGS)

fuzz:
	@if [ -z "$(FUZZ)" ]; then echo "make fuzz: set FUZZ to a fuzz target name"; exit 1; fi
	$(GO) test -run '^$$' -fuzz '^$(FUZZ)$$' -fuzztime $(FUZZTIME) $(FUZZ_PKG)

clean:
	rm -rf $(BIN)

# deps installs the Debian packages the tests and the demo run: debootstrap
# builds the Debian root file system used as the large layer. containerd,
# ctr and crictl are built with go install on first use.
.PHONY: deps
deps:
	@if ! command -v debootstrap >/dev/null; then \
		echo "installing debootstrap with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; \
	fi

.PHONY: require-root
require-root:
	@if [ "$$(id -u)" != 0 ]; then \
		echo "this target needs root: it runs containerd and mounts overlayfs"; exit 1; fi
