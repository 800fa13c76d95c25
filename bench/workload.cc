#include "bench/workload.h"

#include <vector>

#include "google/protobuf/descriptor.h"

namespace vigil::bench {
namespace {

// Commonly co-prescribed drugs, all in the curated base.
const std::vector<std::string>& Pool() {
  static const auto* const pool = new std::vector<std::string>{
      "atorvastatin", "lisinopril",  "metformin",    "amlodipine",   "levothyroxine", "omeprazole",  "metoprolol",
      "warfarin",     "furosemide",  "sertraline",   "gabapentin",   "tramadol",      "ibuprofen",   "paracetamol",
      "prednisone",   "amoxicillin", "simvastatin",  "losartan",     "clopidogrel",   "trazodone",   "citalopram",
      "fluoxetine",   "alprazolam",  "zolpidem",     "oxycodone",    "hydrocodone",   "montelukast", "salbutamol",
      "cetirizine",   "pantoprazole", "escitalopram", "bupropion",   "duloxetine",    "venlafaxine", "quetiapine",
      "aripiprazole", "lamotrigine", "levetiracetam", "topiramate",  "carvedilol",    "diltiazem",   "verapamil",
      "digoxin",      "apixaban",    "rivaroxaban",  "insulin-glargine", "glipizide", "sitagliptin", "empagliflozin",
      "allopurinol",  "colchicine",  "methotrexate", "hydroxychloroquine", "tamsulosin", "finasteride", "sildenafil",
      "donepezil",    "memantine",   "ropinirole",   "pramipexole",  "cyclobenzaprine", "baclofen",  "tizanidine",
      "methocarbamol", "diazepam",   "lorazepam",    "clonazepam",   "temazepam",     "mirtazapine", "amitriptyline",
      "nortriptyline", "doxepin",    "hydroxyzine",  "promethazine", "diphenhydramine", "meloxicam", "naproxen",
      "diclofenac",   "celecoxib",   "spironolactone", "hydrochlorothiazide", "chlortalidone", "ramipril",
      "enalapril",    "valsartan",   "irbesartan",   "nifedipine",   "propranolol",   "atenolol",    "bisoprolol",
      "rosuvastatin", "pravastatin", "ezetimibe",    "fenofibrate",  "famotidine",    "ondansetron", "metoclopramide",
      "doxycycline",  "ciprofloxacin", "levofloxacin"};
  return *pool;
}

}  // namespace

v1::CheckMedicationsRequest RealisticCheck(const std::string& patient_id, int current) {
  v1::CheckMedicationsRequest request;
  auto* p = request.mutable_patient();
  p->set_id(patient_id);
  const auto& pool = Pool();
  for (int i = 0; i < current; ++i) {
    p->add_medications()->set_drug(pool[static_cast<size_t>(i) % pool.size()]);
  }
  for (const char* code : {"I10", "E11.9", "N18.30", "G35", "M54.5"}) {
    auto* c = p->add_conditions()->mutable_code();
    c->set_system("http://hl7.org/fhir/sid/icd-10-cm");
    c->set_code(code);
  }
  struct Lab {
    const char* loinc;
    double value;
    const char* unit;
  };
  for (const Lab& l : {Lab{"62238-1", 48, "mL/min/{1.73_m2}"}, Lab{"1742-6", 30, "U/L"}, Lab{"2164-2", 55, "mL/min"}}) {
    auto* lab = p->add_labs();
    lab->mutable_code()->set_system("http://loinc.org");
    lab->mutable_code()->set_code(l.loinc);
    lab->set_value(l.value);
    lab->set_unit(l.unit);
  }
  request.add_proposed_medications()->set_drug("silperisone");
  request.add_proposed_medications()->set_drug("clarithromycin");
  return request;
}

int64_t HeapStrings(const google::protobuf::Message& message) {
  const auto* reflection = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  int64_t count = 0;
  for (const auto* field : fields) {
    const int n = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < n; ++i) {
      if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
        std::string scratch;
        const std::string& value = field->is_repeated()
                                       ? reflection->GetRepeatedStringReference(message, field, i, &scratch)
                                       : reflection->GetStringReference(message, field, &scratch);
        count += value.size() > std::string().capacity() ? 1 : 0;
      } else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
        count += HeapStrings(field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                                  : reflection->GetMessage(message, field));
      }
    }
  }
  return count;
}

}  // namespace vigil::bench
