// Tests of the answer's shape on the wire (server/engine/answer_view.h): the
// basic view, sources by reference, and how a stream splits an answer.
#include "server/engine/answer_view.h"

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/engine/screening.h"
#include "server/kb/loader.h"
#include "tests/test_kb.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::RequestBuilder;
using ::vigil::testing::TempDir;

// Severe renal impairment and sertraline with silperisone: a contraindication
// and an interaction, both cited to the silperisone monograph, and more.
v1::CheckMedicationsRequest SilperisoneRequest() {
  return RequestBuilder("view-patient")
      .Egfr(22)
      .Current("sertraline")
      .Current("amlodipine")
      .Current("warfarin")
      .Propose("silperisone")
      .Propose("clarithromycin")
      .request();
}

v1::CheckMedicationsUnaryResponse Screened(const AnswerShape& shape) {
  const auto request = SilperisoneRequest();
  ScreenOptions options = ScreenOptions::Today();
  options.shape = shape;
  v1::CheckMedicationsUnaryResponse answer;
  ScreenInto(*testing::BundledKb(), request.patient(), request.proposed_medications(), &answer, options);
  return answer;
}

// A source id cited by more than one alert of `answer`.
bool SomeSourceIsCitedTwice(const v1::CheckMedicationsUnaryResponse& answer) {
  std::set<std::string> seen;
  for (const auto& alert : answer.alerts()) {
    for (const auto& ref : alert.sources()) {
      if (!seen.insert(ref.id()).second) {
        return true;
      }
    }
  }
  return false;
}

TEST(AnswerViewTest, FullIsTheDefaultAndUnchanged) {
  const auto answer = Screened(AnswerShape());
  ASSERT_GE(answer.alerts_size(), 4);
  EXPECT_EQ(answer.sources_size(), 0);
  int with_detail = 0;
  for (const auto& alert : answer.alerts()) {
    with_detail += alert.detail().empty() ? 0 : 1;
    EXPECT_FALSE(alert.evidence().empty()) << alert.rule_id();
    ASSERT_FALSE(alert.sources().empty()) << alert.rule_id();
    EXPECT_FALSE(alert.sources(0).title().empty()) << alert.rule_id();
  }
  EXPECT_GE(with_detail, 3);
}

TEST(AnswerViewTest, BasicViewKeepsWhatAListShowsAndDropsTheRest) {
  const auto full = Screened(AnswerShape());
  AnswerShape shape;
  shape.view = v1::ALERT_VIEW_BASIC;
  const auto basic = Screened(shape);
  ASSERT_EQ(basic.alerts_size(), full.alerts_size());
  for (int i = 0; i < full.alerts_size(); ++i) {
    const auto& f = full.alerts(i);
    const auto& b = basic.alerts(i);
    EXPECT_EQ(b.id(), f.id());
    EXPECT_EQ(b.kind(), f.kind());
    EXPECT_EQ(b.severity(), f.severity());
    EXPECT_EQ(b.summary(), f.summary());
    EXPECT_EQ(b.recommendation(), f.recommendation());
    EXPECT_EQ(b.rule_id(), f.rule_id());
    EXPECT_EQ(b.rule_origin(), f.rule_origin());
    EXPECT_EQ(b.involves_proposed(), f.involves_proposed());
    EXPECT_EQ(std::vector<std::string>(b.drug_ids().begin(), b.drug_ids().end()),
              std::vector<std::string>(f.drug_ids().begin(), f.drug_ids().end()));
    EXPECT_TRUE(b.detail().empty());
    EXPECT_TRUE(b.evidence().empty());
    EXPECT_TRUE(b.sources().empty());
    EXPECT_TRUE(b.interpretation().empty());
  }
  // The summary (what was screened, whether it is complete) is the same.
  EXPECT_EQ(basic.summary().SerializeAsString(), full.summary().SerializeAsString());
  EXPECT_LT(basic.ByteSizeLong() * 2, full.ByteSizeLong());
}

