#include "server/kb/loader.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "server/common/text.h"
#include "server/kb/validators.h"

namespace vigil {

namespace fs = std::filesystem;
using google::protobuf::TextFormat;
using kb_internal::kMaxReportedErrors;
using kb_internal::ParsedFile;

namespace {

// Collects text-format parse errors with their positions.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit ErrorCollector(std::string file) : file_(std::move(file)) {}
  void AddError(int line, int column,
                const std::string& message) override {
    errors_.push_back(absl::StrCat(file_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, int column,
                  const std::string& message) override {
    AddError(line, column, message);
  }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string file_;
  std::vector<std::string> errors_;
};

// Expands folders to their `extension` files (sorted by name); keeps files.
absl::StatusOr<std::vector<std::string>> ExpandPaths(const std::vector<std::string>& paths,
                                                     const std::string& extension) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> in_dir;
      for (const auto& entry : fs::directory_iterator(p, ec)) {
        if (entry.is_regular_file() && entry.path().extension() == extension) {
          in_dir.push_back(entry.path().string());
        }
      }
      if (ec) {
        return absl::InvalidArgumentError(absl::StrCat(p, ": cannot list folder: ", ec.message()));
      }
      std::sort(in_dir.begin(), in_dir.end());
      if (in_dir.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(p, ": folder has no ", extension, " files"));
      }
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      return absl::NotFoundError(absl::StrCat(p, ": no such file or folder"));
    }
  }
  if (files.empty()) {
    return absl::InvalidArgumentError("no knowledge-base files given");
  }
  return files;
}

}  // namespace

absl::StatusOr<std::shared_ptr<KnowledgeBase>> KnowledgeBaseBuilder::Build() {
  auto kb = std::make_shared<KnowledgeBase>();
  // Section by section over all files; a section runs after those it refers
  // to. Sections that share a loop go file by file, which fixes the order
  // problems are reported in.
  WhereMap source_where;
  for (const auto& f : files_) {
    IndexSources(*kb, f, source_where);
  }
  WhereMap class_where;
  WhereMap condition_set_where;
  for (const auto& f : files_) {
    IndexClasses(*kb, f, class_where);
    IndexConditionSets(*kb, f, condition_set_where);
  }
  ResolveClassParents(*kb, class_where);
  const ClassAncestors ancestors = ComputeClassAncestors(*kb, class_where);
  WhereMap drug_where;
  for (const auto& f : files_) {
    IndexDrugs(*kb, f, ancestors, condition_set_where, drug_where);
  }
  for (const auto& f : files_) {
    IndexProducts(*kb, f);
    IndexLabelInteractions(*kb, f);
  }
  IndexClassMembers(*kb);
  kb->rules_by_drug_.resize(kb->drugs_.size());
  for (const auto& f : files_) {
    IndexInteractions(*kb, f);
    IndexCrossSensitivities(*kb, f);
    IndexAdditiveRules(*kb, f);
  }
  SortRulesByDrug(*kb);
  IndexRulesByPair(*kb);
  if (!errors_.empty()) {
    return Refusal();
  }
  DigestCuratedFiles(*kb);
  kb->curated_drug_count_ = kb->drugs_.size();
  return kb;
}

absl::Status KnowledgeBaseBuilder::Refusal() const {
  std::vector<std::string> shown(
      errors_.begin(), errors_.begin() + static_cast<std::ptrdiff_t>(std::min(errors_.size(), kMaxReportedErrors)));
  std::string message = absl::StrCat("knowledge base refused: ", errors_.size(), " problem",
                                     errors_.size() == 1 ? "" : "s", ":\n  ",
                                     absl::StrJoin(shown, "\n  "));
  if (errors_.size() > kMaxReportedErrors) {
    absl::StrAppend(&message, "\n  ... and ", errors_.size() - kMaxReportedErrors, " more");
  }
  return absl::InvalidArgumentError(message);
}

// Version: digest over each file's name and deterministic serialization.
void KnowledgeBaseBuilder::DigestCuratedFiles(KnowledgeBase& kb) {
  for (const auto& f : files_) {
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream out(&bytes);
      google::protobuf::io::CodedOutputStream coded(&out);
      coded.SetSerializationDeterministic(true);
      f.content.SerializeToCodedStream(&coded);
    }
    absl::StrAppend(&digest_input_, fs::path(f.path).filename().string(), "\n", bytes.size(), "\n", bytes);
    kb.curated_files_.push_back(CuratedFileInfo{f.path, Sha256Hex(bytes)});
  }
}

void KnowledgeBaseBuilder::Finalize(KnowledgeBase& kb, double load_millis) {
  kb.rules_by_drug_.resize(kb.drugs_.size());
  kb.version_ = Sha256Hex(digest_input_);
  kb.load_millis_ = load_millis;
}

absl::StatusOr<std::shared_ptr<const KnowledgeBase>> LoadKnowledgeBase(
    const std::vector<std::string>& paths) {
  return LoadKnowledgeBase(KnowledgeBaseSpec{paths, {}});
}

absl::StatusOr<std::shared_ptr<const KnowledgeBase>> LoadKnowledgeBase(const KnowledgeBaseSpec& spec) {
  const auto start = std::chrono::steady_clock::now();
  auto files = ExpandPaths(spec.curated, ".textproto");
  if (!files.ok()) {
    return files.status();
  }
  KnowledgeBaseBuilder builder;
  std::vector<std::string> parse_errors;
  for (const auto& path : *files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      parse_errors.push_back(absl::StrCat(path, ": cannot be read"));
      continue;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    ParsedFile parsed;
    parsed.path = path;
    parsed.tree = std::make_unique<TextFormat::ParseInfoTree>();
    ErrorCollector collector(path);
    TextFormat::Parser parser;
    parser.RecordErrorsTo(&collector);
    parser.WriteLocationsTo(parsed.tree.get());
    if (!IsValidUtf8(text)) {
      parse_errors.push_back(absl::StrCat(path, ": file is not valid UTF-8"));
      continue;
    }
    if (!parser.ParseFromString(text, &parsed.content)) {
      if (collector.errors().empty()) {
        parse_errors.push_back(absl::StrCat(path, ": cannot be parsed"));
      }
      parse_errors.insert(parse_errors.end(), collector.errors().begin(), collector.errors().end());
      continue;
    }
    builder.Add(std::move(parsed));
  }
  if (!parse_errors.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("knowledge base refused: ", parse_errors.size(), " problem",
                     parse_errors.size() == 1 ? "" : "s", ":\n  ", absl::StrJoin(parse_errors, "\n  ")));
  }
  auto kb = builder.Build();
  if (!kb.ok()) {
    return kb.status();
  }
  if (!spec.imports.empty()) {
    auto import_files = ExpandPaths(spec.imports, ".csv");
    if (!import_files.ok()) {
      return import_files.status();
    }
    if (auto st = builder.AddDdinterImport(**kb, *import_files); !st.ok()) {
      return st;
    }
  }
  builder.Finalize(**kb, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  return std::shared_ptr<const KnowledgeBase>(*std::move(kb));
}

}  // namespace vigil
