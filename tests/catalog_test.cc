// Tests of the drug catalog queries.
#include "server/kb/catalog.h"

#include "server/kb/loader.h"

#include "gtest/gtest.h"
#include "tests/test_kb.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto kb = testing::LoadFromTexts({{"synthetic.textproto", testing::kSyntheticKb}});
    ASSERT_TRUE(kb.ok()) << kb.status();
    kb_ = *kb;
  }
  std::shared_ptr<const KnowledgeBase> kb_;
};

TEST_F(CatalogTest, GetDrugByEveryKindOfName) {
  for (const char* name : {"drug-a", "Drug A", "alpha", "ABRAND", "http://www.whocc.no/atc|Z99ZZ01"}) {
    v1::GetDrugRequest request;
    request.set_name(name);
    auto drug = GetDrug(*kb_, request);
    ASSERT_TRUE(drug.ok()) << name << ": " << drug.status();
    EXPECT_EQ(drug->id(), "drug-a");
  }
}

TEST_F(CatalogTest, GetDrugListsInheritedClassesAndRules) {
  v1::GetDrugRequest request;
  request.set_name("drug-a");
  auto drug = GetDrug(*kb_, request);
  ASSERT_TRUE(drug.ok());
  ASSERT_EQ(drug->classes_size(), 2);
  int inherited = 0;
  for (const auto& c : drug->classes()) {
    inherited += c.inherited() ? 1 : 0;
  }
  EXPECT_EQ(inherited, 1);
  EXPECT_EQ(drug->contraindications_size(), 2);
  EXPECT_EQ(drug->interactions_size(), 3);
  EXPECT_EQ(drug->interaction_screening(), v1::INTERACTION_SCREENING_REVIEWED);
}

TEST_F(CatalogTest, UnreviewedDrugIsMarked) {
  v1::GetDrugRequest request;
  request.set_name("drug-e");
  auto drug = GetDrug(*kb_, request);
  ASSERT_TRUE(drug.ok());
  EXPECT_EQ(drug->interaction_screening(), v1::INTERACTION_SCREENING_NOT_REVIEWED);
}

TEST_F(CatalogTest, GetDrugErrors) {
  v1::GetDrugRequest request;
  EXPECT_EQ(GetDrug(*kb_, request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_name("nothing-like-it");
  EXPECT_EQ(GetDrug(*kb_, request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CatalogTest, SearchByTextAndClassWithPaging) {
  v1::SearchDrugsRequest request;
  request.set_query("drug");
  request.set_page_size(4);
  auto page1 = SearchDrugs(*kb_, request);
  ASSERT_TRUE(page1.ok());
  EXPECT_EQ(page1->drugs_size(), 4);
  ASSERT_FALSE(page1->next_page_token().empty());
  request.set_page_token(page1->next_page_token());
  auto page2 = SearchDrugs(*kb_, request);
  ASSERT_TRUE(page2.ok());
  EXPECT_EQ(page2->drugs_size(), 2);
  EXPECT_TRUE(page2->next_page_token().empty());

  v1::SearchDrugsRequest by_class;
  by_class.set_class_id("class-x");
  auto members = SearchDrugs(*kb_, by_class);
  ASSERT_TRUE(members.ok());
  ASSERT_EQ(members->drugs_size(), 2);
  EXPECT_EQ(members->drugs(0).id(), "drug-a");
  EXPECT_EQ(members->drugs(1).id(), "drug-b");
}

TEST_F(CatalogTest, SearchErrorsNameTheField) {
  v1::SearchDrugsRequest request;
  EXPECT_EQ(SearchDrugs(*kb_, request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_query("a");
  request.set_page_size(1000);
  auto st = SearchDrugs(*kb_, request).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message().rfind("page_size:", 0), 0u);
  request.set_page_size(0);
  request.set_class_id("no-class");
  EXPECT_EQ(SearchDrugs(*kb_, request).status().message().rfind("class_id:", 0), 0u);
  request.set_class_id("");
  request.set_page_token("garbage");
  EXPECT_EQ(SearchDrugs(*kb_, request).status().message().rfind("page_token:", 0), 0u);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(CatalogPagingTest, TokensSurviveAReloadAndViewsAreNamed) {
  // The bundled base, and a second load of it (what a reload serves).
  const std::shared_ptr<const KnowledgeBase> first = testing::BundledKb();
  KnowledgeBaseSpec spec;
  spec.curated.push_back(VIGIL_BUNDLED_KB);
  auto reloaded = LoadKnowledgeBase(spec);
  ASSERT_TRUE(first != nullptr && reloaded.ok());
  v1::SearchDrugsRequest request;
  request.set_query("statin");
  request.set_page_size(1);
  auto page1 = SearchDrugs(*first, request);
  ASSERT_TRUE(page1.ok()) << page1.status();
  ASSERT_EQ(page1->drugs_size(), 1);
  ASSERT_FALSE(page1->next_page_token().empty());
  // The next page, asked of another load of the knowledge base, continues
  // after the last drug id.
  request.set_page_token(page1->next_page_token());
  auto page2 = SearchDrugs(**reloaded, request);
  ASSERT_TRUE(page2.ok()) << page2.status();
  ASSERT_EQ(page2->drugs_size(), 1);
  EXPECT_GT(page2->drugs(0).id(), page1->drugs(0).id());
  // A token of another query is refused, naming the field.
  request.set_query("pril");
  auto other = SearchDrugs(*first, request);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(other.status().message().rfind("page_token:", 0), 0u) << other.status();
  // Views: basic by default for a search, full on request; full by default
  // for GetDrug.
  v1::SearchDrugsRequest full;
  full.set_query("statin");
  full.set_page_size(100);
  full.set_view(v1::DRUG_VIEW_FULL);
  v1::SearchDrugsRequest basic = full;
  basic.clear_view();
  auto full_page = SearchDrugs(*first, full);
  auto basic_page = SearchDrugs(*first, basic);
  ASSERT_TRUE(full_page.ok() && basic_page.ok());
  ASSERT_EQ(full_page->drugs_size(), basic_page->drugs_size());
  size_t full_bytes = 0;
  size_t basic_bytes = 0;
  for (int i = 0; i < full_page->drugs_size(); ++i) {
    full_bytes += full_page->drugs(i).ByteSizeLong();
    basic_bytes += basic_page->drugs(i).ByteSizeLong();
    v1::GetDrugRequest get;
    get.set_name(full_page->drugs(i).id());
    auto drug = GetDrug(*first, get);
    ASSERT_TRUE(drug.ok());
    EXPECT_EQ(drug->SerializeAsString(), full_page->drugs(i).SerializeAsString());
  }
  EXPECT_GT(full_bytes, basic_bytes);
  full.set_view(static_cast<v1::DrugView>(7));
  EXPECT_EQ(SearchDrugs(*first, full).status().message().rfind("view:", 0), 0u);
}

}  // namespace
}  // namespace vigil