TEST(AnswerViewTest, UnscreenedReferencesStayInTheBasicView) {
  const auto request = RequestBuilder().Propose("not-a-drug-xyz").request();
  ScreenOptions options = ScreenOptions::Today();
  options.shape.view = v1::ALERT_VIEW_BASIC;
  v1::CheckMedicationsUnaryResponse answer;
  ScreenInto(*testing::BundledKb(), request.patient(), request.proposed_medications(), &answer, options);
  ASSERT_EQ(answer.alerts_size(), 1);
  EXPECT_EQ(answer.alerts(0).kind(), v1::ALERT_KIND_UNSCREENED_DRUG);
  ASSERT_EQ(answer.alerts(0).unresolved_references_size(), 1);
  EXPECT_EQ(answer.alerts(0).unresolved_references(0), "not-a-drug-xyz");
  EXPECT_FALSE(answer.summary().complete());
}

TEST(AnswerViewTest, SourcesByReferenceSendEachSourceOnceAndLoseNothing) {
  const auto full = Screened(AnswerShape());
  ASSERT_TRUE(SomeSourceIsCitedTwice(full));
  AnswerShape shape;
  shape.sources_by_reference = true;
  auto by_reference = Screened(shape);
  // Each cited source once, in full.
  absl::flat_hash_map<std::string, v1::SourceRef> listed;
  for (const auto& source : by_reference.sources()) {
    EXPECT_FALSE(source.title().empty()) << source.id();
    EXPECT_TRUE(listed.emplace(source.id(), source).second) << source.id() << " listed twice";
  }
  // A source cited by several alerts is listed and they carry its id only;
  // one cited once stays whole. Resolved, the answer is the full one.
  absl::flat_hash_map<std::string, int> citations;
  for (const auto& alert : full.alerts()) {
    for (const auto& ref : alert.sources()) {
      ++citations[ref.id()];
    }
  }
  for (auto& alert : *by_reference.mutable_alerts()) {
    for (auto& ref : *alert.mutable_sources()) {
      if (citations[ref.id()] == 1) {
        EXPECT_FALSE(listed.contains(ref.id())) << ref.id();
        EXPECT_FALSE(ref.title().empty()) << ref.id();
        continue;
      }
      EXPECT_TRUE(ref.title().empty() && ref.url().empty()) << ref.id();
      ASSERT_TRUE(listed.contains(ref.id())) << ref.id();
      ref = listed[ref.id()];
    }
  }
  EXPECT_FALSE(listed.empty());
  by_reference.clear_sources();
  EXPECT_EQ(by_reference.SerializeAsString(), full.SerializeAsString());
  EXPECT_LT(Screened(shape).ByteSizeLong(), full.ByteSizeLong());
}

TEST(AnswerViewTest, StreamSendsOneAlertPerMessageByDefault) {
  google::protobuf::Arena arena;
  auto* answer = google::protobuf::Arena::CreateMessage<v1::CheckMedicationsUnaryResponse>(&arena);
  *answer = Screened(AnswerShape());
  const auto expected = *answer;
  const auto messages = StreamMessagesOf(AnswerShape(), answer, &arena);
  ASSERT_EQ(messages.size(), static_cast<size_t>(expected.alerts_size()) + 1);
  for (int i = 0; i < expected.alerts_size(); ++i) {
    ASSERT_TRUE(messages[static_cast<size_t>(i)]->has_alert());
    EXPECT_EQ(messages[static_cast<size_t>(i)]->alert().SerializeAsString(), expected.alerts(i).SerializeAsString());
    EXPECT_EQ(messages[static_cast<size_t>(i)]->sources_size(), 0);
  }
  ASSERT_TRUE(messages.back()->has_summary());
  EXPECT_EQ(messages.back()->summary().SerializeAsString(), expected.summary().SerializeAsString());
}

