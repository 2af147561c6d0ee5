# make run   — set everything up, build, and start the local network (kaisar dev)
# make test  — set everything up, build, and run every test (unit, integration, ASan, fuzz corpora)
SHELL := /bin/bash
PRESET ?= default
WERROR := $(if $(CI),ON,OFF)
DEV_LISTEN ?= 127.0.0.1:8080
DEV_DATA ?= .kaisar-dev

.PHONY: setup configure build run test test-unit test-asan test-fuzz bench clean

setup:
	@scripts/setup.sh

configure: setup
	@cmake --preset $(PRESET) -DKAISAR_WERROR=$(WERROR) >/dev/null

build: configure
	@cmake --build --preset $(PRESET)

run: build
	@build/$(PRESET)/kaisar dev --listen $(DEV_LISTEN) --data $(DEV_DATA)

test: build
	@scripts/test.sh

bench: build
	@for b in bench/*; do [[ -x $$b && -f $$b ]] && $$b; done

clean:
	rm -rf build
