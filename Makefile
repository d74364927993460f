# The README's two commands are `make demo` and `make test`.
GO ?= go

.PHONY: all build demo test bench fuzz clean

all: build

build:
	$(GO) build -o bin/ ./cmd/z5d ./cmd/z5

demo:
	$(GO) run ./cmd/z5d demo

test:
	bash scripts/test.sh

bench:
	bash bench/run.sh

clean:
	rm -rf bin
