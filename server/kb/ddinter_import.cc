// The DDInter CSV import: KnowledgeBaseBuilder::AddDdinterImport (declared
// in validators.h) and its helpers.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "server/common/text.h"
#include "server/kb/validators.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using kb_internal::kMaxReportedErrors;

// DDInter levels and the severities they map to. DDInter's "Unknown" means an
// interaction is documented but its severity was not graded: that is not a
// clean bill of health, so it alerts at moderate, saying the grade is unknown.
struct DdinterLevel {
  absl::string_view name;
  v1::Severity severity;
};
constexpr DdinterLevel kLevels[] = {
    {"Major", v1::SEVERITY_MAJOR},
    {"Moderate", v1::SEVERITY_MODERATE},
    {"Minor", v1::SEVERITY_MINOR},
    {"Unknown", v1::SEVERITY_MODERATE},
};
constexpr char kHeader[] = "DDInterID_A,Drug_A,DDInterID_B,Drug_B,Level";

// One import row: two drugs and the index of the level in kLevels.
struct Row {
  DrugIndex a;
  DrugIndex b;
  uint8_t level;
};

// Splits one CSV line (RFC 4180 quoting) into fields.
bool SplitCsvLine(absl::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  std::string field;
  bool quoted = false;
  bool was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field.push_back(c);
      }
    } else if (c == '"' && field.empty() && !was_quoted) {
      quoted = true;
      was_quoted = true;
    } else if (c == ',') {
      fields->push_back(std::move(field));
      field.clear();
      was_quoted = false;
    } else {
      field.push_back(c);
    }
  }
  if (quoted) {
    return false;
  }
  fields->push_back(std::move(field));
  return true;
}

// A slug id for a drug created by an import.
std::string SlugOf(absl::string_view name) {
  std::string out;
  bool dash = false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u)) {
      if (dash && !out.empty()) {
        out.push_back('-');
      }
      dash = false;
      out.push_back(absl::ascii_tolower(u));
    } else {
      dash = true;
    }
  }
  return out;
}

// Maps DDInter drugs onto the base's drugs by name, creating an import-only
// drug for a name no drug has. Works on KnowledgeBase members its caller (the
// base's friend) passes in.
class DrugResolver {
 public:
  DrugResolver(absl::flat_hash_map<std::string, DrugIndex>* drug_names, std::vector<DrugEntry>* drugs,
               size_t curated_drug_count)
      : drug_names_(drug_names), drugs_(drugs), curated_drug_count_(curated_drug_count) {}

  // The drug for a DDInter id and name; the first name seen for an id wins.
  DrugIndex Resolve(const std::string& ddinter_id, const std::string& name) {
    if (const auto it = by_ddinter_id_.find(ddinter_id); it != by_ddinter_id_.end()) {
      return it->second;
    }
    DrugIndex d = 0;
    if (const auto it = drug_names_->find(NormalizeName(name)); it != drug_names_->end()) {
      d = it->second;
      if (d < curated_drug_count_) {
        mapped_.insert(d);
      }
    } else {
      d = Create(name);
    }
    by_ddinter_id_.emplace(ddinter_id, d);
    return d;
  }

  // Import-only drugs created.
  size_t created() const { return created_; }
  // Curated drugs DDInter drugs were mapped onto.
  size_t mapped() const { return mapped_.size(); }

 private:
  DrugIndex Create(const std::string& name) {
    // The id must resolve to this drug alone: a curated drug or an earlier
    // import-only one may already use the slug (names that differ only in
    // punctuation, such as "X!" and "X?", share it).
    const std::string slug = SlugOf(name);
    std::string id = slug;
    for (int n = 1; drug_names_->contains(NormalizeName(id)); ++n) {
      id = n == 1 ? absl::StrCat(slug, "-ddinter") : absl::StrCat(slug, "-ddinter-", n);
    }
    const auto d = static_cast<DrugIndex>(drugs_->size());
    DrugEntry entry;
    entry.proto.set_id(id);
    entry.proto.set_name(name);
    entry.proto.add_sources("ddinter");
    entry.origin = Origin{"ddinter", 0};
    drugs_->push_back(std::move(entry));
    drug_names_->emplace(NormalizeName(name), d);
    drug_names_->emplace(NormalizeName(id), d);
    ++created_;
    return d;
  }