TEST(AnswerViewTest, StreamBatchesKeepTheOrderAndCarryEachSourceWithItsFirstCitation) {
  AnswerShape shape;
  shape.sources_by_reference = true;
  shape.max_alerts_per_message = 2;
  google::protobuf::Arena arena;
  auto* answer = google::protobuf::Arena::CreateMessage<v1::CheckMedicationsUnaryResponse>(&arena);
  *answer = Screened(shape);
  const auto expected = *answer;
  const auto messages = StreamMessagesOf(shape, answer, &arena);
  const size_t batches = static_cast<size_t>(expected.alerts_size() + 1) / 2;
  ASSERT_EQ(messages.size(), batches);  // the last batch carries the summary
  std::vector<std::string> streamed;
  std::set<std::string> sent;
  for (size_t m = 0; m < batches; ++m) {
    ASSERT_TRUE(messages[m]->has_alert_batch()) << m;
    EXPECT_LE(messages[m]->alert_batch().alerts_size(), 2);
    for (const auto& source : messages[m]->sources()) {
      EXPECT_TRUE(sent.insert(source.id()).second) << source.id() << " sent twice";
    }
    for (const auto& alert : messages[m]->alert_batch().alerts()) {
      streamed.push_back(alert.SerializeAsString());
      for (const auto& ref : alert.sources()) {
        EXPECT_TRUE(!ref.title().empty() || sent.count(ref.id()) == 1) << ref.id() << " cited before it was sent";
      }
    }
  }
  EXPECT_EQ(sent.size(), static_cast<size_t>(expected.sources_size()));
  ASSERT_EQ(streamed.size(), static_cast<size_t>(expected.alerts_size()));
  for (int i = 0; i < expected.alerts_size(); ++i) {
    EXPECT_EQ(streamed[static_cast<size_t>(i)], expected.alerts(i).SerializeAsString()) << i;
  }
  for (size_t m = 0; m + 1 < batches; ++m) {
    EXPECT_FALSE(messages[m]->alert_batch().has_summary()) << m;
  }
  ASSERT_TRUE(messages.back()->alert_batch().has_summary());
  EXPECT_EQ(messages.back()->alert_batch().summary().SerializeAsString(), expected.summary().SerializeAsString());
}

TEST(AnswerViewTest, ABatchedAnswerWithoutAlertsIsTheSummaryInABatch) {
  google::protobuf::Arena arena;
  auto* answer = google::protobuf::Arena::CreateMessage<v1::CheckMedicationsUnaryResponse>(&arena);
  answer->mutable_summary()->set_complete(true);
  AnswerShape shape;
  shape.max_alerts_per_message = 10;
  const auto messages = StreamMessagesOf(shape, answer, &arena);
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_TRUE(messages[0]->has_alert_batch());
  EXPECT_EQ(messages[0]->alert_batch().alerts_size(), 0);
  EXPECT_TRUE(messages[0]->alert_batch().summary().complete());
}

TEST(AnswerViewTest, ABatchStopsAtItsByteLimit) {
  google::protobuf::Arena arena;
  auto* answer = google::protobuf::Arena::CreateMessage<v1::CheckMedicationsUnaryResponse>(&arena);
  for (int i = 0; i < 5; ++i) {
    auto* alert = answer->add_alerts();
    alert->set_id(std::to_string(i));
    alert->set_detail(std::string(kMaxAlertBatchBytes * 2 / 5, 'x'));  // 0.4 MiB each
  }
  answer->mutable_summary()->set_alert_count(5);
  AnswerShape shape;
  shape.max_alerts_per_message = 1000;
  const auto messages = StreamMessagesOf(shape, answer, &arena);
  // Two alerts fit under 1 MiB, three do not: 2 + 2 + 1 with the summary.
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0]->alert_batch().alerts_size(), 2);
  EXPECT_EQ(messages[1]->alert_batch().alerts_size(), 2);
  EXPECT_EQ(messages[2]->alert_batch().alerts_size(), 1);
  EXPECT_EQ(messages[2]->alert_batch().alerts(0).id(), "4");
  EXPECT_EQ(messages[2]->alert_batch().summary().alert_count(), 5);
}

// The engine builds the basic view's alerts without their detail, evidence,
// sources and interpretation (instead of building and dropping them): its
// answer must be the full answer trimmed, field for field, whatever was
// found. Over every drug of the top-300 list, proposed to a patient whose
// record reaches every kind of check: conditions (one in a code system Vigil
// cannot match), a low eGFR, a lab in an unreadable unit and a stale one,
// allergies, ten current medications; with and without a birth date.
::testing::AssertionResult BasicIsFullTrimmed(const KnowledgeBase& kb, const v1::CheckMedicationsRequest& request) {
  ScreenOptions options = ScreenOptions::Today();
  v1::CheckMedicationsUnaryResponse full;
  ScreenInto(kb, request.patient(), request.proposed_medications(), &full, options);
  AnswerShape basic_shape;
  basic_shape.view = v1::ALERT_VIEW_BASIC;
  v1::CheckMedicationsUnaryResponse trimmed = full;
  ApplyAnswerShape(basic_shape, &trimmed);
  options.shape = basic_shape;
  v1::CheckMedicationsUnaryResponse basic;
  ScreenInto(kb, request.patient(), request.proposed_medications(), &basic, options);
  std::string difference;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&difference);
  if (!differencer.Compare(trimmed, basic)) {
    return ::testing::AssertionFailure() << "the basic view differs from the full one trimmed: " << difference;
  }
  return ::testing::AssertionSuccess() << full.alerts_size() << " alerts";
}

