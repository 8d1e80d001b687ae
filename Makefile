# chaingrad — builds the library, the tools and the tests into build/.
#   make              library + tools + tests
#   make demo         the main job (scripts/demo.sh): pretrain, fine-tune with each adapter, compare
#   make test         build, run every test, gradcheck, the docs checks and the MPI checks
#   make SANITIZE=1 test   the same under ASan + UBSan (objects in build/san)
#   make golden       regenerate tests/golden/ with the PyTorch reference scripts
#   make CUDA=1       insist on the CUDA backend (CUDA=0 skips it; default: detect nvcc)
#   make NATIVE=0     build for the baseline CPU instead of -march=native
#   make MPI=1        insist on MPI for data-parallel runs (MPI=0 skips it; default: detect)
#   make DNNL=1       insist on oneDNN for the CPU's bf16 GEMMs (DNNL=0 skips it; default: detect)
#   make bench        microbenchmarks into build/bin (Google Benchmark)
#   make tools        only the binaries of tools/ (make examples: only the tour's programs)
#   make format-check  clang-format --dry-run over the C++/CUDA sources (scripts/format.sh formats)
# The Makefile detects rather than demands: it says what it found and builds what it can.

CXX      ?= g++
ifeq ($(origin CXX),default)
CXX := g++
endif
SANITIZE ?= 0
CUDA     ?= auto
MPI      ?= auto
DNNL     ?= auto

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
# GCC 12 reports false maybe-uninitialized warnings inside std::regex and std::function when
# ASan instruments them; the normal build keeps the warning.
CXXFLAGS += -Wno-maybe-uninitialized
LDLIBS   += -fsanitize=address,undefined
endif

# ---- OpenBLAS (required) ---------------------------------------------------------------
# DEPS=dir: take headers from dir/include and OpenBLAS/LAPACK from dir/lib instead of the
# system (for a machine without the Debian packages, e.g. a lent GPU machine).
DEPS ?=
LAPACK_LIBS := -llapack
ifneq ($(DEPS),)
OPENBLAS_CFLAGS := -I$(abspath $(DEPS))/include
OPENBLAS_LIBS   := $(abspath $(DEPS))/lib/libopenblas.so.0 -Wl,--disable-new-dtags,-rpath,$(abspath $(DEPS))/lib
LAPACK_LIBS     := $(abspath $(DEPS))/lib/liblapack.so.3
else
OPENBLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
OPENBLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null)
endif
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
LDLIBS   += $(OPENBLAS_LIBS) $(LAPACK_LIBS) -lm

# ---- oneDNN (optional): the CPU backend's bf16 GEMMs (--precision bf16) -------------------
# Found as oneapi/dnnl/dnnl.h + libdnnl (Debian's libdnnl-dev; or under DEPS=dir). Only
# engine/cpu/cpu_dnnl.o sees the flag; without oneDNN, bf16 GEMMs round their inputs and run
# through OpenBLAS (the same math, slower).
DNNL_ROOT := $(if $(DEPS),$(abspath $(DEPS)),/usr)
DNNL_LIBDIRS := $(DNNL_ROOT)/lib $(DNNL_ROOT)/lib64 $(DNNL_ROOT)/lib/x86_64-linux-gnu $(DNNL_ROOT)/lib/aarch64-linux-gnu
DNNL_FOUND := $(and $(wildcard $(DNNL_ROOT)/include/oneapi/dnnl/dnnl.h),$(firstword $(wildcard $(addsuffix /libdnnl.so,$(DNNL_LIBDIRS)))))
ifeq ($(DNNL),auto)
DNNL := $(if $(DNNL_FOUND),1,0)
endif
ifeq ($(DNNL),1)
ifeq ($(DNNL_FOUND),)
$(error DNNL=1 but oneDNN was not found (oneapi/dnnl/dnnl.h and libdnnl.so under $(DNNL_ROOT)): run scripts/install-deps.sh)
endif
DNNL_FLAGS := -DCG_WITH_DNNL
ifneq ($(DEPS),)
DNNL_FLAGS += -I$(DNNL_ROOT)/include
LDLIBS     += $(DNNL_FOUND) -Wl,-rpath,$(dir $(DNNL_FOUND))
else
LDLIBS     += -ldnnl
endif
DNNL_INFO  := DNNL=1 [$(DNNL_FOUND)]
else
DNNL_FLAGS :=
DNNL_INFO  := DNNL=0
endif

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

