// models/text/unicode.h — the little Unicode the tokenizers need: UTF-8 decoding that never
// fails (an invalid byte is one codepoint of its own, kInvalid), and the character classes of
// the GPT-2-style pre-tokenizer regex: \p{L}, \p{N} (tables in unicode_tables.cpp) and \s.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace cg::models::unicode {

struct CodepointRange {
  uint32_t lo, hi;
};
extern const CodepointRange kLetters[];
extern const size_t kLetters_count;
extern const CodepointRange kNumbers[];
extern const size_t kNumbers_count;

// Stands for a byte that does not start a valid UTF-8 sequence (it is neither L, N nor \s).
constexpr uint32_t kInvalid = 0xFFFFFFFF;

// Decodes the codepoint at s[i]; sets len to its byte length (1 for an invalid byte).
uint32_t decode_utf8(const std::string& s, size_t i, size_t& len);
void append_utf8(std::string& out, uint32_t cp);

bool is_letter(uint32_t cp);
bool is_number(uint32_t cp);
bool is_space(uint32_t cp);  // Unicode White_Space

}  // namespace cg::models::unicode
