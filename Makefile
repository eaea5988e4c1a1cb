# Wasl — build, test and run the contact-center backend. See README.md.
#
#   make            build every binary into build/bin/
#   make test       unit tests (ASan/UBSan, then valgrind) + integration tests
#   make test-desk  the desk console in headless chromium (also part of make test)
#   make run        local stack in the foreground (PostgreSQL + Redis under var/)
#   make up/down    the same stack in the background / stop it
#   make bench      the benchmark: end to end, ceilings, per service, scaling (var/bench/)
#   make proto      regenerate the codec and the embedded migrations from proto/
#   make chaos      kill daemons, restart PostgreSQL, flush Redis under load; check nothing is lost
#   make fuzz       libFuzzer targets, FUZZ_SECONDS (60) each
#   make fmt        clang-format every C file
#   make clean      remove build/

CC      ?= cc
PYTHON  ?= /usr/bin/python3
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

PKGS    := libczmq libzmq msgpack hiredis libpq libmicrohttpd jansson libcurl \
           icu-uc icu-i18n libsodium gmime-3.0 yaml-0.1 libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(WARN) -MMD -MP \
           -Icommon -Ibuild/gen -DWASL_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread -lm

# Sanitizer build of the library and unit tests lives in its own tree.
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

B       := build
# `make V=1` shows the full commands.
Q       := $(if $(V),,@)
GEN_SRC := $(B)/gen/wasl_proto.c $(B)/gen/wasl_migrations.c $(B)/gen/wasl_functions.c
GEN_HDR := $(B)/gen/wasl_proto.h $(B)/gen/wasl_migrations.h $(B)/gen/wasl_functions.h
# The state-change functions, callees before their callers (docs/architecture.md, "State changes").
FUNCTIONS_SQL := $(addprefix proto/functions/,work.sql notifications.sql offers.sql agents.sql \
                 tickets.sql)
LIB_SRC := $(wildcard common/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o) $(GEN_SRC:$(B)/gen/%.c=$(B)/obj/gen/%.o)
LIB     := $(B)/lib/libwasl.a

