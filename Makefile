# The README's commands. `make test` and `make demo` work from a fresh clone on Debian bookworm.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
CMAKE_FLAGS ?=

.PHONY: all deps build test test-unit asan tsan demo bench bench-fleet bench-real fuzz soak format format-check clean images e2e-node

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# Every suite: unit, integration (real sockets, TLS, kube-emu, tsbus-sim, real kube-apiserver,
# kubectl, promtool), then under ASan+UBSan and the threaded tests under TSan when CI=true.
test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600
	@if [[ "$${CI:-}" == "true" ]]; then $(MAKE) --no-print-directory asan tsan; fi

# The edit-compile-test loop: only the unit-test executables (no servers, no Go builds), run
# directly; the same tests `make test` runs through ctest.
UNIT_TESTS := common/common_tests watcher/watcher_unit_tests watcher/watcher_loop_tests k8s/k8s_unit_tests agent/agent_unit_tests
test-unit: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS) --target $(notdir $(UNIT_TESTS))
	@for t in $(UNIT_TESTS); do echo "== $$t"; $(BUILD)/tests/unit/$$t --gtest_brief=1 || exit 1; done

asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DTSK_SANITIZE=address -DTSK_BENCH=OFF >/dev/null
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 900 -LE no_sanitizer

tsan: deps
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DTSK_SANITIZE=thread -DTSK_BENCH=OFF >/dev/null
	cmake --build $(BUILD_TSAN) -j$(JOBS)
	cd $(BUILD_TSAN) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --output-on-failure -j$(JOBS) --timeout 900 -L threaded

demo: build
	scripts/demo.sh

bench: build
	scripts/bench.sh

# N agents against one real kube-apiserver (scripts/real-apiserver, built once and cached) and a
# MagicDNS suffix change for all; e.g. make bench-fleet FLEET_ARGS="--agents 300 --storm 50"
FLEET_ARGS ?= --agents 50 --profile default: --profile unlimited:--api-qps=1000000,--api-burst=100000,--publish-wait=0s:0s
bench-fleet: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS) --target ts-kube-agent tsbus-sim
	scripts/real-apiserver/build.sh >/dev/null
	scripts/bench/fleet.py --agent-bin $(BUILD)/agent/ts-kube-agent --sim-bin $(BUILD)/tools/tsbus-sim/tsbus-sim $(FLEET_ARGS)

# tailscaled's cost per peer add+remove with and without a bus watcher, on a real tailscaled
# (scripts/real-tailscale builds it, cached); only the two consumers are built.
BENCH_REAL_ARGS ?= --n 1000 10000 50000 --pairs 500 --rounds 3
bench-real: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS) --target ts-kube-agent dom-agent
	scripts/real-tailscale/build.sh >/dev/null
	python3 scripts/bench/real_tailscaled.py --build $(BUILD) $(BENCH_REAL_ARGS)

# The container images without a registry (debootstrap base, the Dockerfile, pause, tailscaled);
# cached by key, Docker's layer cache for the agent. See docs/E2E-NODE.md.
images:
	scripts/images/build.sh

# The chart's pod on this machine: control plane + containerd + kubelet (Go builds, cached),
# the local images, helm install; passes when the pod is Ready and the Secret holds the
# identity. E2E_NODE_ARGS=--keep leaves the cluster running. See docs/E2E-NODE.md.
E2E_NODE_ARGS ?=
e2e-node:
	scripts/real-apiserver/build.sh >/dev/null
	scripts/real-tailscale/build.sh >/dev/null
	scripts/real-node/build.sh >/dev/null
	scripts/real-node/build.sh --prometheus >/dev/null
	scripts/images/build.sh
	scripts/real-node/e2e.sh $(E2E_NODE_ARGS)

fuzz: deps
	scripts/fuzz.sh

soak: build
	BUILD=$(BUILD) scripts/soak.sh

format:
	find common watcher k8s agent tools tests -name '*.h' -o -name '*.cc' | xargs clang-format -i

format-check:
	find common watcher k8s agent tools tests -name '*.h' -o -name '*.cc' | xargs clang-format --dry-run --Werror

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)
