// The situations of the silperisone monograph, as `vigil demo` runs them.
#include <string>
#include <utility>
#include <vector>

#include "client/demo.h"

namespace vigil_client {



namespace {

constexpr char kIcd10Cm[] = "http://hl7.org/fhir/sid/icd-10-cm";

// Builds a request fluently.
class Scenario {
 public:
  Scenario(std::string title, std::string patient_id) {
    s_.title = std::move(title);
    s_.request.mutable_patient()->set_id(std::move(patient_id));
  }
  Scenario& Propose(const std::string& drug) {
    s_.request.add_proposed_medications()->set_drug(drug);
    return *this;
  }
  Scenario& Current(const std::string& drug) {
    s_.request.mutable_patient()->add_medications()->set_drug(drug);
    return *this;
  }
  Scenario& Condition(const std::string& code, const std::string& display) {
    auto* c = s_.request.mutable_patient()->add_conditions()->mutable_code();
    c->set_system(kIcd10Cm);
    c->set_code(code);
    c->set_display(display);
    return *this;
  }
  Scenario& Egfr(double value, const std::string& unit = "mL/min/{1.73_m2}") {
    auto* lab = s_.request.mutable_patient()->add_labs();
    lab->mutable_code()->set_system("http://loinc.org");
    lab->mutable_code()->set_code("62238-1");
    lab->mutable_code()->set_display("eGFR (CKD-EPI)");
    lab->set_value(value);
    lab->set_unit(unit);
    return *this;
  }
  Scenario& DatedEgfr(double value, const std::string& when) {
    Egfr(value);
    s_.request.mutable_patient()->mutable_labs(s_.request.patient().labs_size() - 1)->set_effective_time(when);
    return *this;
  }
  Scenario& BirthDate(const std::string& date) {
    s_.request.mutable_patient()->set_birth_date(date);
    return *this;
  }
  Scenario& AsOf(const std::string& date) {
    s_.request.set_as_of(date);
    return *this;
  }
  Scenario& Allergy(const std::string& substance, const std::string& reaction) {
    auto* a = s_.request.mutable_patient()->add_allergies();
    a->set_substance(substance);
    a->set_reaction(reaction);
    a->set_criticality(vigil::v1::ALLERGY_CRITICALITY_HIGH);
    return *this;
  }
  Scenario& Expect(const std::string& rule) {
    s_.expect.push_back(rule);
    return *this;
  }
  Scenario& ExpectAbsent(const std::string& rule) {
    s_.expect_absent.push_back(rule);
    return *this;
  }
  DemoScenario Build() { return std::move(s_); }

