# The front door: CMake + CTest underneath, build output in build/.
#   make            build libmemkit.so, libmemkit.a, memkit
#   make run        build, then show memkit at work on this machine
#   make test       the whole test suite (CTest)
#   make bench      allocator benchmarks against glibc, jemalloc, tcmalloc, mimalloc
#   make install PREFIX=/usr/local
BUILD   ?= build
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
# what make bench times with leak tracking: every workload of bench/ but frag
# (which measures memory given back, not time), and python
LEAK_WORKLOADS = wl-small wl-tree wl-threads wl-realloc wl-random wl-prodcons wl-larson \
	wl-large wl-falseshare python

.PHONY: all deps configure run test bench install clean format lint fuzz

all: configure
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh build

configure: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

run: all
	@scripts/demo.sh $(BUILD)

test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

bench: all
	@scripts/deps.sh bench
	bench/run.sh $(BUILD)
	{ echo; echo "## What safety costs"; echo; \
	  echo "\`bench/checks.sh $(BUILD)\`: the default library against the same without its free-path checks and against the secure build; medians of 5 interleaved runs."; \
	  echo; bench/checks.sh $(BUILD); } >> BENCHMARKS.md
	{ echo; echo "## What leak tracking costs (issue 4)"; echo; \
	  echo "\`PEERS=no BENCH_SCALE=1 WORKLOADS=\"$(LEAK_WORKLOADS)\" bench/leak/run.sh $(BUILD) 5\`: every timed workload with \`MEMKIT_LEAK=1\` against plain libmemkit, full size (wall and CPU s, medians)."; \
	  echo; PEERS=no BENCH_SCALE=1 WORKLOADS="$(LEAK_WORKLOADS)" bench/leak/run.sh $(BUILD) 5; echo; \
	  echo "\`BENCH_SCALE=0.1 SLOW_RUNS=1 bench/leak/run.sh $(BUILD) 3\`: a tenth of the work, beside valgrind memcheck (\`--leak-check=full\`) and heaptrack, each stopped after 60 s; start-up weighs more at this size."; \
	  echo; BENCH_SCALE=0.1 SLOW_RUNS=1 bench/leak/run.sh $(BUILD) 3; } >> BENCHMARKS.md

fuzz: all
	@scripts/deps.sh test
	tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS)

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

lint: all
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	  --suppress=missingIncludeSystem -I include src cli
	clang-tidy -p $(BUILD) --quiet $$(git ls-files 'src/*.c' 'cli/*.c') \
	  -checks='-*,bugprone-*,clang-analyzer-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-clang-analyzer-security.insecureAPI.*'

clean:
	rm -rf $(BUILD)
