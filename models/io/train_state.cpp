// models/io/train_state.cpp — saving and restoring training checkpoints; the durable writer.
#include "models/io/train_state.h"

#include <bit>
#include <cmath>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "models/io/file_io.h"
#include "models/io/safetensors.h"

namespace cg::models {
namespace {

constexpr const char* kFormat = "chaingrad.train_state";
constexpr const char* kVersion = "1";
constexpr uint64_t kMaxStep = uint64_t{1} << 53;  // far beyond any run; keeps step arithmetic exact

// A view of parameter p's slice of a flat optimizer buffer laid out like the store's flat
// buffer (which starts at element 0 of its storage, so p.offset() is p's place in it).
Tensor slice_of(const Tensor& flat_buf, const Tensor& p) {
  return Tensor::view_of(flat_buf.storage(), flat_buf.offset() + p.offset(), p.shape(), p.dtype());
}

uint64_t parse_u64(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& path) {
  const auto it = meta.find(key);
  if (it == meta.end()) throw FormatError(path + ": train state lacks metadata '" + key + "'");
  const std::string& s = it->second;
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos)
    throw FormatError(path + ": metadata '" + key + "' = '" + s + "' is not an unsigned integer");
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) throw FormatError(path + ": metadata '" + key + "' = '" + s + "' is out of range");
  return v;
}

}  // namespace

void write_file_durable(const std::string& path, const std::vector<uint8_t>& bytes) { write_file_atomic(path, bytes); }

void save_train_state(const std::string& path, const nn::ParamStore& params, nn::Optimizer& opt,
                      const TrainState& state) {
  if (!params.finalized()) throw Error("save_train_state: store '" + params.group() + "' is not finalized");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, p] : params.params()) tensors.emplace_back(name, p);
  for (const auto& [name, p] : params.params()) {
    if (opt.m().defined()) tensors.emplace_back("optim.m." + name, slice_of(opt.m(), p));
    if (opt.v().defined()) tensors.emplace_back("optim.v." + name, slice_of(opt.v(), p));
  }
  std::map<std::string, std::string> meta{
      {"format", kFormat},
      {"version", kVersion},
      {"group", params.group()},
      {"optimizer", opt.config().name},
      {"step", std::to_string(opt.step_count())},
      {"data_position", std::to_string(state.data_position)},
      {"rng.has_spare", state.rng.has_spare ? "1" : "0"},
      {"rng.spare_bits", std::to_string(std::bit_cast<uint64_t>(state.rng.spare))},
  };
  for (int i = 0; i < 4; ++i) meta["rng.s" + std::to_string(i)] = std::to_string(state.rng.s[i]);
  for (const auto& [k, v] : state.meta) meta["user." + k] = v;
  write_file_atomic(path, serialize_safetensors(tensors, meta));
  remove_stale_temps(path);  // left by a process killed mid-save
}

TrainState load_train_state(const std::string& path, nn::ParamStore& params, nn::Optimizer& opt) {
  const SafeTensors st = read_safetensors(path);
  auto meta = [&](const std::string& key) -> const std::string& {
    const auto it = st.metadata.find(key);
    if (it == st.metadata.end()) throw FormatError(path + ": train state lacks metadata '" + key + "'");
    return it->second;
  };
  if (meta("format") != kFormat)
    throw FormatError(path + ": not a chaingrad train state (format '" + meta("format") + "')");
  if (meta("version") != kVersion)
    throw FormatError(path + ": train state version " + meta("version") + " is not supported");
  if (meta("group") != params.group())
    throw FormatError(path + ": holds parameter group '" + meta("group") + "', expected '" + params.group() + "'");
  if (meta("optimizer") != opt.config().name)
    throw FormatError(path + ": was saved with optimizer " + meta("optimizer") + ", this run uses " +
                      opt.config().name);

  // Validate everything first.
  std::set<std::string> expected;
  auto check = [&](const std::string& name, const Tensor& like) {
    const auto it = st.tensors.find(name);
    if (it == st.tensors.end()) throw FormatError(path + ": missing tensor '" + name + "'");
    if (!(it->second.shape() == like.shape()) || it->second.dtype() != like.dtype())
      throw FormatError(path + ": tensor '" + name + "' is " + it->second.desc() + ", expected " +
                        dtype_name(like.dtype()) + like.shape().str());
    expected.insert(name);
  };
  for (const auto& [name, p] : params.params()) {
    check(name, p);
    if (opt.m().defined()) check("optim.m." + name, p);
    if (opt.v().defined()) check("optim.v." + name, p);
  }
  for (const std::string& name : st.names)
    if (!expected.count(name)) throw FormatError(path + ": unexpected tensor '" + name + "'");
  // Values: finite parameters and moments, non-negative second moments.
  auto finite = [&](const std::string& name, bool non_negative) {
    const Tensor& t = st.tensors.at(name);
    auto scan = [&](const auto* x) {
      for (int64_t i = 0; i < t.numel(); ++i)
        if (!std::isfinite(x[i]) || (non_negative && x[i] < 0))
          throw FormatError(path + ": tensor '" + name + "' holds " +
                            (std::isfinite(x[i]) ? "a negative" : "a non-finite") + " value at element " +
                            std::to_string(i));
    };
    if (t.dtype() == DType::F32) scan(t.data<float>());
    else if (t.dtype() == DType::F64) scan(t.data<double>());
  };
  for (const auto& [name, p] : params.params()) {
    finite(name, false);
    if (opt.m().defined()) finite("optim.m." + name, false);
    if (opt.v().defined()) finite("optim.v." + name, true);
  }
  TrainState state;
  const uint64_t step = parse_u64(st.metadata, "step", path);
  const uint64_t pos = parse_u64(st.metadata, "data_position", path);
  if (step > kMaxStep) throw FormatError(path + ": step " + std::to_string(step) + " is out of range");
  if (pos > kMaxStep) throw FormatError(path + ": data_position " + std::to_string(pos) + " is out of range");
  for (int i = 0; i < 4; ++i) state.rng.s[i] = parse_u64(st.metadata, "rng.s" + std::to_string(i), path);
  state.rng.has_spare = parse_u64(st.metadata, "rng.has_spare", path) != 0;
  state.rng.spare = std::bit_cast<double>(parse_u64(st.metadata, "rng.spare_bits", path));
  state.data_position = static_cast<int64_t>(pos);
  for (const auto& [k, v] : st.metadata)
    if (k.rfind("user.", 0) == 0) state.meta[k.substr(5)] = v;

  // Then restore.
  for (const auto& [name, p] : params.params()) {
    Tensor dst = p;
    dst.copy_from(st.tensors.at(name));
    if (opt.m().defined()) slice_of(opt.m(), p).copy_from(st.tensors.at("optim.m." + name));
    if (opt.v().defined()) slice_of(opt.v(), p).copy_from(st.tensors.at("optim.v." + name));
  }
  opt.set_step_count(static_cast<int64_t>(step));
  return state;
}

}  // namespace cg::models