# A daemon exists when its directory has a main.c; every other .c in the
# directory is linked into both the daemon and its unit tests.
SERVICES := $(patsubst services/%/main.c,%,$(wildcard services/*/main.c))
binname   = $(if $(filter waslctl,$(1)),waslctl,wasl-$(1))
BINS     := $(foreach s,$(SERVICES),$(B)/bin/$(call binname,$(s)))
svc_objs  = $(patsubst %.c,$(B)/obj/%.o,$(filter-out services/$(1)/main.c,$(wildcard services/$(1)/*.c)))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_SAN := $(UNIT_SRC:tests/unit/%.c=$(B)/san/bin/%)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/test/%)

# The classifier's model is built from the training data like any other artifact.
MODEL    := $(B)/model/classifier.bin
TRAIN    := data/classifier/train.tsv

.PHONY: all proto test lint unit unit-valgrind integration run up down fmt clean deps \
        compose-check bench bench-intake bench-classifier bench-router bench-peer
all: $(BINS) $(MODEL)

$(MODEL): $(TRAIN) $(B)/bin/waslctl
	@mkdir -p $(dir $@)
	$(B)/bin/waslctl classifier train $(TRAIN) -o $@ \
	  --version "$(VERSION)-$$(sha256sum $(TRAIN) | cut -c1-8)" 2>/dev/null

# ---- generated code ---------------------------------------------------------
proto: $(GEN_SRC) $(GEN_HDR)
$(B)/gen/wasl_proto.c $(B)/gen/wasl_proto.h &: proto/wasl.proto proto/gen.py
	@mkdir -p $(B)/gen
	$(PYTHON) proto/gen.py codec proto/wasl.proto $(B)/gen
$(B)/gen/wasl_migrations.c $(B)/gen/wasl_migrations.h &: $(wildcard proto/migrations/*.sql) \
    proto/grants.sql proto/gen.py
	@mkdir -p $(B)/gen
	$(PYTHON) proto/gen.py migrations proto/migrations $(B)/gen proto/grants.sql
$(B)/gen/wasl_functions.c $(B)/gen/wasl_functions.h &: $(FUNCTIONS_SQL) proto/embed_functions.py
	@mkdir -p $(B)/gen
	$(PYTHON) proto/embed_functions.py $(B)/gen $(FUNCTIONS_SQL)

# ---- library ----------------------------------------------------------------
$(B)/obj/%.o: %.c | $(GEN_HDR)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo '  CC      $<')
	$(Q)$(CC) $(CFLAGS) -c $< -o $@
$(B)/obj/gen/%.o: $(B)/gen/%.c $(GEN_HDR)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo '  CC      $<')
	$(Q)$(CC) $(CFLAGS) -c $< -o $@
$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(AR) rcs $@ $^

# ---- binaries ---------------------------------------------------------------
define service_rule
$(B)/bin/$(call binname,$(1)): $(B)/obj/services/$(1)/main.o $(call svc_objs,$(1)) $(LIB)
	@mkdir -p $$(dir $$@)
	@$$(if $$(V),,echo '  LD      $$@')
	$$(Q)$$(CC) $$(CFLAGS) -o $$@ $$(filter-out %.h,$$^) $$(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))

# wasl-mailgate runs once per mail: it links jansson alone (its http:// client is a plain
# socket; libcurl is dlopen'ed for https:// only), not the ~30 libraries libcurl brings, whose
# loading and relocation were most of each mail's cost (services/mailgate/tls.h).
$(B)/bin/wasl-mailgate: LDLIBS := $(shell pkg-config --libs jansson 2>/dev/null) -ldl

# The router library: the rules file and the agent choice (services/router/rules.c, select.c)
# are pure (libyaml and jansson; no database, no bus). wasl-router links them as objects of its
# directory; waslctl (route replay, route bench) links the same two objects, so a replay decides
# exactly as the daemon did. Extra prerequisites come after the rule's own in $^.
ROUTER_LIB_OBJ := $(B)/obj/services/router/rules.o $(B)/obj/services/router/select.o
$(B)/bin/waslctl: $(ROUTER_LIB_OBJ)

# ---- unit tests -------------------------------------------------------------
# A test named test_<service>_*.c also links that service's objects (not main.o).
test_svc = $(firstword $(filter $(SERVICES),$(word 2,$(subst _, ,$(1)))))
SAN_LIB_OBJ := $(LIB_OBJ:$(B)/obj/%=$(B)/san/obj/%)

$(B)/san/obj/%.o: %.c | $(GEN_HDR)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo '  CC san  $<')
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -O1 -c $< -o $@
$(B)/san/obj/gen/%.o: $(B)/gen/%.c $(GEN_HDR)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo '  CC san  $<')
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -O1 -c $< -o $@
$(B)/san/lib/libwasl.a: $(SAN_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(AR) rcs $@ $^

define unit_rule
$(B)/san/bin/$(1): tests/unit/$(1).c $(patsubst $(B)/obj/%,$(B)/san/obj/%,$(call svc_objs,$(call test_svc,$(1)))) $(B)/san/lib/libwasl.a
	@mkdir -p $$(dir $$@)
	@$$(if $$(V),,echo '  LD      $$@')
	$$(Q)$$(CC) $$(CFLAGS) $$(SAN_FLAGS) -O1 -Itests/unit -o $$@ $$(filter-out %.h,$$^) $$(shell pkg-config --libs cmocka) $$(LDLIBS)
$(B)/test/$(1): tests/unit/$(1).c $(call svc_objs,$(call test_svc,$(1))) $(LIB)
	@mkdir -p $$(dir $$@)
	@$$(if $$(V),,echo '  LD      $$@')
	$$(Q)$$(CC) $$(CFLAGS) -Itests/unit -o $$@ $$(filter-out %.h,$$^) $$(shell pkg-config --libs cmocka) $$(LDLIBS)
endef
$(foreach t,$(UNIT_SRC:tests/unit/%.c=%),$(eval $(call unit_rule,$(t))))

deps:
	@deploy/deps.sh

# Rules the code must keep: SQL only through parameters.
# check_sql: SQL only through parameters. pipeline_ceiling --check: the bench's pipeline ceiling
# still replays every statement and function the daemons run per contact (it reads the sources,
# which include the generated headers).
lint: $(GEN_HDR)
	$(PYTHON) tests/lint/check_sql.py
	$(PYTHON) tests/bench/pipeline_ceiling.py --check

test: deps
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) unit-valgrind
	$(MAKE) all
	$(MAKE) integration
	$(MAKE) deploy-check

unit: $(UNIT_SAN)
	@set -e; export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1; \
	for t in $(UNIT_SAN); do echo "== $$t"; $$t; done

unit-valgrind: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
	  valgrind -q --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --suppressions=tests/unit/valgrind.supp $$t > $(B)/test/$$(basename $$t).vg.log 2>&1 \
	    || { cat $(B)/test/$$(basename $$t).vg.log; exit 1; }; done; echo "valgrind: unit suite clean"

integration: all
	$(PYTHON) -m pytest -q tests/integration

# The desk console in a real browser against the real stack; screenshots in build/test-artifacts/.
# Part of `make integration` too (it is a file of tests/integration).
.PHONY: test-desk
test-desk: deps
	$(MAKE) all
	$(PYTHON) -m pytest -q tests/integration/test_desk_browser.py

# The deploy kit (deploy/): Compose, Kubernetes (kubectl kustomize), systemd units
# (systemd-analyze verify) and the Prometheus scrape config and alert rules (promtool).
.PHONY: deploy-check k8s-check systemd-check prometheus-check
deploy-check: compose-check k8s-check systemd-check prometheus-check
compose-check:
	@bash tests/deploy/check_compose.sh
k8s-check:
	@bash tests/deploy/check_k8s.sh
systemd-check: all
	@bash tests/deploy/check_systemd.sh
prometheus-check:
	@bash tests/deploy/check_prometheus.sh

# ---- fuzzing (clang's libFuzzer with ASan/UBSan; not part of make test) ---------------------
# Each target in tests/fuzz/fuzz_<name>.c links the whole library; seeds are committed under
# tests/fuzz/corpus/<name>, what a run discovers goes to build/fuzz-corpus/<name>.
FUZZ_TARGETS := proto ref phone normalize email mime http
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Icommon -I$(B)/gen \
                -Iservices/intake -DWASL_VERSION='"fuzz"' $(PKG_CFLAGS)
.PHONY: fuzz
fuzz: $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)
	@set -e; for t in $(FUZZ_TARGETS); do mkdir -p $(B)/fuzz-corpus/$$t; \
	  echo "== fuzz_$$t ($(FUZZ_SECONDS) s)"; \
	  $(B)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	    $(B)/fuzz-corpus/$$t tests/fuzz/corpus/$$t 2>&1 | tail -n 12; done
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRC) $(GEN_SRC) services/intake/email.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) $(GEN_SRC) services/intake/email.c $(LDLIBS)
# The HTTP target runs intake's whole server in-process: every intake file but main.c.
INTAKE_SRC := $(filter-out services/intake/main.c,$(wildcard services/intake/*.c))
$(B)/fuzz/fuzz_http: tests/fuzz/fuzz_http.c $(LIB_SRC) $(GEN_SRC) $(INTAKE_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) $(GEN_SRC) $(INTAKE_SRC) $(LDLIBS)

# ---- chaos: kill anything, nothing acknowledged is lost (a light run is in make test) -------
CHAOS_ARGS ?= --contacts 3000 --rate 100
.PHONY: chaos
chaos: all
	$(PYTHON) tests/chaos/chaos.py $(CHAOS_ARGS)

# ---- benchmarks (not part of make test) ------------------------------------------------------
# `make bench` is the whole picture on one machine: its own stack under var/bench/stack, the
# end-to-end load at fixed rates and at saturation, the ceilings (pgbench, redis-benchmark, raw
# ZeroMQ through the bus), the per-service benches and the scaling proof; results under var/bench/.
.PHONY: bench bench-e2e bench-cost bench-classifier bench-intake bench-router bench-caselookup \
	bench-desk
BENCH_TOOLS := $(B)/bench/sms_sink $(B)/bench/zmq_ceiling $(B)/bench/caselookup_load \
	$(B)/bench/caselookup_echo
bench: all $(BENCH_TOOLS)
	$(PYTHON) tests/bench/e2e/bench.py
bench-e2e: all $(BENCH_TOOLS)
	BENCH_SERVICES=0 BENCH_SCALING=0 $(PYTHON) tests/bench/e2e/bench.py
# What one contact costs PostgreSQL (rows, index entries, WAL, commits; issue 16): BENCH_COST_N
# (2,000) contacts through a fresh stack on free ports, under a minute (var/bench/cost-*.json).
bench-cost: all $(BENCH_TOOLS)
	BENCH_ONLY=cost $(PYTHON) tests/bench/e2e/bench.py
bench-classifier: all
	tests/bench/classifier/run.sh
bench-intake: all
	tests/bench/intake/run.sh
bench-router: all
	tests/bench/router/run.sh
# The desk brings its own PostgreSQL and Redis (the integration fixtures): 500 signed-in agents
# with open event streams, offers at 200/s (var/bench/desk.json). `make bench` runs it too
# (tests/bench/e2e/bench.py, with the other per-service benches).
bench-desk: all
	tests/bench/desk/run.sh
# Request Tracker 5 (Debian's packages, installed when missing) and Wasl side by side: the same
# mails through rt-mailgate and wasl-mailgate, one process per mail (var/bench/peer.json).
bench-peer: all $(B)/bench/peer_feed
	tests/bench/peer/run.sh
# caselookup brings its own PostgreSQL, Redis, bus and workers (the integration fixtures).
bench-caselookup: all $(B)/bench/caselookup_load $(B)/bench/caselookup_echo
	tests/bench/caselookup/run.sh
$(B)/bench/caselookup_load: tests/bench/caselookup/load.c $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)
$(B)/bench/caselookup_echo: tests/bench/caselookup/echo.c $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)
$(B)/bench/zmq_ceiling: tests/bench/e2e/zmq_ceiling.c $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)
$(B)/bench/peer_feed: tests/bench/peer/feed.c $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB) -lpthread
$(B)/bench/sms_sink: tests/bench/e2e/sink.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# ---- local stack --------------------------------------------------------------
# The packages may only just have been installed: build in a sub-make, which sees pkg-config's
# answers anew.
run: deps
	$(MAKE) all
	deploy/stack.sh run
up: deps
	$(MAKE) all
	deploy/stack.sh up
down:
	deploy/stack.sh down

fmt:
	clang-format -i $(LIB_SRC) $(wildcard common/*.h services/*/*.c services/*/*.h tests/unit/*.c)

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