  absl::flat_hash_map<std::string, DrugIndex>* drug_names_;
  std::vector<DrugEntry>* drugs_;
  size_t curated_drug_count_;
  // Resolution cache: DDInter id -> drug.
  absl::flat_hash_map<std::string, DrugIndex> by_ddinter_id_;
  absl::flat_hash_set<DrugIndex> mapped_;
  size_t created_ = 0;
};

// Checks one data line of `path`; returns its level's index in kLevels, or
// nothing after recording the problem in `errors`. Fills `fields`.
std::optional<uint8_t> CheckRow(const std::string& path, size_t line_number, absl::string_view line,
                                std::vector<std::string>& fields, std::vector<std::string>& errors) {
  if (!IsValidUtf8(line)) {
    errors.push_back(absl::StrCat(path, ":", line_number, ": not valid UTF-8"));
    return std::nullopt;
  }
  if (!SplitCsvLine(line, &fields)) {
    errors.push_back(absl::StrCat(path, ":", line_number, ": unterminated quoted field"));
    return std::nullopt;
  }
  if (fields.size() != 5) {
    errors.push_back(absl::StrCat(path, ":", line_number, ": expected 5 columns, found ", fields.size()));
    return std::nullopt;
  }
  for (int k : {0, 1, 2, 3}) {
    if (absl::StripAsciiWhitespace(fields[static_cast<size_t>(k)]).empty()) {
      errors.push_back(absl::StrCat(path, ":", line_number, ": column ", k + 1, " is empty"));
      return std::nullopt;
    }
  }
  // A name without a letter or digit (only punctuation or control
  // characters) is no drug name, and would give a drug an empty id.
  for (int k : {1, 3}) {
    if (SlugOf(fields[static_cast<size_t>(k)]).empty()) {
      errors.push_back(absl::StrCat(path, ":", line_number, ": column ", k + 1, " has no letter or digit"));
      return std::nullopt;
    }
  }
  int level = -1;
  for (size_t k = 0; k < std::size(kLevels); ++k) {
    if (fields[4] == kLevels[k].name) {
      level = static_cast<int>(k);
    }
  }
  if (level < 0) {
    errors.push_back(absl::StrCat(path, ":", line_number, ": unknown level '", fields[4].substr(0, 40),
                                  "' (expected Major, Moderate, Minor or Unknown)"));
    return std::nullopt;
  }
  if (fields[0] == fields[2]) {
    errors.push_back(absl::StrCat(path, ":", line_number, ": a drug cannot interact with itself"));
    return std::nullopt;
  }
  return static_cast<uint8_t>(level);
}

// Parses the text of one CSV file: the header, then a row per line (blank
// lines skipped). Appends its rows to `rows` and its problems (at most
// kMaxReportedErrors, the header's alone if it is wrong) to `errors`.
void ParseCsvText(const std::string& path, const std::string& text, DrugResolver& resolver,
               std::vector<Row>& rows, std::vector<std::string>& errors) {
  const size_t errors_before = errors.size();
  std::vector<std::string> fields;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      end = text.size();
    }
    absl::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line_number == 1) {
      if (line != kHeader) {
        errors.push_back(absl::StrCat(path, ":1: header must be '", kHeader, "'"));
        break;
      }
      continue;
    }
    if (line.empty()) {
      continue;
    }
    if (errors.size() - errors_before >= kMaxReportedErrors) {
      break;
    }
    const std::optional<uint8_t> level = CheckRow(path, line_number, line, fields, errors);
    if (!level.has_value()) {
      continue;
    }
    const DrugIndex a = resolver.Resolve(fields[0], fields[1]);
    const DrugIndex b = resolver.Resolve(fields[2], fields[3]);
    rows.push_back(Row{a, b, *level});
  }
}

