// models/text/chat_template.h — chat prompts for one conversation, rendered by explicit
// renderers for the template families real models ship (ChatML, Llama-2, Llama-3, Zephyr,
// Gemma). No Jinja engine: the family is recognised from the template text (its marker
// tokens), and a default system message is taken from the template where the family puts one
// (ChatML's "<|im_start|>system\n...<|im_end|>" literal, as SmolLM2's template has).
#pragma once
#include <string>
#include <vector>

namespace cg::models {

enum class ChatFormat { ChatML, Llama2, Llama3, Zephyr, Gemma };

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::string content;
};

// "chatml", "llama2", "llama3", "zephyr", "gemma" → the format; else FormatError.
ChatFormat chat_format_by_name(const std::string& name);
std::string chat_format_name(ChatFormat f);
// The family of a Jinja chat template, from its marker tokens; none found → FormatError.
ChatFormat detect_chat_format(const std::string& template_text);
// The system message the template adds when the conversation has none ("" when it adds none).
std::string default_system_message(ChatFormat f, const std::string& template_text);
// The prompt text (special tokens written as text, e.g. "<|im_start|>") for `messages`,
// ending with the assistant's turn opened when add_generation_prompt. A system message is
// added from the template's default when messages has none.
std::string render_chat(ChatFormat f, const std::string& template_text, std::vector<ChatMessage> messages,
                        bool add_generation_prompt);
// The token texts that end an assistant turn in this family (besides the tokenizer's EOS).
std::vector<std::string> chat_stop_tokens(ChatFormat f);

}  // namespace cg::models
