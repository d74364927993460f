# The README's two commands are `make demo` and `make test`.
GO ?= go

.PHONY: all build man completion demo test bench fuzz clean

all: build

# build also writes the man pages and shell completion, generated from
# the same command tree as --help.
build:
	$(GO) build -o bin/ ./cmd/z5d ./cmd/z5
	$(MAKE) --no-print-directory man completion

man:
	@test -x bin/z5 && test -x bin/z5d || $(GO) build -o bin/ ./cmd/z5d ./cmd/z5
	bin/z5 man man/
	bin/z5d man man/

completion:
	@test -x bin/z5 && test -x bin/z5d || $(GO) build -o bin/ ./cmd/z5d ./cmd/z5
	@mkdir -p completion
	for sh in bash zsh fish; do bin/z5 completion $$sh > completion/z5.$$sh; bin/z5d completion $$sh > completion/z5d.$$sh; done

# The first build compiles SQLite and the SIP stack: say so before the
# silence, then run the built binary.
demo:
	@echo "building z5d (first run takes about a minute)..."
	@$(GO) build -o bin/ ./cmd/z5d
	@bin/z5d demo

test:
	bash scripts/test.sh

bench:
	bash bench/run.sh

clean:
	rm -rf bin man completion