RequestBuilder EveryCheckPatient(const std::string& proposed, bool with_birth_date) {
  RequestBuilder builder("every-check");
  builder.Icd10("N18.5").Icd10("J45.909").Icd10("I50.9").Icd10("K74.60").Icd10("O09.90").Icd10("G40.909")
      .Icd10("I48.91").Icd10("F32.9").Condition("http://example.org/local-codes", "X-17")
      .Egfr(22)
      .Lab("2823-3", 5.9, "bananas")
      .DatedLab("1920-8", 300, "U/L", "2001-01-01")
      .Allergy("penicillin")
      .Allergy("sulfonamide");
  for (const char* current : {"warfarin", "sertraline", "amlodipine", "lisinopril", "simvastatin", "metformin",
                              "tramadol", "oxycodone", "alprazolam", "ibuprofen"}) {
    builder.Current(current);
  }
  if (with_birth_date) {
    builder.BirthDate("1940-02-29");
  }
  builder.Propose(proposed);
  return builder;
}

TEST(AnswerViewTest, TheBasicViewIsTheFullViewTrimmedForEveryTop300Drug) {
  std::ifstream in(std::string(VIGIL_SOURCE_DIR) + "/tests/data/clincalc_top300.txt");
  ASSERT_TRUE(in) << "tests/data/clincalc_top300.txt";
  const auto kb = testing::BundledKb();
  std::string line;
  int drugs = 0;
  int alerts_seen = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    ++drugs;
    for (const bool with_birth_date : {false, true}) {
      const auto request = EveryCheckPatient(line, with_birth_date).request();
      const auto result = BasicIsFullTrimmed(*kb, request);
      EXPECT_TRUE(result) << line << (with_birth_date ? " (with a birth date)" : " (no birth date)");
      v1::CheckMedicationsUnaryResponse answer;
      ScreenInto(*kb, request.patient(), request.proposed_medications(), &answer, ScreenOptions::Today());
      alerts_seen += answer.alerts_size();
    }
  }
  EXPECT_GE(drugs, 290);
  // The patient reaches the checks: thousands of alerts in all.
  EXPECT_GE(alerts_seen, 2000);
}

// The same for interactions from an imported table (graded and ungraded).
TEST(AnswerViewTest, TheBasicViewIsTheFullViewTrimmedForImportedInteractions) {
  TempDir dir;
  const std::string kb_path = dir.Write("synthetic.textproto", testing::kSyntheticKb);
  const std::string import = dir.Write("ddinter_test.csv",
                                       "DDInterID_A,Drug_A,DDInterID_B,Drug_B,Level\n"
                                       "DDI1,Drug A,DDI2,Newdrug,Major\n"
                                       "DDI1,Drug A,DDI3,Otherdrug,Unknown\n");
  auto kb = LoadKnowledgeBase(KnowledgeBaseSpec{{kb_path}, {import}});
  ASSERT_TRUE(kb.ok()) << kb.status();
  const auto request = RequestBuilder().Current("Newdrug").Current("Otherdrug").Propose("drug-a").request();
  const auto result = BasicIsFullTrimmed(**kb, request);
  EXPECT_TRUE(result);
  v1::CheckMedicationsUnaryResponse answer;
  ScreenInto(**kb, request.patient(), request.proposed_medications(), &answer, ScreenOptions::Today());
  int imported = 0;
  for (const auto& alert : answer.alerts()) {
    imported += alert.rule_origin() == v1::RULE_ORIGIN_IMPORTED ? 1 : 0;
  }
  EXPECT_EQ(imported, 2);
}

}  // namespace
}  // namespace vigil
