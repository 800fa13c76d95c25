// Tests of request validation: every invalid field is named.
#include "server/api/validation.h"

#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::RequestBuilder;

// Expects INVALID_ARGUMENT whose message starts with `field`.
void ExpectInvalid(const v1::CheckMedicationsRequest& request, const std::string& field) {
  const absl::Status status = ValidateCheckRequest(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(std::string(status.message()).rfind(field + ":", 0), 0u)
      << "message '" << status.message() << "' does not start with " << field;
}

TEST(ValidationTest, ValidRequestPasses) {
  const auto request = RequestBuilder().Propose("silperisone").Icd10("N18.4").Egfr(25).Allergy("penicillin").request();
  EXPECT_TRUE(ValidateCheckRequest(request).ok());
}

TEST(ValidationTest, AnswerShapeFieldsAreChecked) {
  auto request = RequestBuilder().Propose("silperisone").request();
  request.set_view(static_cast<v1::AlertView>(7));
  ExpectInvalid(request, "view");
  request.set_view(v1::ALERT_VIEW_BASIC);
  EXPECT_TRUE(ValidateCheckRequest(request).ok());
  request.set_max_alerts_per_message(-1);
  ExpectInvalid(request, "max_alerts_per_message");
  request.set_max_alerts_per_message(1001);
  ExpectInvalid(request, "max_alerts_per_message");
  request.set_max_alerts_per_message(1000);
  request.set_sources_by_reference(true);
  EXPECT_TRUE(ValidateCheckRequest(request).ok());
  // A stored patient's check is checked the same way.
  request.clear_patient();
  request.set_patient_id("p1");
  request.set_max_alerts_per_message(-3);
  ExpectInvalid(request, "max_alerts_per_message");
}

TEST(ValidationTest, EmptyRequestNamesPatient) { ExpectInvalid(v1::CheckMedicationsRequest(), "patient"); }

TEST(ValidationTest, NothingToScreenNamesProposedMedications) {
  ExpectInvalid(RequestBuilder().request(), "proposed_medications");
}

TEST(ValidationTest, CurrentListAloneIsAReview) {
  EXPECT_TRUE(ValidateCheckRequest(RequestBuilder().Current("sertraline").request()).ok());
}

TEST(ValidationTest, EmptyDrugReferenceIsNamed) {
  ExpectInvalid(RequestBuilder().Propose("silperisone").Propose("  ").request(), "proposed_medications[1].drug");
  ExpectInvalid(RequestBuilder().Propose("silperisone").Current("").request(), "patient.medications[0].drug");
}

TEST(ValidationTest, TooManyMedications) {
  RequestBuilder builder;
  for (int i = 0; i < kMaxMedications + 1; ++i) {
    builder.Propose("silperisone");
  }
  ExpectInvalid(builder.request(), "proposed_medications");
}

TEST(ValidationTest, OversizedString) {
  ExpectInvalid(RequestBuilder().Propose(std::string(kMaxStringBytes + 1, 'a')).request(), "proposed_medications[0].drug");
}

TEST(ValidationTest, InvalidUtf8) {
  ExpectInvalid(RequestBuilder().Propose("silper\xC3\x28isone").request(), "proposed_medications[0].drug");
}

TEST(ValidationTest, MalformedConditionCode) {
  ExpectInvalid(RequestBuilder().Propose("silperisone").Icd10("not-a-code").request(), "patient.conditions[0].code.code");
  ExpectInvalid(RequestBuilder().Propose("silperisone").Snomed("431857003").request(), "patient.conditions[0].code.code");
}

TEST(ValidationTest, ConditionWithoutCode) {
  auto request = RequestBuilder().Propose("silperisone").request();
  request.mutable_patient()->add_conditions();
  ExpectInvalid(request, "patient.conditions[0].code");
}

TEST(ValidationTest, LabMustBeLoincWithFiniteValueAndUnit) {
  auto request = RequestBuilder().Propose("silperisone").Egfr(25).request();
  request.mutable_patient()->mutable_labs(0)->mutable_code()->set_system("urn:local");
  ExpectInvalid(request, "patient.labs[0].code.system");

  ExpectInvalid(RequestBuilder().Propose("silperisone").Lab("62238-1", std::numeric_limits<double>::quiet_NaN(), "mL/min").request(),
                "patient.labs[0].value");
  ExpectInvalid(RequestBuilder().Propose("silperisone").Lab("62238-1", std::numeric_limits<double>::infinity(), "mL/min").request(),
                "patient.labs[0].value");
  ExpectInvalid(RequestBuilder().Propose("silperisone").Lab("62238-1", 1e12, "mL/min").request(), "patient.labs[0].value");
  ExpectInvalid(RequestBuilder().Propose("silperisone").Lab("62238-1", 25, "").request(), "patient.labs[0].unit");
  ExpectInvalid(RequestBuilder().Propose("silperisone").Lab("62238-9", 25, "mL/min").request(), "patient.labs[0].code.code");
}

TEST(ValidationTest, AllergyNeedsSubstanceAndKnownCriticality) {
  ExpectInvalid(RequestBuilder().Propose("silperisone").Allergy("").request(), "patient.allergies[0].substance");
  auto request = RequestBuilder().Propose("silperisone").Allergy("penicillin").request();
  request.mutable_patient()->mutable_allergies(0)->set_criticality(static_cast<v1::AllergyCriticality>(42));
  ExpectInvalid(request, "patient.allergies[0].criticality");
}

TEST(ValidationTest, UnknownEnumValueOfSex) {
  auto request = RequestBuilder().Propose("silperisone").request();
  request.mutable_patient()->set_sex(static_cast<v1::Sex>(99));
  ExpectInvalid(request, "patient.sex");
}

TEST(ValidationTest, DemographicsAreChecked) {
  auto request = RequestBuilder().Propose("silperisone").request();
  request.mutable_patient()->set_birth_date("1970-13-01");
  ExpectInvalid(request, "patient.birth_date");
  request.mutable_patient()->set_birth_date("1970-01-31");
  request.mutable_patient()->set_weight_kg(-3);
  ExpectInvalid(request, "patient.weight_kg");
}

TEST(ValidationTest, DoseMustBeFiniteWithUnit) {
  auto request = RequestBuilder().Propose("silperisone").request();
  request.mutable_proposed_medications(0)->set_dose_value(-1);
  ExpectInvalid(request, "proposed_medications[0].dose_value");
  request.mutable_proposed_medications(0)->set_dose_value(50);
  ExpectInvalid(request, "proposed_medications[0].dose_unit");
}

TEST(ValidationTest, PatientIdIsBounded) {
  ExpectInvalid(RequestBuilder(std::string(kMaxIdBytes + 1, 'p')).Propose("silperisone").request(), "patient.id");
  ExpectInvalid(RequestBuilder("p\n1").Propose("silperisone").request(), "patient.id");
}

}  // namespace
}  // namespace vigil
