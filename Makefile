# chaingrad — builds the library, the tools and the tests into build/.
#   make              library + tools + tests
#   make test         build, run every test and gradcheck
#   make SANITIZE=1 test   the same under ASan + UBSan (objects in build/san)
#   make golden       regenerate tests/golden/ with the PyTorch reference scripts
#   make CUDA=1       insist on the CUDA backend (CUDA=0 skips it; default: detect nvcc)
#   make NATIVE=0     build for the baseline CPU instead of -march=native
#   make bench        microbenchmarks into build/bin (Google Benchmark)
# The Makefile detects rather than demands: it says what it found and builds what it can.

CXX      ?= g++
ifeq ($(origin CXX),default)
CXX := g++
endif
SANITIZE ?= 0
CUDA     ?= auto

BUILD := build
OBJ   := $(BUILD)/obj
ifeq ($(SANITIZE),1)
OBJ   := $(BUILD)/san
endif
BIN   := $(BUILD)/bin
ifeq ($(SANITIZE),1)
BIN   := $(BUILD)/san/bin
endif

NATIVE   ?= 1
CXXFLAGS := -std=c++20 -O2 -g -fopenmp -Wall -Wextra -Werror -I. -MMD -MP
ifeq ($(NATIVE),1)
CXXFLAGS += -march=native
endif
LDLIBS   := -fopenmp
ifeq ($(SANITIZE),1)
CXXFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DCG_NO_ALLOC_CACHE
LDLIBS   += -fsanitize=address,undefined
endif

# ---- OpenBLAS (required) ---------------------------------------------------------------
OPENBLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
OPENBLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null)
ifeq ($(OPENBLAS_LIBS),)
OPENBLAS_INC := $(firstword $(wildcard /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/aarch64-linux-gnu/openblas-pthread /usr/include/openblas))
ifneq ($(OPENBLAS_INC),)
OPENBLAS_CFLAGS := -I$(OPENBLAS_INC)
OPENBLAS_LIBS   := -lopenblas
endif
endif
ifeq ($(OPENBLAS_LIBS),)
$(error OpenBLAS not found: run scripts/install-deps.sh)
endif
CXXFLAGS += $(OPENBLAS_CFLAGS)
LDLIBS   += $(OPENBLAS_LIBS) -llapack -lm

# ---- CUDA (optional) ------------------------------------------------------------------
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(CUDA),auto)
CUDA := $(if $(and $(NVCC),$(wildcard engine/cuda/*.cu)),1,0)
endif
ifeq ($(CUDA),1)
ifeq ($(NVCC),)
$(error CUDA=1 but nvcc was not found)
endif
CUDA_HOME   := $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCHS  ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCCFLAGS   := -std=c++20 -O2 -I. $(CUDA_ARCHS) -Xcompiler -fopenmp,-Wall,-Wextra,-Werror --Werror all-warnings -MMD -MP
CUDA_SRCS   := $(wildcard engine/cuda/*.cu)
CUDA_OBJS   := $(CUDA_SRCS:%.cu=$(OBJ)/%.o)
CXXFLAGS    += -DCG_WITH_CUDA
LDLIBS      += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart
STUB_SRCS   :=
else
CUDA_OBJS   :=
STUB_SRCS   := engine/cuda_stub.cpp
endif

LIB_SRCS := $(wildcard engine/*.cpp engine/cpu/*.cpp ops/*.cpp nn/*.cpp models/*.cpp)
LIB_SRCS := $(filter-out engine/cuda_stub.cpp,$(LIB_SRCS)) $(STUB_SRCS)
LIB_OBJS := $(LIB_SRCS:%.cpp=$(OBJ)/%.o) $(CUDA_OBJS)
LIB      := $(OBJ)/libchaingrad.a

COMMON_SRCS := $(wildcard tools/common/*.cpp)
COMMON_OBJS := $(COMMON_SRCS:%.cpp=$(OBJ)/%.o)
TOOL_SRCS   := $(wildcard tools/*.cpp)
TOOLS       := $(TOOL_SRCS:tools/%.cpp=$(BIN)/%)
EXAMPLE_SRCS := $(wildcard examples/*.cpp)
EXAMPLES    := $(EXAMPLE_SRCS:examples/%.cpp=$(BUILD)/examples/%)

TEST_SRCS := $(wildcard tests/*.cpp)
TEST_OBJS := $(TEST_SRCS:%.cpp=$(OBJ)/%.o)
TEST_BIN  := $(BUILD)/tests/test_all$(if $(filter 1,$(SANITIZE)),_san,)

BENCH_SRCS := $(wildcard bench/*.cpp)
BENCHES    := $(BENCH_SRCS:bench/%.cpp=$(BIN)/%)

.PHONY: all test clean info tools examples bench golden
.SECONDARY:
all: info $(LIB) $(TOOLS) $(EXAMPLES) $(TEST_BIN)

info:
	@echo "chaingrad build: $(CXX), OpenBLAS [$(OPENBLAS_LIBS)], CUDA=$(CUDA)$(if $(filter 1,$(CUDA)), ($(NVCC)),), SANITIZE=$(SANITIZE)"

$(OBJ)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(OBJ)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# The library records which CUDA setting built it: switching CUDA=0/1 in one tree
# rebuilds the library (CUDA objects or the stub) and relinks every binary.
CONFIG_STAMP := $(OBJ)/config-cuda$(CUDA)
$(CONFIG_STAMP):
	@mkdir -p $(dir $@)
	@rm -f $(OBJ)/config-cuda* && touch $@

$(LIB): $(LIB_OBJS) $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $(LIB_OBJS)

$(BIN)/%: $(OBJ)/tools/%.o $(COMMON_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $< $(COMMON_OBJS) $(LIB) $(LDLIBS) -o $@

$(BUILD)/examples/%: $(OBJ)/examples/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(TEST_BIN): $(TEST_OBJS) $(COMMON_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(TEST_OBJS) $(COMMON_OBJS) $(LIB) $(LDLIBS) -o $@

bench: $(BENCHES)

$(BIN)/bench_%: $(OBJ)/bench/bench_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $< $(LIB) $(LDLIBS) -lbenchmark -lpthread -o $@

test: all
	bash scripts/run-tests.sh $(BIN) $(TEST_BIN)

# Regenerates the committed golden files of the PyTorch parity tests (needs Debian's python3-torch).
.PHONY: golden
golden:
	/usr/bin/python3 tests/reference/adapters_ref.py --out tests/golden

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
-include fuzz/fuzz.mk

# The gradient-dynamics study (issue 5): runs every experiment into build/study and rewrites
# docs/study.md and docs/figures/study_*.png (long; not part of CI). See scripts/study.sh.
.PHONY: study
study: all
	bash scripts/study.sh build/study
