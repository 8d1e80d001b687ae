// models/text/chat_template.cpp — the five chat renderers and the family detection.
#include "models/text/chat_template.h"

#include "engine/error.h"

namespace cg::models {

ChatFormat chat_format_by_name(const std::string& name) {
  if (name == "chatml") return ChatFormat::ChatML;
  if (name == "llama2") return ChatFormat::Llama2;
  if (name == "llama3") return ChatFormat::Llama3;
  if (name == "zephyr") return ChatFormat::Zephyr;
  if (name == "gemma") return ChatFormat::Gemma;
  throw FormatError("unknown chat template '" + name + "' (chatml, llama2, llama3, zephyr, gemma)");
}

std::string chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::ChatML: return "chatml";
    case ChatFormat::Llama2: return "llama2";
    case ChatFormat::Llama3: return "llama3";
    case ChatFormat::Zephyr: return "zephyr";
    case ChatFormat::Gemma: return "gemma";
  }
  return "?";
}

ChatFormat detect_chat_format(const std::string& t) {
  if (t.find("<|im_start|>") != std::string::npos) return ChatFormat::ChatML;
  if (t.find("<|start_header_id|>") != std::string::npos) return ChatFormat::Llama3;
  if (t.find("<start_of_turn>") != std::string::npos) return ChatFormat::Gemma;
  if (t.find("<|user|>") != std::string::npos) return ChatFormat::Zephyr;
  if (t.find("[INST]") != std::string::npos) return ChatFormat::Llama2;
  if (t.empty()) throw FormatError("the model carries no chat template; give --chat-template NAME");
  throw FormatError(
      "chat template not recognised (no ChatML, Llama-2, Llama-3, Zephyr or Gemma markers); "
      "give --chat-template NAME");
}

std::string default_system_message(ChatFormat f, const std::string& t) {
  if (f != ChatFormat::ChatML) return "";
  const std::string open = "<|im_start|>system\n";
  const size_t a = t.find(open);
  if (a == std::string::npos) return "";
  const size_t b = t.find("<|im_end|>", a + open.size());
  if (b == std::string::npos) return "";
  const std::string s = t.substr(a + open.size(), b - a - open.size());
  // Only a literal message counts; template code ({{ ... }}) in it means none is fixed.
  return s.find("{{") == std::string::npos && s.find("{%") == std::string::npos ? s : "";
}

std::string render_chat(ChatFormat f, const std::string& t, std::vector<ChatMessage> m, bool gen) {
  const bool has_system = !m.empty() && m[0].role == "system";
  if (!has_system) {
    const std::string d = default_system_message(f, t);
    if (!d.empty()) m.insert(m.begin(), {"system", d});
  }
  std::string out, system;
  switch (f) {
    case ChatFormat::ChatML:
      for (const auto& x : m) out += "<|im_start|>" + x.role + "\n" + x.content + "<|im_end|>\n";
      if (gen) out += "<|im_start|>assistant\n";
      return out;
    case ChatFormat::Llama3:
      out = "<|begin_of_text|>";
      for (const auto& x : m)
        out += "<|start_header_id|>" + x.role + "<|end_header_id|>\n\n" + x.content + "<|eot_id|>";
      if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFormat::Zephyr:
      for (const auto& x : m) out += "<|" + x.role + "|>\n" + x.content + "</s>\n";
      if (gen) out += "<|assistant|>\n";
      return out;
    case ChatFormat::Gemma:
      out = "<bos>";
      for (const auto& x : m) {
        if (x.role == "system") {
          system = x.content + "\n\n";  // Gemma has no system turn: it leads the first user turn
          continue;
        }
        out += "<start_of_turn>" + std::string(x.role == "assistant" ? "model" : x.role) + "\n" + system + x.content +
               "<end_of_turn>\n";
        system.clear();
      }
      if (gen) out += "<start_of_turn>model\n";
      return out;
    case ChatFormat::Llama2:
      for (const auto& x : m) {
        if (x.role == "system") {
          system = "<<SYS>>\n" + x.content + "\n<</SYS>>\n\n";
        } else if (x.role == "user") {
          out += "<s>[INST] " + system + x.content + " [/INST]";
          system.clear();
        } else {
          out += " " + x.content + " </s>";
        }
      }
      return out;  // the generation prompt is the open [/INST]
  }
  return out;
}

std::vector<std::string> chat_stop_tokens(ChatFormat f) {
  switch (f) {
    case ChatFormat::ChatML: return {"<|im_end|>", "<|endoftext|>"};
    case ChatFormat::Llama3: return {"<|eot_id|>", "<|end_of_text|>"};
    case ChatFormat::Zephyr: return {"</s>"};
    case ChatFormat::Gemma: return {"<end_of_turn>", "<eos>"};
    case ChatFormat::Llama2: return {"</s>"};
  }
  return {};
}

}  // namespace cg::models
