# Lantern build. `make` builds build/lantern; `make test` builds and runs the
# test suite twice: optimised, and under AddressSanitizer + UBSan.
# PORTABLE=1 targets x86-64-v2 instead of the build machine (-march=native).

CC      ?= gcc
ARCH    := $(shell uname -m)
PKGS    := jansson libpcre2-8 libutf8proc
ifeq ($(PORTABLE),1)
  ifeq ($(ARCH),x86_64)
    MARCH := -march=x86-64-v2
  else
    MARCH :=
  endif
else
  MARCH := -march=native
endif

WARN    := -Wall -Wextra -Werror
CSTD    := -std=c11 -D_GNU_SOURCE
DEPCF    = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEPLIBS  = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread -lutil
CFLAGS  ?= -O3 -g
ALLCF    = $(CSTD) $(WARN) $(CFLAGS) $(MARCH) -Iinclude -Isrc $(DEPCF) -MMD -MP
SANCF    = $(CSTD) $(WARN) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
           -fno-sanitize-recover=undefined $(MARCH) -Iinclude -Isrc $(DEPCF) -MMD -MP

# ISA-specific kernel files carry their own target flags and are only built
# on the matching architecture; the runtime dispatcher picks among them.
SRC_ALL := $(wildcard src/*.c)
SRC_X86 := $(wildcard src/*_avx2.c src/*_avx512.c src/*_amx.c)
SRC_ARM := $(wildcard src/*_neon.c)
ifeq ($(ARCH),x86_64)
  SRC := $(filter-out $(SRC_ARM),$(SRC_ALL))
else ifeq ($(ARCH),aarch64)
  SRC := $(filter-out $(SRC_X86),$(SRC_ALL))
else
  SRC := $(filter-out $(SRC_X86) $(SRC_ARM),$(SRC_ALL))
endif
LIBSRC  := $(filter-out src/main.c,$(SRC))
TSRC    := $(wildcard tests/*.c)

REL_LIB := $(LIBSRC:%.c=build/rel/%.o)
REL_T   := $(TSRC:%.c=build/rel/%.o)
SAN_LIB := $(LIBSRC:%.c=build/san/%.o)
SAN_T   := $(TSRC:%.c=build/san/%.o)

AVX2F   := -mavx2 -mfma -mf16c -mno-avx512f
AVX512F := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c
AMXF    := $(AVX512F) -mavx512bf16 -mamx-tile -mamx-int8

.PHONY: all deps test test-rel test-san run clean
all: deps build/lantern

deps:
	@sh tools/install-deps.sh

build/lantern: $(REL_LIB) build/rel/src/main.o
	$(CC) $(ALLCF) -o $@ $^ $(DEPLIBS)

build/test_lantern: $(REL_LIB) $(REL_T)
	$(CC) $(ALLCF) -o $@ $^ $(DEPLIBS)

build/san/test_lantern: $(SAN_LIB) $(SAN_T)
	$(CC) $(SANCF) -o $@ $^ $(DEPLIBS)

build/rel/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALLCF) $(if $(findstring _amx,$<),$(AMXF),$(if $(findstring _avx512,$<),$(AVX512F),$(if $(findstring _avx2,$<),$(AVX2F)))) -c -o $@ $<

build/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SANCF) $(if $(findstring _amx,$<),$(AMXF),$(if $(findstring _avx512,$<),$(AVX512F),$(if $(findstring _avx2,$<),$(AVX2F)))) -c -o $@ $<

test: deps
	@$(MAKE) --no-print-directory build/lantern build/test_lantern build/san/test_lantern
	@sh tests/run.sh

# The embedded default model (models/demo, trained on Jane Austen) is a plain
# completion model, so the demo prompt is raw text.
PROMPT ?= It is a truth universally acknowledged, that
run: all
	./build/lantern run --raw -p "$(PROMPT)" -n 96

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
