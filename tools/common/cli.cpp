// tools/common/cli.cpp — run_tool: one error line and a clear exit code; the range checks
// and the unknown-flag suggestion.
#include "tools/common/cli.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "models/io/file_io.h"

namespace cg::tools {
namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// The app's long flag name (without "--") closest to `name`, or "" when none is close.
std::string closest_flag(CLI::App& app, const std::string& name) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const CLI::Option* o : app.get_options())
    for (const std::string& n : o->get_lnames()) {
      const size_t d = edit_distance(name, n);
      if (d < best_d) best_d = d, best = n;
    }
  return !best.empty() && best_d <= std::max<size_t>(2, name.size() / 3) ? best : "";
}

// "unknown flag --modle; did you mean --model?" for the first --flag the app lacks, or "".
std::string unknown_flag(CLI::App& app, const std::vector<std::string>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == "--") break;
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) continue;
    a = a.substr(0, a.find('='));
    if (app.get_option_no_throw(a)) continue;
    const std::string best = closest_flag(app, a.substr(2));
    std::string msg = "unknown flag " + (a.size() > 60 ? a.substr(0, 60) + "…" : a);
    if (!best.empty()) msg += "; did you mean --" + best + "?";
    return msg + " (see --help)";
  }
  return "";
}

// --config FILE (when the app has that flag): the JSON object's keys are flag names (without
// "--"), its values their values (true: a flag given; false: not given; numbers and strings
// as written). A flag on the command line wins over the file. The file's flags are put before
// the command line's, so every check runs on them as if typed.
std::vector<std::string> expand_config(CLI::App& app, std::vector<std::string> args) {
  if (!app.get_option_no_throw("--config")) return args;
  std::string path;
  std::vector<std::string> given;  // flag names on the command line
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) continue;
    const std::string name = a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2);
    given.push_back(name);
    if (name == "config")
      path = a.find('=') != std::string::npos ? a.substr(a.find('=') + 1) : (i + 1 < args.size() ? args[i + 1] : "");
  }
  if (path.empty()) return args;
  const std::vector<uint8_t> bytes = models::read_file_bytes(path, 1u << 20);
  const nlohmann::json j = models::parse_json_limited(std::string(bytes.begin(), bytes.end()), "--config " + path);
  if (!j.is_object()) throw FormatError("--config " + path + ": expected a JSON object of flag names and values");
  std::vector<std::string> from_file;
  for (const auto& [key, value] : j.items()) {
    if (key.compare(0, 2, "//") == 0) continue;  // a comment key
    const std::string at = "--config " + path + ": ";
    if (key == "config") throw FormatError(at + "a config cannot name another --config");
    if (!app.get_option_no_throw("--" + key)) {
      const std::string best = closest_flag(app, key);
      throw FormatError(at + "unknown key \"" + (key.size() > 60 ? key.substr(0, 60) + "…" : key) + "\"" +
                        (best.empty() ? "" : "; did you mean \"" + best + "\"?") + " (keys are the flags of --help)");
    }
    if (std::find(given.begin(), given.end(), key) != given.end()) continue;  // the command line wins
    if (value.is_boolean()) {
      if (value.get<bool>()) from_file.push_back("--" + key);
    } else if (value.is_number_integer()) {
      from_file.insert(from_file.end(), {"--" + key, std::to_string(value.get<int64_t>())});
    } else if (value.is_number()) {
      char b[40];
      std::snprintf(b, sizeof b, "%.17g", value.get<double>());
      from_file.insert(from_file.end(), {"--" + key, b});
    } else if (value.is_string()) {
      from_file.insert(from_file.end(), {"--" + key, value.get<std::string>()});
    } else {
      throw FormatError(at + "\"" + key + "\" must be a string, a number or true/false");
    }
  }
  args.insert(args.begin() + 1, from_file.begin(), from_file.end());
  return args;
}

std::string shown(const std::string& s) { return s.size() > 40 ? s.substr(0, 40) + "…" : s; }

}  // namespace

CLI::Validator int_range(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0') {
          // 1e6 and the like: an integer written as a real
          const double d = std::strtod(s.c_str(), &end);
          if (s.empty() || *end != '\0' || !std::isfinite(d) || d != std::floor(d))
            return "must be an integer, got '" + shown(s) + "'";
          if (d < static_cast<double>(lo)) return "must be ≥ " + std::to_string(lo) + ", got " + shown(s);
          if (d > static_cast<double>(hi)) return "must be ≤ " + std::to_string(hi) + ", got " + shown(s);
          s = std::to_string(static_cast<long long>(d));
          return "";
        }
        if (errno == ERANGE || v > hi) return "must be ≤ " + std::to_string(hi) + ", got " + shown(s);
        if (v < lo) return "must be ≥ " + std::to_string(lo) + ", got " + shown(s);
        return "";
      },
      "", "int_range");
}

CLI::Validator real_range(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0') return "must be a number, got '" + shown(s) + "'";
        if (!std::isfinite(v)) return "must be a finite number, got " + shown(s);
        char b[32];
        if (v < lo) return std::snprintf(b, sizeof b, "%g", lo), "must be ≥ " + std::string(b) + ", got " + shown(s);
        if (v > hi) return std::snprintf(b, sizeof b, "%g", hi), "must be ≤ " + std::string(b) + ", got " + shown(s);
        return "";
      },
      "", "real_range");
}

int run_tool(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  std::vector<std::string> args(argv, argv + argc);
  if (const std::string u = unknown_flag(app, args); !u.empty()) {
    std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), u.c_str());
    return kExitUsage;
  }
  try {
    args = expand_config(app, std::move(args));
  } catch (const cg::Error& e) {
    std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), e.what());
    return kExitUsage;
  }
  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);  // CLI11 takes them reversed, argv[0] left out
    app.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ValidationError& e) {
    // CLI11 says "--rank: must be ≥ 1, got 0"; drop the colon.
    std::string m = e.what();
    if (const size_t c = m.find(": "); c != std::string::npos && m.compare(0, 2, "--") == 0 && m.find(' ') > c)
      m.erase(c, 1);
    std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), m.c_str());
    return kExitUsage;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", app.get_name().c_str(), e.what());
    return kExitUsage;
  }
  try {
    return body();
  } catch (const cg::Error& e) {
    std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), e.what());
    return kExitUsage;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: out of memory (a size given on the command line or in a file is too large)\n",
                 app.get_name().c_str());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", app.get_name().c_str(), e.what());
    return 1;
  }
}

}  // namespace cg::tools