# ---- MPI (optional): data-parallel train/finetune under mpirun ---------------------------
# Found through pkg-config (ompi, then mpi), else through the mpicxx wrapper. With CUDA too,
# NCCL (nccl.h + libnccl in the CUDA toolkit) reduces CUDA tensors; without it they go
# through host memory. Only nn/dist/*.o see the MPI/NCCL flags; every binary links MPI.
comma := ,
NCCL  := 0
ifneq ($(MPI),0)
MPI_CFLAGS := $(shell pkg-config --cflags ompi 2>/dev/null || pkg-config --cflags mpi 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi 2>/dev/null || pkg-config --libs mpi 2>/dev/null)
ifeq ($(MPI_LIBS),)
MPICXX     := $(shell command -v mpicxx 2>/dev/null)
ifneq ($(MPICXX),)
MPI_CFLAGS := $(shell $(MPICXX) --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell $(MPICXX) --showme:link 2>/dev/null)
endif
endif
endif
ifeq ($(MPI),auto)
MPI := $(if $(MPI_LIBS),1,0)
endif
ifeq ($(MPI),1)
ifeq ($(MPI_LIBS),)
$(error MPI=1 but MPI was not found (pkg-config ompi/mpi, mpicxx): run scripts/install-deps.sh)
endif
DIST_FLAGS := -DCG_WITH_MPI -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX $(MPI_CFLAGS)
LDLIBS     += $(MPI_LIBS)
ifeq ($(CUDA),1)
ifneq ($(and $(wildcard $(CUDA_HOME)/include/nccl.h),$(wildcard $(CUDA_HOME)/lib64/libnccl.so*)),)
NCCL       := 1
DIST_FLAGS += -DCG_WITH_NCCL -I$(CUDA_HOME)/include
LDLIBS     += -lnccl
endif
endif
MPI_SRCS   := nn/dist/dist_mpi.cpp
MPI_INFO   := MPI=1 [$(MPI_LIBS)]$(if $(filter 1,$(CUDA)),$(comma) NCCL=$(NCCL),)
else
DIST_FLAGS :=
MPI_SRCS   :=
MPI_INFO   := MPI=0
endif

