// Measures loading the knowledge base: wall time of LoadKnowledgeBase over
// several runs, and the process's resident memory once it is loaded.
//
//   vigil-bench-kb-load [--runs=N] [--import=PATH,...] [KB_PATH...]
//
// Prints one line of results (min/median/max milliseconds, resident and peak
// resident MiB). Run it in a fresh process per configuration so that the
// memory figures belong to that configuration alone.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/kb/loader.h"

namespace {

// A field of /proc/self/status in KiB ("VmRSS", "VmHWM").
long StatusKib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, field + ":")) {
      long value = 0;
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &value)) {
        return value;
      }
    }
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  vigil::KnowledgeBaseSpec spec;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--runs=")) {
      if (!absl::SimpleAtoi(arg.substr(7), &runs) || runs < 1) {
        std::cerr << "--runs needs a positive number\n";
        return 64;
      }
    } else if (absl::StartsWith(arg, "--import=")) {
      spec.imports = absl::StrSplit(arg.substr(9), ',', absl::SkipEmpty());
    } else {
      spec.curated.push_back(arg);
    }
  }
  if (spec.curated.empty()) {
    spec.curated.push_back(VIGIL_DEFAULT_KB);
  }
  const long rss_before = StatusKib("VmRSS");
  std::vector<double> millis;
  std::shared_ptr<const vigil::KnowledgeBase> kept;
  for (int i = 0; i < runs; ++i) {
    kept.reset();
    const auto start = std::chrono::steady_clock::now();
    auto kb = vigil::LoadKnowledgeBase(spec);
    const auto end = std::chrono::steady_clock::now();
    if (!kb.ok()) {
      std::cerr << kb.status().message() << "\n";
      return 1;
    }
    millis.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    kept = *kb;
  }
  std::sort(millis.begin(), millis.end());
  const long rss_after = StatusKib("VmRSS");
  const long peak = StatusKib("VmHWM");
  std::cout << "drugs=" << kept->drug_count() << " curated_rules=" << kept->interactions().size()
            << " imported_pairs=" << kept->imported_pair_count() << " runs=" << runs << " load_ms_min=" << millis.front()
            << " load_ms_median=" << millis[millis.size() / 2] << " load_ms_max=" << millis.back()
            << " rss_before_mib=" << static_cast<double>(rss_before) / 1024.0 << " rss_loaded_mib=" << static_cast<double>(rss_after) / 1024.0
            << " peak_rss_mib=" << static_cast<double>(peak) / 1024.0 << "\n";
  return 0;
}