// Adds the rows to `pairs` under `import_index`. A pair listed twice (in two
// ATC files, or with two levels) keeps the most severe.
void MergeRows(const std::vector<Row>& rows, uint16_t import_index,
               absl::flat_hash_map<uint64_t, ImportedInteraction>& pairs) {
  pairs.reserve(pairs.size() + rows.size());
  for (const Row& row : rows) {
    if (row.a == row.b) {
      continue;  // Two DDInter entries mapped onto one curated drug.
    }
    const uint64_t key = PairKey(row.a, row.b);
    const v1::Severity severity = kLevels[row.level].severity;
    auto [it, inserted] = pairs.try_emplace(key, ImportedInteraction{severity, import_index, row.level});
    if (!inserted && (severity > it->second.severity ||
                      (severity == it->second.severity && row.level < it->second.level))) {
      it->second = ImportedInteraction{severity, import_index, row.level};
    }
  }
}

// Recounts the imported pairs of each of `drug_count` drugs into
// `count_by_drug`; returns the pairs that `import_index` holds.
size_t CountPairs(const absl::flat_hash_map<uint64_t, ImportedInteraction>& pairs, uint16_t import_index,
                  size_t drug_count, std::vector<uint32_t>& count_by_drug) {
  count_by_drug.assign(drug_count, 0);
  size_t own = 0;
  for (const auto& [key, value] : pairs) {
    if (value.import_index == import_index) {
      ++own;
    }
    ++count_by_drug[static_cast<size_t>(key >> 32)];
    ++count_by_drug[static_cast<size_t>(key & 0xffffffffu)];
  }
  return own;
}

// The refusal listing an import's problems (at most kMaxReportedErrors).
absl::Status ImportRefusal(const std::vector<std::string>& errors) {
  const size_t shown = std::min(errors.size(), kMaxReportedErrors);
  return absl::InvalidArgumentError(absl::StrCat(
      "interaction import refused: ", errors.size(), " problem", errors.size() == 1 ? "" : "s", ":\n  ",
      absl::StrJoin(errors.begin(), errors.begin() + static_cast<std::ptrdiff_t>(shown), "\n  ")));
}

// The citation of DDInter, for bases that do not define a "ddinter" source.
kb::v1::Source DdinterSource() {
  kb::v1::Source source;
  source.set_id("ddinter");
  source.set_title("DDInter: an online drug-drug interaction database");
  source.set_url("http://ddinter.scbdd.com/");
  source.set_citation("Xiong G, et al. Nucleic Acids Res. 2022;50(D1):D1200-D1207. Imported from its CSV tables.");
  return source;
}

}  // namespace

absl::Status KnowledgeBaseBuilder::AddDdinterImport(KnowledgeBase& kb, const std::vector<std::string>& files) {
  ImportInfo info;
  info.name = "ddinter";
  info.source_id = "ddinter";
  for (const auto& level : kLevels) {
    info.levels.emplace_back(level.name);
  }
  const auto import_index = static_cast<uint16_t>(kb.imports_.size());
  std::vector<std::string> errors;
  DrugResolver resolver(&kb.drug_names_, &kb.drugs_, kb.curated_drug_count_);
  // Parse every file first; nothing is added to the base unless all are clean.
  std::vector<Row> rows;
  rows.reserve(250000);
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      errors.push_back(absl::StrCat(path, ": cannot be read"));
      continue;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    info.files.emplace_back(path, Sha256Hex(text));
    absl::StrAppend(&digest_input_, "import:ddinter:", fs::path(path).filename().string(), "\n", info.files.back().second, "\n");
    const size_t rows_before = rows.size();
    ParseCsvText(path, text, resolver, rows, errors);
    info.file_rows.push_back(rows.size() - rows_before);
  }
  if (!errors.empty()) {
    return ImportRefusal(errors);
  }
  info.rows = rows.size();
  info.created_drugs = resolver.created();
  info.mapped_drugs = resolver.mapped();
  MergeRows(rows, import_index, kb.imported_pairs_);
  info.pairs = CountPairs(kb.imported_pairs_, import_index, kb.drugs_.size(), kb.imported_count_by_drug_);
  if (!kb.sources_.contains("ddinter")) {
    kb.sources_.emplace("ddinter", DdinterSource());
  }
  kb.imports_.push_back(std::move(info));
  return absl::OkStatus();
}

}  // namespace vigil