LIB_SRCS := $(wildcard engine/*.cpp engine/cpu/*.cpp ops/*.cpp nn/*.cpp nn/*/*.cpp models/*/*.cpp)
LIB_SRCS := $(filter-out engine/cuda_stub.cpp nn/dist/dist_mpi.cpp,$(LIB_SRCS)) $(STUB_SRCS) $(MPI_SRCS)
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

.PHONY: all test clean info tools examples bench golden demo
# Object files made through pattern rules are kept (not deleted as intermediates), and
# still rebuilt when missing.
.PRECIOUS: $(OBJ)/%.o
all: info $(LIB) $(TOOLS) $(EXAMPLES) $(TEST_BIN)
tools: $(TOOLS)
examples: $(EXAMPLES)

info:
	@echo "chaingrad build: $(CXX), OpenBLAS [$(OPENBLAS_LIBS)], CUDA=$(CUDA)$(if $(filter 1,$(CUDA)), ($(NVCC)),), $(MPI_INFO), $(DNNL_INFO), SANITIZE=$(SANITIZE)"

$(OBJ)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(OBJ)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# The library records which CUDA/MPI/oneDNN setting built it: switching CUDA=0/1 or MPI=0/1 in one
# tree rebuilds the library (CUDA objects or the stub, the communicators) and relinks every
# binary. The stamp is rewritten while the Makefile is read, and only when the setting changed
# (written here, not by a rule, so it exists before any target is considered).
CONFIG       := cuda$(CUDA)-mpi$(MPI)-nccl$(NCCL)-dnnl$(DNNL)
CONFIG_STAMP := $(OBJ)/config
# (Not for `make format-check` alone, which builds nothing: it must not flip the stamp.)
ifneq ($(MAKECMDGOALS),format-check)
$(shell mkdir -p $(OBJ) && { [ "$$(cat $(CONFIG_STAMP) 2>/dev/null)" = "$(CONFIG)" ] || echo "$(CONFIG)" > $(CONFIG_STAMP); })
endif

# The oneDNN wrapper is compiled with its flag, and again when the setting changes.
$(OBJ)/engine/cpu/cpu_dnnl.o: CXXFLAGS += $(DNNL_FLAGS)
$(OBJ)/engine/cpu/cpu_dnnl.o: $(CONFIG_STAMP)

# The communicators are compiled with the MPI/NCCL flags, and again when the setting changes.
$(OBJ)/nn/dist/dist.o $(OBJ)/nn/dist/dist_mpi.o: CXXFLAGS += $(DIST_FLAGS)
$(OBJ)/nn/dist/dist.o $(OBJ)/nn/dist/dist_mpi.o: $(CONFIG_STAMP)

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

# The main job: pretrain a tiny model, fine-tune it with LoRA, MoSLoRA and LinChain, table + plot.
# make demo DATA=text.txt BASE=model.bin [TOKENIZER=tok.bin] runs the comparison on real data.
demo: all
	DATA="$(DATA)" BASE="$(BASE)" TOKENIZER="$(TOKENIZER)" bash scripts/demo.sh

test: all
	bash scripts/run-tests.sh $(BIN) $(TEST_BIN) $(SANITIZE)

# Regenerates the committed golden files of the PyTorch parity tests (needs Debian's python3-torch).
golden:
	/usr/bin/python3 tests/reference/adapters_ref.py --out tests/golden
	/usr/bin/python3 tests/reference/adapters_ref.py --variant alt --out tests/golden
	/usr/bin/python3 tests/reference/dump_grads_ref.py --out tests/golden
	/usr/bin/python3 tests/reference/extract_answer_ref.py --out tests/golden

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
-include fuzz/fuzz.mk

# The gradient-dynamics study: runs every experiment into build/study and rewrites
# docs/study.md and docs/figures/study_*.png (long; not part of CI). See scripts/study.sh.
.PHONY: study
study: all
	bash scripts/study.sh build/study

# The real-model study (issue 21): SmolLM2-135M-Instruct, LoRA / MoSLoRA / LinChain and the
# controls, eight commonsense test sets; rewrites docs/study.md §9 and docs/figures/study_real_*.png.
# Hours on 2 cores, resumable: make study-real [PART=data|base|train|eval|report] [PILOT=1]
# [METHODS="lora lora_bias"] [SEEDS="0 1 2"] [STEPS=N] [ITEMS=N] ... (scripts/study_real.py).
.PHONY: study-real
study-real: all
	bash scripts/study_real.sh

# The C++/CUDA style (.clang-format, clang-format 14): make format-check fails, listing the
# places, when a tracked .cpp/.h/.cu file is not formatted; scripts/format.sh formats the
# tree and moves the docs' code links and excerpts along.
CLANG_FORMAT ?= $(shell command -v clang-format-14 || command -v clang-format)
FORMAT_SRCS = $(shell git ls-files '*.cpp' '*.h' '*.cu' 2>/dev/null || \
                find engine ops nn models tools tests bench examples fuzz -name '*.cpp' -o -name '*.h' -o -name '*.cu')
.PHONY: format-check
format-check:
	@test -n "$(CLANG_FORMAT)" || { echo "format-check: no clang-format found (apt-get install clang-format-14)"; exit 2; }
	@test -n "$(strip $(FORMAT_SRCS))" || { echo "format-check: no source files found"; exit 2; }
	@$(CLANG_FORMAT) --version | grep -q "version 14\." || echo "format-check: warning: $(CLANG_FORMAT) is not clang-format 14, whose output the tree follows"
	@echo "$(CLANG_FORMAT) --dry-run --Werror ($(words $(FORMAT_SRCS)) files)"
	@$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_SRCS)
	@echo "format-check: $(words $(FORMAT_SRCS)) files as .clang-format says"
