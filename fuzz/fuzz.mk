# fuzz/fuzz.mk — libFuzzer harnesses (included by the Makefile). `make fuzz` builds
# build/fuzz/fuzz_{safetensors,llama2c,tokenizer,gguf} with clang (-fsanitize=fuzzer,address,
# undefined), compiling the engine and format sources they need into build/fuzz/obj, and
# build/fuzz/make_seeds (the seed-corpus writer) with the normal compiler. Run them with
# scripts/fuzz.sh [SECONDS].
FUZZ_CXX   ?= clang++
FUZZ_DIR   := $(BUILD)/fuzz
FUZZ_FLAGS := -std=c++20 -O1 -g -fno-omit-frame-pointer -fopenmp -Wall -Wextra -I. $(OPENBLAS_CFLAGS)
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRCS := $(filter-out engine/cuda_stub.cpp,$(wildcard engine/*.cpp engine/cpu/*.cpp)) engine/cuda_stub.cpp \
                 models/llama/config.cpp models/io/checkpoint.cpp models/io/file_io.cpp models/io/safetensors.cpp \
                 models/io/llama2c.cpp models/io/hf_llama.cpp models/io/gguf.cpp models/text/tokenizer.cpp \
                 models/text/tokenizer_json.cpp models/text/unicode.cpp models/text/unicode_tables.cpp
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.cpp=$(FUZZ_DIR)/obj/%.o)
FUZZERS := $(patsubst fuzz/%.cpp,$(FUZZ_DIR)/%,$(wildcard fuzz/fuzz_*.cpp))

.PHONY: fuzz
fuzz: $(FUZZERS) $(FUZZ_DIR)/make_seeds

$(FUZZ_DIR)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.cpp $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer $< $(FUZZ_LIB_OBJS) $(OPENBLAS_LIBS) -llapack -lm -o $@

$(FUZZ_DIR)/make_seeds: fuzz/make_seeds.cpp $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $< $(LIB) $(LDLIBS) -o $@