 private:
  DemoScenario s_;
};

}  // namespace

std::vector<DemoScenario> DemoScenarios() {
  std::vector<DemoScenario> out;
  out.push_back(Scenario("Silperisone for spasticity in multiple sclerosis, eGFR 24 (severe renal impairment)",
                         "demo-renal")
                    .Condition("G35", "Multiple sclerosis")
                    .Egfr(24)
                    .Propose("silperisone")
                    .Expect("silperisone-ci-severe-renal-impairment")
                    .Build());
  out.push_back(Scenario("Silperisone for a patient on dialysis with end-stage renal disease", "demo-dialysis")
                    .Condition("N18.6", "End stage renal disease")
                    .Condition("Z99.2", "Dependence on renal dialysis")
                    .Propose("silperisone")
                    .Expect("silperisone-ci-severe-renal-impairment")
                    .Build());
  out.push_back(Scenario("Silperisone for a patient with hepatic failure (severe liver disease)", "demo-liver")
                    .Condition("K72.10", "Chronic hepatic failure without coma")
                    .Propose("silperisone")
                    .Expect("silperisone-ci-severe-hepatic-impairment")
                    .Build());
  out.push_back(Scenario("Silperisone with a known hypersensitivity to silperisone", "demo-allergy")
                    .Allergy("silperisone", "urticaria")
                    .Propose("silperisone")
                    .Expect("silperisone-hypersensitivity")
                    .Build());
  out.push_back(Scenario("Silperisone for a patient already taking sertraline (an antidepressant)", "demo-ssri")
                    .Current("sertraline")
                    .Propose("silperisone")
                    .Expect("ddi-silperisone-antidepressants")
                    .Build());
  out.push_back(Scenario("Sertraline ordered for a patient already taking silperisone (the other direction)",
                         "demo-ssri-reverse")
                    .Current("silperisone")
                    .Propose("Zoloft")
                    .Expect("ddi-silperisone-antidepressants")
                    .Build());
  out.push_back(Scenario("Silperisone with baclofen (another muscle relaxant)", "demo-baclofen")
                    .Current("baclofen")
                    .Propose("silperisone")
                    .Expect("ddi-silperisone-muscle-relaxants")
                    .Build());
  out.push_back(Scenario("Silperisone with zolpidem and oxycodone: a sedative, and three CNS depressants at once",
                         "demo-cns")
                    .Current("zolpidem")
                    .Current("oxycodone")
                    .Propose("silperisone")
                    .Expect("ddi-silperisone-sedatives")
                    .Expect("additive-cns-depression")
                    .Build());
  out.push_back(Scenario("Negative case: fatty liver (mild liver disease) and eGFR 60: no contraindication",
                         "demo-negative")
                    .Condition("K76.0", "Fatty (change of) liver, not elsewhere classified")
                    .Egfr(60)
                    .Propose("silperisone")
                    .ExpectAbsent("*")
                    .Build());
  out.push_back(Scenario("A misspelt drug is never passed silently", "demo-unknown")
                    .Propose("silperizone")
                    .Expect("kind:ALERT_KIND_UNSCREENED_DRUG")
                    .Build());
  out.push_back(Scenario("Norco (hydrocodone with paracetamol) for a patient already taking paracetamol",
                         "demo-product")
                    .Current("acetaminophen")
                    .Propose("Norco")
                    .Expect("kind:ALERT_KIND_DUPLICATE_THERAPY")
                    .Build());
  out.push_back(Scenario("Order text as an EHR sends it: lisinopril/hydrochlorothiazide [Zestoretic] beside lithium",
                         "demo-order-text")
                    .Current("lithium")
                    .Propose("lisinopril 10 MG / hydrochlorothiazide 12.5 MG Oral Tablet [Zestoretic]")
                    .Expect("kind:ALERT_KIND_DRUG_INTERACTION")
                    .Build());
  out.push_back(Scenario("Codeine for a 10-year-old (FDA 2017: contraindicated under 12)", "demo-age")
                    .AsOf("2026-12-04")
                    .BirthDate("2016-03-01")
                    .Propose("codeine")
                    .Expect("codeine-ci-under-12")
                    .Build());
  out.push_back(Scenario("Oxybutynin for a patient taking amitriptyline: anticholinergic burden (ACB scale 3 + 3)",
                         "demo-burden")
                    .AsOf("2026-12-04")
                    .BirthDate("1950-05-10")
                    .Current("amitriptyline")
                    .Propose("oxybutynin")
                    .Expect("additive-anticholinergic-burden")
                    .Build());
  out.push_back(Scenario("Metformin: eGFR 25 in 2024, 72 last week: the latest result decides", "demo-latest-lab")
                    .AsOf("2026-12-04")
                    .BirthDate("1958-04-02")
                    .DatedEgfr(25, "2024-05-01")
                    .DatedEgfr(72, "2026-11-27")
                    .Propose("metformin")
                    .ExpectAbsent("metformin-ci-severe-renal-impairment")
                    .Build());
  out.push_back(Scenario("An eGFR in a unit Vigil cannot compare is reported, not ignored", "demo-unit")
                    .Egfr(0.4, "mL/s")
                    .Propose("silperisone")
                    .Expect("kind:ALERT_KIND_INCOMPLETE_DATA")
                    .Build());
  return out;
}

}  // namespace vigil_client
