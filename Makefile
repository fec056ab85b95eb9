# mastodon-restore — the README's commands.
#   make test   install deps, configure, build, run the whole ctest suite
#   make demo   build, start the agent on a temporary socket, drive it with the CLI
#   make lint   buf lint, buf format and buf breaking (vs HEAD~1) on proto/,
#               clang-format on the C++ sources, shellcheck on the scripts
#               and the test fakes, the packaging (snapcraft.yaml schema,
#               yamllint, docker-compose config, systemd-analyze verify),
#               the agent's layering (scripts/check-layers), and the Ansible
#               collection (ansible-test sanity, the playbooks: scripts/lint-ansible)
#   make package  the Debian package, checked with lintian
SHELL := /bin/bash
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= 2
WERROR ?= ON
BUF := .tools/buf/node_modules/.bin/buf
CXX_SOURCES = $(shell git ls-files -co --exclude-standard -- '*.cc' '*.h' '*.h.in' | grep -v '^$(BUILD_DIR)/')

.PHONY: all deps configure build test test-sanitize demo lint format fuzz chaos bench bench-restore bench-detect bench-media bench-bucket bench-load bench-fleet bench-migrate bench-media-sync package clean

all: build

deps:
	scripts/install-deps

$(BUILD_DIR)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DMR_WERROR=$(WERROR)

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DMR_WERROR=$(WERROR)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest -j $(JOBS) --output-on-failure

# The whole suite built with ASan + UBSan (build-sanitize/, Debug at -O1, no
# benchmarks); any sanitizer report fails: the test binaries print theirs
# (ctest shows them), the agent and CLI they start write theirs to
# build-sanitize/sanitizer-logs/ (tests/sanitize/sanitizer_defaults.cc), and
# any report there fails the run after ctest.
SANITIZE_DIR ?= build-sanitize
SANITIZE_ENV = ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:check_initialization_order=1:log_path=stderr \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=stderr
test-sanitize: deps
	cmake -S . -B $(SANITIZE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMR_WERROR=$(WERROR) \
	  -DMR_SANITIZE=ON -DMR_BUILD_BENCH=OFF
	$(SANITIZE_ENV) cmake --build $(SANITIZE_DIR) -j $(JOBS)
	rm -rf $(SANITIZE_DIR)/sanitizer-logs && mkdir -p $(SANITIZE_DIR)/sanitizer-logs
	cd $(SANITIZE_DIR) && $(SANITIZE_ENV) ctest -j $(JOBS) --output-on-failure; status=$$?; \
	  if [ -n "$$(ls -A sanitizer-logs)" ]; then \
	    for f in sanitizer-logs/*; do echo "== $$f"; cat "$$f"; done; \
	    echo "sanitizer reports from the agent or CLI started by the tests (above)"; exit 1; \
	  fi; exit $$status

demo: build
	scripts/demo $(BUILD_DIR)

lint: deps
	cd proto && ../$(BUF) lint
	cd proto && ../$(BUF) format --diff --exit-code
	@# API stability: no breaking change against the previous commit of main.
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
	  echo "cd proto && buf breaking --against .git#ref=HEAD~1,subdir=proto"; \
	  cd proto && ../$(BUF) breaking --against '../.git#ref=HEAD~1,subdir=proto'; \
	else echo "buf breaking: no previous commit to compare with"; fi
	clang-format --dry-run -Werror $(CXX_SOURCES)
	shellcheck -x -S warning -s bash scripts/* .ci/run tests/fakes/* tests/package/*.sh
	scripts/lint-packaging
	scripts/check-layers
	scripts/lint-ansible

# The Debian package (build/mastodon-restore_<version>_amd64.deb), checked
# with lintian.
package: build
	cd $(BUILD_DIR) && cpack -G DEB
	lintian --tag-display-limit 0 $(BUILD_DIR)/mastodon-restore_*_amd64.deb

format:
	clang-format -i $(CXX_SOURCES)

# Random SIGKILLs over whole restores (not in CI): CHAOS_KILLS kills (each
# followed by a restart and the crash checks of tests/e2e/crash_test.cc),
# CHAOS_SEED to replay a campaign.
CHAOS_KILLS ?= 50
chaos: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target crash_tests make_dump_fixtures
	cd $(BUILD_DIR) && ctest -R DumpFixtures.Generate --output-on-failure
	CHAOS_KILLS=$(CHAOS_KILLS) $(if $(CHAOS_SEED),CHAOS_SEED=$(CHAOS_SEED)) \
	  $(BUILD_DIR)/tests/crash_tests --gtest_also_run_disabled_tests \
	  --gtest_filter='CrashTest.DISABLED_ChaosRandomKills'

# Benchmarks; results go to bench/results/<date>-*.md.
BENCH_MB ?= 700
SCALE ?= 1
bench: bench-restore bench-detect bench-media bench-bucket bench-load bench-fleet bench-migrate bench-media-sync

# The agent's database restore against psql and pg_restore on the same dumps
# of a Mastodon-shaped database (SCALE=1: about 700 MB of plain dump; the
# dumps are kept in /var/tmp/mr-restore-bench for the next run).
bench-restore: build
	$(BUILD_DIR)/bench/restore_bench --scale $(SCALE) --runs 3 \
	  --output bench/results/$$(date +%Y-%m-%d)-restore.md

bench-detect: build
	$(BUILD_DIR)/bench/detect_bench --mb $(BENCH_MB) --runs 5 --drop-caches \
	  --output bench/results/$$(date +%Y-%m-%d)-detection.md

bench-media: build
	$(BUILD_DIR)/bench/media_bench --files 20000 --mb 2000 --runs 3 \
	  --output bench/results/$$(date +%Y-%m-%d)-media.md

bench-media-sync: build
	$(BUILD_DIR)/bench/media_sync_bench --files 20000 --mb 2000 --runs 3 \
	  --output bench/results/$$(date +%Y-%m-%d)-media-sync.md

bench-load: build
	$(BUILD_DIR)/bench/load_bench --scale $(SCALE) --watchers 1000 --rate 200 --seconds 60 \
	  --output bench/results/$$(date +%Y-%m-%d)-load.md

# The live migration, logical and physical, against a dump-based move of the
# same database with a writer on the old server: the downtime of each.
bench-migrate: build
	$(BUILD_DIR)/bench/migrate_bench --scale $(SCALE) --runs 3 \
	  --output bench/results/$$(date +%Y-%m-%d)-migrate.md

# Media from a bucket (a real S3-compatible server) against curl, sequential
# and parallel, on the same objects.
bench-bucket: build
	$(BUILD_DIR)/bench/bucket_bench --files 20000 --mb 2000 --runs 3 \
	  --output bench/results/$$(date +%Y-%m-%d)-bucket.md

bench-fleet: build
	$(BUILD_DIR)/bench/fleet_bench --agents 50 --parallel 8 --rows 100000 \
	  --output bench/results/$$(date +%Y-%m-%d)-fleet.md

# Each fuzz target runs FUZZ_SECONDS (default 60) from a corpus seeded with
# the test fixtures. Not part of CI.
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DMR_FUZZ=ON -DMR_BUILD_TESTS=OFF
	cmake --build build-fuzz -j $(JOBS) --target plain_dump_fuzzer custom_archive_fuzzer env_file_fuzzer \
	  statement_classifier_fuzzer
	scripts/run-fuzzers build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD_DIR)
