#include "server/service/services.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/log.h"
#include "server/common/text.h"
#include "server/common/timestamp.h"
#include "server/engine/answer_view.h"
#include "server/engine/screening.h"
#include "server/api/defaults.h"
#include "server/api/validation.h"
#include "server/kb/catalog.h"
#include "server/service/grpc_status.h"
#include "server/service/parse_error_interceptor.h"

namespace vigil {
namespace {

// How a check request asks for its answer (view, sources, batches).
template <typename CheckRequest>
AnswerShape ShapeOf(const CheckRequest& request) {
  AnswerShape shape;
  shape.view = request.view() == v1::ALERT_VIEW_BASIC ? v1::ALERT_VIEW_BASIC : v1::ALERT_VIEW_FULL;
  shape.sources_by_reference = request.sources_by_reference();
  if constexpr (std::is_same_v<CheckRequest, v1::CheckMedicationsRequest>) {
    shape.max_alerts_per_message = request.max_alerts_per_message();
  }
  return shape;
}

// The screening options of a validated request: its as-of date, or today,
// and its answer's shape.
template <typename CheckRequest>
ScreenOptions OptionsOf(const CheckRequest& request) {
  ScreenOptions options = ScreenOptions::Today();
  if (const auto as_of = ParseIsoDate(request.as_of()); as_of.has_value()) {
    options.as_of = *as_of;
  }
  options.shape = ShapeOf(request);
  return options;
}

// The wire bytes of `message`, serialized once into the slice gRPC sends.
grpc::ByteBuffer Serialized(const google::protobuf::MessageLite& message) {
  grpc::Slice slice(message.ByteSizeLong());  // Not zero-filled: every byte is written next.
  message.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(slice.begin()));
  return grpc::ByteBuffer(&slice, 1);
}

// Parses a streamed check's request onto the stream's arena, screens it and
// streams the answer, one write in flight at a time, then finishes. The last
// message goes together with the status, in one operation. (A buffer hint
// on the others would hold their completion until a flush that never comes,
// since only one write may be in flight; fewer messages, with
// max_alerts_per_message, is what makes a stream cheaper.)
//
// The answer is serialized whole before the first write, and the arena goes
// back to its pool then, on the thread that built the answer: a client that
// reads slowly holds only the answer's bytes, and gRPC's OnDone, which runs
// on another thread, has nothing of the arena to free.
class ResponseStreamer final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit ResponseStreamer(ArenaPool::Lease arena)
      : arena_(std::move(arena)),
        request_(google::protobuf::Arena::CreateMessage<v1::CheckMedicationsRequest>(arena_->arena())),
        result_(google::protobuf::Arena::CreateMessage<v1::CheckMedicationsUnaryResponse>(arena_->arena())) {}

  // Parses the request's bytes as gRPC does before a typed method's handler;
  // false when they are not a CheckMedicationsRequest.
  bool Parse(const grpc::ByteBuffer& raw) {
    grpc::ByteBuffer bytes(raw);  // Deserialize consumes its buffer; this is a reference.
    return grpc::SerializationTraits<v1::CheckMedicationsRequest>::Deserialize(&bytes, request_).ok();
  }

  // The parsed request and where the check writes its result: on this
  // stream's arena, alive until Start().
  const v1::CheckMedicationsRequest* request() const { return request_; }
  v1::CheckMedicationsUnaryResponse* result() { return result_; }

  // Streams the result: the alerts, one or a batch per message, then the
  // summary with `final_status`; or, when `final_status` is an error, that
  // alone. Called once.
  void Start(grpc::Status final_status) {
    if (final_status.ok()) {
      const auto responses = StreamMessagesOf(ShapeOf(*request_), result_, arena_->arena());
      writes_.reserve(responses.size());
      for (const auto* response : responses) {
        writes_.push_back(Serialized(*response));
      }
    }
    arena_.reset();
    final_status_ = std::move(final_status);
    NextWrite();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      // The client went away or cancelled; nothing more can be delivered.
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client"));
      return;
    }
    ++next_;
    NextWrite();
  }

  // Keeps the caller's check slot until the stream is done: a caller that
  // does not read its answers holds its slots meanwhile.
  void Hold(CallerSlots::Held slot) { slot_ = std::move(slot); }

  void OnDone() override { delete this; }

 private:
  void NextWrite() {
    if (next_ + 1 < writes_.size()) {
      StartWrite(&writes_[next_]);
    } else if (next_ + 1 == writes_.size()) {
      // Completes with OnDone; there is no OnWriteDone for it.
      StartWriteAndFinish(&writes_[next_], grpc::WriteOptions(), final_status_);
    } else {
      Finish(final_status_);
    }
  }

  // From the service's pool: a realistic request and answer are built on
  // the arena's first block, without a heap allocation (as unary ones are).
  std::optional<ArenaPool::Lease> arena_;
  v1::CheckMedicationsRequest* const request_;
  v1::CheckMedicationsUnaryResponse* const result_;
  std::vector<grpc::ByteBuffer> writes_;  // the answer's messages, serialized
  grpc::Status final_status_;
  size_t next_ = 0;
  CallerSlots::Held slot_;
};

// Counts an answer's alerts by kind and severity: once per pair that occurs
// (alerts come most severe first, so equal pairs are mostly adjacent).
void CountAlerts(const v1::CheckMedicationsUnaryResponse& answer, Metrics* metrics) {
  const auto& alerts = answer.alerts();
  for (int i = 0; i < alerts.size();) {
    int j = i + 1;
    while (j < alerts.size() && alerts[j].kind() == alerts[i].kind() && alerts[j].severity() == alerts[i].severity()) {
      ++j;
    }
    metrics->CountAlerts(v1::AlertKind_Name(alerts[i].kind()), v1::Severity_Name(alerts[i].severity()),
                         static_cast<uint64_t>(j - i));
    i = j;
  }
}

// Most bytes of audit events in one ListAuditEvents page (a quarter of
// gRPC's default 4 MiB message limit).
constexpr size_t kMaxAuditPageBytes = 1 << 20;

constexpr absl::string_view kUnrecordedPayload = "vigil.internal/unrecorded";

bool Unrecorded(const absl::Status& status) { return status.GetPayload(kUnrecordedPayload).has_value(); }

// The canonical code of `status` (absl's codes are gRPC's).
google::rpc::Code CodeOf(const absl::Status& status) { return static_cast<google::rpc::Code>(status.code()); }

// Records `audit` with the outcome of `status`, then finishes the call. An
// audit failure is logged (without patient data) and does not change the
// answer: a failing audit trail must not stop screening.
void FinishAudited(AuditLog* log, v1::AuditEvent audit, grpc::ServerUnaryReactor* reactor, const absl::Status& status) {
  if (Unrecorded(status)) {
    reactor->Finish(ToGrpcStatus(status));
    return;
  }
  audit.set_outcome(CodeOf(status));
  log->Record(std::move(audit), [reactor, status](const absl::Status&) { reactor->Finish(ToGrpcStatus(status)); });
}

// Runs `work` on `worker`, records `audit` and finishes a unary call.
template <typename Response>
grpc::ServerUnaryReactor* OnWorker(grpc::CallbackServerContext* context, Worker* worker, AuditLog* log,
                                   v1::AuditEvent audit, Response* response,
                                   std::function<absl::StatusOr<Response>()> work) {
  auto* reactor = context->DefaultReactor();
  worker->Post([reactor, response, log, audit = std::move(audit), work = std::move(work)]() mutable {
    auto result = work();
    if (result.ok()) {
      *response = *std::move(result);
    }
    FinishAudited(log, std::move(audit), reactor, result.status());
  });
  return reactor;
}

// The outcome of authorizing a call. The caller's name is known whenever the
// token is valid, even when the role is missing (for the audit trail);
// otherwise it is "unauthenticated". Under mutual TLS the client
// certificate's subject is known too.
class AuthResult {
 public:
  AuthResult(absl::Status status, Caller caller, std::string certificate_subject)
      : status_(std::move(status)), caller_(std::move(caller)), certificate_subject_(std::move(certificate_subject)) {}
  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  const Caller* operator->() const { return &caller_; }
  const std::string& certificate_subject() const { return certificate_subject_; }

 private:
  absl::Status status_;
  Caller caller_;
  std::string certificate_subject_;
};

// A rejection that is answered without an audit record: a peer past its
// allowance of failed calls (see Authorize). Marked by a payload that never
// leaves the server.

// The host part of a gRPC peer ("ipv4:10.0.0.5:51234" -> "ipv4:10.0.0.5").
std::string PeerHost(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos || colon < 5 ? peer : peer.substr(0, colon);
}

// The subject of the client certificate under mutual TLS, or empty.
std::string CertificateSubject(grpc::CallbackServerContext* context) {
  const auto auth = context->auth_context();
  if (auth == nullptr) {
    return "";
  }
  const auto values = auth->FindPropertyValues("x509_subject");
  return values.empty() ? "" : std::string(values.front().data(), values.front().size());
}

// An audit record of a call by `caller`, timed now (the access, not the
// commit). Long strings are cut by the audit log (AuditLog::kMaxFieldBytes).
v1::AuditEvent AuditOf(grpc::CallbackServerContext* context, absl::string_view method, v1::AuditAction action,
                       const AuthResult& caller, absl::string_view patient_id) {
  v1::AuditEvent event;
  event.set_method(std::string(method));
  event.set_action(action);
  event.set_agent(caller->name);
  event.set_certificate_subject(caller.certificate_subject());
  event.set_peer(context->peer());
  event.set_patient_id(std::string(patient_id.substr(0, AuditLog::kMaxFieldBytes)));
  *event.mutable_access_time() = ToTimestamp(absl::Now());
  return event;
}

// Authorizes a call from its "authorization" metadata: any authenticated
// caller when `role` is empty, else a caller with `role`.
//
// Failed authentication and missing roles count against the peer's
// allowance of failed calls (deps.failure_limiter); past it, calls from that
// address are refused with RESOURCE_EXHAUSTED before anything is written, not
// even an audit record, so that a flood of bad calls cannot grow the
// database.
AuthResult Authorize(const ServiceDeps& deps, grpc::CallbackServerContext* context, std::optional<Role> role) {
  const auto& metadata = context->client_metadata();
  const auto it = metadata.find("authorization");
  const absl::string_view header = it == metadata.end() ? absl::string_view()
                                                        : absl::string_view(it->second.data(), it->second.size());
  std::string subject = CertificateSubject(context);
  auto failed = [&](absl::Status status, Caller caller) {
    if (deps.failure_limiter != nullptr && !deps.failure_limiter->Admit(PeerHost(context->peer())).ok()) {
      status = absl::ResourceExhaustedError("too many failed calls from this address; retry later");
      status.SetPayload(kUnrecordedPayload, absl::Cord("1"));
      if (deps.metrics != nullptr) {
        deps.metrics->CountUnrecordedRejection();
      }
    }
    return AuthResult(std::move(status), std::move(caller), std::move(subject));
  };
  auto caller = deps.auth->Authenticate(header);
  if (!caller.ok()) {
    return failed(caller.status(), Caller{"unauthenticated", {}});
  }
  if (role.has_value()) {
    if (auto allowed = Authenticator::CheckRole(*caller, *role); !allowed.ok()) {
      return failed(allowed, *caller);
    }
  }
  if (deps.rate_limiter != nullptr) {
    if (auto admitted = deps.rate_limiter->Admit(caller->name); !admitted.ok()) {
      return AuthResult(admitted, *caller, std::move(subject));
    }
  }
  return AuthResult(absl::OkStatus(), *caller, std::move(subject));
}

// Authorizes, audits and runs `work` on the database worker: the shape of
// every unary call that reads or writes a stored patient. `valid` is the
// request's validation; an authorization failure takes precedence over it.
template <typename Response>
grpc::ServerUnaryReactor* AuditedOnWorker(const ServiceDeps& deps, grpc::CallbackServerContext* context,
                                          const char* method, v1::AuditAction action, Role role,
                                          const std::string& patient_id, const absl::Status& valid,
                                          Response* response, std::function<absl::StatusOr<Response>()> work) {
  auto caller = Authorize(deps, context, role);
  v1::AuditEvent audit = AuditOf(context, method, action, caller, patient_id);
  const absl::Status status = caller.ok() ? valid : caller.status();
  if (!status.ok()) {
    auto* reactor = context->DefaultReactor();
    FinishAudited(deps.audit, std::move(audit), reactor, status);
    return reactor;
  }
  return OnWorker<Response>(context, deps.db_worker, deps.audit, std::move(audit), response, std::move(work));
}

grpc::ServerUnaryReactor* Rejected(grpc::CallbackServerContext* context, const absl::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// The bytes of one write of a subscription. A single message is written as
// the hub serialized it, without a copy: the slice refers to the shared bytes
// and holds a reference to them until gRPC is done with it. Several events
// are concatenated into one batch message, built in place in the slice gRPC
// sends.
grpc::ByteBuffer ToByteBuffer(std::vector<std::shared_ptr<const FeedMessage>> messages) {
  if (messages.size() == 1) {
    auto* held = new std::shared_ptr<const FeedMessage>(std::move(messages.front()));
    grpc::Slice slice(
        const_cast<char*>((*held)->bytes.data()), (*held)->bytes.size(),
        [](void* p) { delete static_cast<std::shared_ptr<const FeedMessage>*>(p); }, held);
    return grpc::ByteBuffer(&slice, 1);
  }
  grpc::Slice slice(BatchSize(messages));  // Not zero-filled: every byte is written next.
  WriteBatch(messages, const_cast<uint8_t*>(slice.begin()));
  return grpc::ByteBuffer(&slice, 1);
}

// One subscription's stream: pulls messages from the domain Subscription,
// one write in flight at a time. Outside a reaction (Begin, Reject, Kick from
// the hub's threads) Finish is called with mu_ released and nothing of the
// reactor is touched afterwards: gRPC may run OnDone, which deletes it, on
// another thread as soon as Finish is called.
class SubscribeReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  SubscribeReactor(grpc::CallbackServerContext* context, EventHub* hub) : context_(context), hub_(hub) {}

  // Runs once the call is over (gives back the caller's slot). Set before
  // Begin or Reject.
  void OnRelease(std::function<void()> release) { on_release_ = std::move(release); }

  // Begin and Reject may run on another thread after the call was
  // cancelled: the reactor then finishes here (OnCancel defers to them).
  //
  // Once started_ is set, a cancellation can finish the call on another
  // thread, and the call's OnDone would delete the reactor while Begin is
  // still attaching and kicking. `beginning_` keeps the reactor alive until
  // Begin is done with it: OnDone then leaves the deletion to Begin.
  void Begin(std::shared_ptr<Subscription> sub) {
    bool cancelled = false;
    {
      absl::MutexLock lock(&mu_);
      sub_ = std::move(sub);
      started_ = true;
      cancelled = cancelled_;
      finished_ = finished_ || cancelled;
      beginning_ = !cancelled;
    }
    if (cancelled) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "subscription cancelled"));
      return;  // OnDone deletes the reactor: nothing here touches it again
    }
    sub_->Attach([this] { Kick(); }, [this] { context_->TryCancel(); });
    Kick();
    bool done = false;
    {
      absl::MutexLock lock(&mu_);
      beginning_ = false;
      done = done_;
    }
    if (done) {
      Release();
    }
  }

  void Reject(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      started_ = true;
      finished_ = true;
    }
    Finish(status);
  }

  void OnWriteDone(bool ok) override {
    if (ok) {
      sub_->Delivered(current_last_event_);
    }
    current_.Clear();
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      // A cancellation that came while this write was in flight left the
      // finish to here (OnCancel cannot finish during a write); without it
      // the call would never end, holding its subscription and blocking the
      // server's shutdown.
      if (!ok || cancelled_) {
        if (!finished_) {
          finished_ = true;
          Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client"));
        }
        return;
      }
    }
    Kick();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (started_ && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "subscription cancelled"));
    }
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      if (beginning_) {
        return;  // Begin is still using the reactor; it releases it
      }
    }
    Release();
  }

 private:
  // Detaches from the hub and deletes the reactor: once the call is done
  // and Begin is not running.
  void Release() {
    if (sub_ != nullptr) {
      sub_->Detach();
      hub_->Unsubscribe(sub_.get());
    }
    if (on_release_) {
      on_release_();
    }
    delete this;
  }
  std::function<void()> on_release_;

  void Kick() {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_ || cancelled_) {
        return;
      }
      Subscription::Action action = sub_->Next();
      switch (action.kind) {
        case Subscription::Action::Kind::kWrite:
          writing_ = true;
          current_last_event_ = action.last_event_number();
          current_ = ToByteBuffer(std::move(action.messages));
          StartWrite(&current_);
          break;
        case Subscription::Action::Kind::kFinish:
          finished_ = true;
          finish = ToGrpcStatus(action.status);
          break;
        case Subscription::Action::Kind::kNothing:
          break;
      }
    }
    if (finish.has_value()) {
      Finish(*finish);
    }
  }

  grpc::CallbackServerContext* const context_;
  EventHub* const hub_;
  std::shared_ptr<Subscription> sub_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // Begin is attaching and kicking (see Begin); the call's OnDone has run.
  bool beginning_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  // The message being written (an event's bytes are shared with the other
  // subscribers), and the number of its last event (0: a heartbeat).
  grpc::ByteBuffer current_;
  int64_t current_last_event_ = 0;
};

}  // namespace

template <typename CheckRequest>
void DecisionSupportService::RunCheck(grpc::CallbackServerContext* context, const CheckRequest* request,
                                      absl::string_view method,
                                      v1::CheckMedicationsUnaryResponse* result,
                                      std::function<void(const absl::Status&, CallerSlots::Held)> done) {
  const std::string patient_id = request->patient_id().empty() ? request->patient().id() : request->patient_id();
  // The caller's check slot, once it has one; handed to `done` with the
  // status, so that a stream can hold it until the answer is delivered.
  auto slot = std::make_shared<CallerSlots::Held>();
  auto finish = [this, result, slot, done = std::move(done)](v1::AuditEvent audit, const absl::Status& status) {
    if (Unrecorded(status)) {
      done(status, std::move(*slot));
      return;
    }
    audit.set_outcome(CodeOf(status));
    if (deps_.metrics != nullptr && status.ok()) {
      CountAlerts(*result, deps_.metrics);
    }
    // Screening does not wait for its audit record to be durable: it is
    // written with the next group commit (see AuditLog), so a check costs no
    // fsync. Writes of patient data still wait for theirs.
    deps_.audit->Record(std::move(audit), nullptr);
    done(status, std::move(*slot));
  };
  auto caller = Authorize(deps_, context, Role::kEhr);
  v1::AuditEvent audit = AuditOf(context, method, v1::AUDIT_ACTION_EXECUTE, caller, patient_id);
  if (!caller.ok()) {
    finish(std::move(audit), caller.status());
    return;
  }
  if (deps_.check_slots != nullptr) {
    auto held = deps_.check_slots->Hold(caller->name);
    if (!held.ok()) {
      finish(std::move(audit), held.status());
      return;
    }
    *slot = *std::move(held);
  }
  if (auto status = ValidateCheckRequest(*request); !status.ok()) {
    finish(std::move(audit), status);
    return;
  }
  if (!request->patient_id().empty()) {
    // The stored context is read on the database worker.
    deps_.db_worker->Post([this, request, result, finish = std::move(finish), audit = std::move(audit)]() mutable {
      auto patient = deps_.registry->GetPatient(request->patient_id());
      if (!patient.ok()) {
        finish(std::move(audit), patient.status());
        return;
      }
      const auto kb = deps_.kb->Get();
      ScreenInto(*kb, *patient, request->proposed_medications(), result, OptionsOf(*request));
      finish(std::move(audit), absl::OkStatus());
    });
    return;
  }
  // Screening is CPU-only and bounded by the request limits (microseconds to
  // a few milliseconds), so it runs here, on the callback thread, without
  // blocking on I/O and without a thread hop.
  const auto kb = deps_.kb->Get();
  ScreenInto(*kb, request->patient(), request->proposed_medications(), result, OptionsOf(*request));
  finish(std::move(audit), absl::OkStatus());
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* DecisionSupportService::CheckMedications(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request) {
  auto* streamer = new ResponseStreamer(stream_arenas_.Take());
  // Bytes that are not a CheckMedicationsRequest get the answer the
  // parse-error interceptor gives for the typed methods (and, as there,
  // without an audit record).
  if (!streamer->Parse(*raw_request)) {
    streamer->Start(UnparsedRequestError(v1::CheckMedicationsRequest::descriptor()->full_name(),
                                         "nothing was screened or stored"));
    return streamer;
  }
  RunCheck(context, streamer->request(), "vigil.v1.DecisionSupport/CheckMedications", streamer->result(),
           [streamer](const absl::Status& status, CallerSlots::Held slot) {
             streamer->Hold(std::move(slot));
             streamer->Start(ToGrpcStatus(status));
           });
  return streamer;
}

grpc::ServerUnaryReactor* DecisionSupportService::CheckMedicationsUnary(grpc::CallbackServerContext* context,
                                                                        const v1::CheckMedicationsUnaryRequest* request,
                                                                        v1::CheckMedicationsUnaryResponse* response) {
  auto* reactor = context->DefaultReactor();
  // The response is written in place (on the call's arena, see
  // arena_pool.h); on an error it is cleared so that nothing half-built
  // goes out with the status.
  RunCheck(context, request, "vigil.v1.DecisionSupport/CheckMedicationsUnary", response,
           [reactor, response](const absl::Status& status, CallerSlots::Held /*released here*/) {
             if (!status.ok()) {
               response->Clear();
             }
             reactor->Finish(ToGrpcStatus(status));
           });
  return reactor;
}

grpc::ServerUnaryReactor* DrugCatalogService::GetDrug(grpc::CallbackServerContext* context,
                                                      const v1::GetDrugRequest* request, v1::Drug* response) {
  if (auto caller = Authorize(deps_, context, std::nullopt); !caller.ok()) {
    return Rejected(context, caller.status());
  }
  auto* reactor = context->DefaultReactor();
  auto drug = vigil::GetDrug(*deps_.kb->Get(), *request);
  if (drug.ok()) {
    *response = *std::move(drug);
  }
  reactor->Finish(ToGrpcStatus(drug.status()));
  return reactor;
}

grpc::ServerUnaryReactor* DrugCatalogService::SearchDrugs(grpc::CallbackServerContext* context,
                                                          const v1::SearchDrugsRequest* request,
                                                          v1::SearchDrugsResponse* response) {
  if (auto caller = Authorize(deps_, context, std::nullopt); !caller.ok()) {
    return Rejected(context, caller.status());
  }
  auto* reactor = context->DefaultReactor();
  auto result = vigil::SearchDrugs(*deps_.kb->Get(), *request);
  if (result.ok()) {
    *response = *std::move(result);
  }
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

grpc::ServerUnaryReactor* DrugCatalogService::GetKnowledgeBase(grpc::CallbackServerContext* context,
                                                               const v1::GetKnowledgeBaseRequest* request,
                                                               v1::KnowledgeBase* response) {
  if (auto caller = Authorize(deps_, context, std::nullopt); !caller.ok()) {
    return Rejected(context, caller.status());
  }
  auto* reactor = context->DefaultReactor();
  *response = DescribeKnowledgeBase(*deps_.kb->Get(), deps_.kb->serving_since());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ReloadKnowledgeBase(grpc::CallbackServerContext* context,
                                                            const v1::ReloadKnowledgeBaseRequest* request,
                                                            v1::ReloadKnowledgeBaseResponse* response) {
  auto caller = Authorize(deps_, context, Role::kAdmin);
  v1::AuditEvent audit = AuditOf(context, "vigil.v1.Admin/ReloadKnowledgeBase", v1::AUDIT_ACTION_EXECUTE, caller, "");
  auto* reactor = context->DefaultReactor();
  if (!caller.ok()) {
    FinishAudited(deps_.audit, std::move(audit), reactor, caller.status());
    return reactor;
  }
  KnowledgeBaseHolder* kb = deps_.kb;
  AuditLog* log = deps_.audit;
  deps_.admin_worker->Post([kb, log, reactor, response, audit = std::move(audit)]() mutable {
    auto reloaded = kb->Reload();
    if (!reloaded.ok()) {
      LogError("knowledge_base_reload_refused", {{"reason", std::string(reloaded.status().message())}});
      FinishAudited(log, std::move(audit), reactor, reloaded.status());
      return;
    }
    LogInfo("knowledge_base_reloaded", {{"previous_version", reloaded->previous_version},
                                        {"version", reloaded->kb->version()},
                                        {"trigger", "rpc"}});
    response->set_previous_version(reloaded->previous_version);
    *response->mutable_knowledge_base() = DescribeKnowledgeBase(*reloaded->kb, kb->serving_since());
    response->set_changed(reloaded->previous_version != reloaded->kb->version());
    FinishAudited(log, std::move(audit), reactor, absl::OkStatus());
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListAuditEvents(grpc::CallbackServerContext* context,
                                                        const v1::ListAuditEventsRequest* request,
                                                        v1::ListAuditEventsResponse* response) {
  auto caller = Authorize(deps_, context, Role::kAdmin);
  v1::AuditEvent record = AuditOf(context, "vigil.v1.Admin/ListAuditEvents", v1::AUDIT_ACTION_READ, caller, "");
  absl::Status valid = caller.ok() ? ValidateListAuditEventsRequest(*request) : caller.status();
  auto* reactor = context->DefaultReactor();
  if (!valid.ok()) {
    FinishAudited(deps_.audit, std::move(record), reactor, valid);
    return reactor;
  }
  Store* store = deps_.store;
  AuditLog* audit = deps_.audit;
  deps_.admin_worker->Post([store, audit, reactor, request, response, record = std::move(record)]() mutable {
    // Checks do not wait for their audit records; an auditor does, so that
    // the trail shows every access that came before the read. A failing disk
    // does not block the read: what is durable is returned.
    audit->WaitUntilWritten(absl::Seconds(2));
    auto events = store->ReadAudit(request->after_id(), request->page_size() == 0 ? api::kDefaultAuditPageSize : request->page_size());
    if (!events.ok()) {
      reactor->Finish(ToGrpcStatus(events.status()));
      return;
    }
    // A page stops at the count asked for or at kMaxAuditPageBytes, whichever
    // comes first, so that an export never exceeds a client's message limit.
    response->set_next_after_id(request->after_id());
    size_t bytes = 0;
    for (auto& e : *events) {
      const size_t size = e.ByteSizeLong() + 8;
      if (response->events_size() > 0 && bytes + size > kMaxAuditPageBytes) {
        break;
      }
      bytes += size;
      response->set_next_after_id(e.id());
      *response->add_events() = std::move(e);
    }
    // The read is recorded when it returned records of anything but reads
    // of the trail: recording those too would give an export reading to
    // the end a new record to read every time, without end.
    const bool only_trail_reads = std::all_of(
        response->events().begin(), response->events().end(),
        [](const v1::AuditEvent& e) { return e.method() == "vigil.v1.Admin/ListAuditEvents"; });
    if (!only_trail_reads) {
      record.set_outcome(google::rpc::OK);
      audit->Record(std::move(record), nullptr);
    }
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* PatientsService::PutPatient(grpc::CallbackServerContext* context,
                                                      const v1::PutPatientRequest* request,
                                                      v1::PutPatientResponse* response) {
  absl::Status valid = request->has_patient() ? ValidatePatientId(request->patient().id(), "patient.id")
                                              : absl::InvalidArgumentError("patient: is required");
  if (valid.ok()) {
    valid = ValidatePatient(request->patient(), "patient");
  }
  PatientRegistry* registry = deps_.registry;
  return AuditedOnWorker<v1::PutPatientResponse>(
      deps_, context, "vigil.v1.Patients/PutPatient", v1::AUDIT_ACTION_UPDATE, Role::kEhr, request->patient().id(), valid, response,
      [registry, request] { return registry->PutPatient(request->patient()); });
}

grpc::ServerUnaryReactor* PatientsService::GetPatient(grpc::CallbackServerContext* context,
                                                      const v1::GetPatientRequest* request, v1::Patient* response) {
  PatientRegistry* registry = deps_.registry;
  return AuditedOnWorker<v1::Patient>(deps_, context, "vigil.v1.Patients/GetPatient", v1::AUDIT_ACTION_READ, Role::kEhr,
                                      request->patient_id(), ValidatePatientId(request->patient_id(), "patient_id"),
                                      response, [registry, request] { return registry->GetPatient(request->patient_id()); });
}

grpc::ServerUnaryReactor* PatientsService::DeletePatient(grpc::CallbackServerContext* context,
                                                         const v1::DeletePatientRequest* request,
                                                         v1::DeletePatientResponse* response) {
  PatientRegistry* registry = deps_.registry;
  return AuditedOnWorker<v1::DeletePatientResponse>(
      deps_, context, "vigil.v1.Patients/DeletePatient", v1::AUDIT_ACTION_DELETE, Role::kEhr, request->patient_id(),
      ValidatePatientId(request->patient_id(), "patient_id"), response,
      [registry, request] { return registry->DeletePatient(request->patient_id()); });
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* AlertFeedService::Subscribe(grpc::CallbackServerContext* context,
                                                                        const grpc::ByteBuffer* raw_request) {
  constexpr char kMethod[] = "vigil.v1.AlertFeed/Subscribe";
  auto* reactor = new SubscribeReactor(context, deps_.hub);
  // The method is raw, so the request is parsed here, as gRPC does before
  // a typed method's handler: bytes that are not a SubscribeRequest get the
  // answer the parse-error interceptor gives for the typed methods, before
  // anything else (and, as there, without an audit record).
  v1::SubscribeRequest parsed;
  grpc::ByteBuffer bytes(*raw_request);  // Deserialize consumes its buffer; this is a reference.
  if (!grpc::SerializationTraits<v1::SubscribeRequest>::Deserialize(&bytes, &parsed).ok()) {
    reactor->Reject(UnparsedRequestError(v1::SubscribeRequest::descriptor()->full_name(), "nothing was subscribed"));
    return reactor;
  }
  const v1::SubscribeRequest* request = &parsed;
  std::string patients = absl::StrJoin(request->patient_ids(), ",");
  if (patients.empty()) {
    patients = "*";
  }
  auto caller = Authorize(deps_, context, Role::kSubscriber);
  v1::AuditEvent audit = AuditOf(context, kMethod, v1::AUDIT_ACTION_EXECUTE, caller, patients);
  auto reject = [this, reactor](v1::AuditEvent a, const absl::Status& status) {
    if (Unrecorded(status)) {
      reactor->Reject(ToGrpcStatus(status));
      return;
    }
    a.set_outcome(CodeOf(status));
    deps_.audit->Record(std::move(a), [reactor, status](const absl::Status&) { reactor->Reject(ToGrpcStatus(status)); });
  };
  if (!caller.ok()) {
    reject(std::move(audit), caller.status());
    return reactor;
  }
  if (auto st = ValidateSubscribeRequest(*request); !st.ok()) {
    reject(std::move(audit), st);
    return reactor;
  }
  if (deps_.hub->subscriber_count() >= deps_.max_subscribers) {
    reject(std::move(audit), absl::ResourceExhaustedError(absl::StrCat(
                                 "the server has its maximum of ", deps_.max_subscribers, " subscriptions; retry later")));
    return reactor;
  }
  if (deps_.subscription_slots != nullptr) {
    if (auto st = deps_.subscription_slots->Acquire(caller->name); !st.ok()) {
      reject(std::move(audit), st);
      return reactor;
    }
    reactor->OnRelease([slots = deps_.subscription_slots, name = caller->name] { slots->Release(name); });
  }
  EventFilter filter;
  for (const std::string& id : request->patient_ids()) {
    filter.patient_ids.insert(ToNfc(id));  // as the registry keys them
  }
  for (int kind : request->kinds()) {
    filter.kinds.insert(kind);
  }
  filter.min_severity = request->min_severity();
  const int heartbeat = request->heartbeat_interval_seconds() == 0 ? api::kDefaultHeartbeatSeconds
                                                                  : request->heartbeat_interval_seconds();
  std::optional<int64_t> after;
  if (request->has_after_event_number()) {
    after = request->after_event_number();
  }
  auto sub = deps_.hub->Subscribe(std::move(filter), after, absl::Seconds(heartbeat),
                                  static_cast<size_t>(std::max(1, request->max_events_per_message())));
  if (!sub.ok()) {
    reject(std::move(audit), sub.status());
    return reactor;
  }
  audit.set_outcome(google::rpc::OK);
  deps_.audit->Record(std::move(audit), [reactor, sub = *std::move(sub)](const absl::Status&) mutable {
    reactor->Begin(std::move(sub));
  });
  return reactor;
}

grpc::ServerUnaryReactor* AlertFeedService::AcknowledgeAlert(grpc::CallbackServerContext* context,
                                                             const v1::AcknowledgeAlertRequest* request,
                                                             v1::AcknowledgeAlertResponse* response) {
  constexpr char kMethod[] = "vigil.v1.AlertFeed/AcknowledgeAlert";
  auto caller = Authorize(deps_, context, Role::kClinician);
  v1::AuditEvent audit = AuditOf(context, kMethod, v1::AUDIT_ACTION_UPDATE, caller, "");
  audit.set_alert_id(request->alert_id().substr(0, 256));
  if (!caller.ok()) {
    auto* reactor = context->DefaultReactor();
    FinishAudited(deps_.audit, std::move(audit), reactor, caller.status());
    return reactor;
  }
  if (auto st = ValidateAcknowledgeRequest(*request); !st.ok()) {
    auto* reactor = context->DefaultReactor();
    FinishAudited(deps_.audit, std::move(audit), reactor, st);
    return reactor;
  }
  auto* reactor = context->DefaultReactor();
  PatientRegistry* registry = deps_.registry;
  AuditLog* log = deps_.audit;
  const Agent agent{caller->name, caller.certificate_subject()};
  deps_.db_worker->Post([registry, log, reactor, request, response, agent, audit = std::move(audit)]() mutable {
    auto result = registry->Acknowledge(*request, agent);
    if (result.ok()) {
      audit.set_patient_id(result->alert().patient_id());
      *response = *std::move(result);
    }
    FinishAudited(log, std::move(audit), reactor, result.status());
  });
  return reactor;
}

grpc::ServerUnaryReactor* AlertFeedService::ListAlerts(grpc::CallbackServerContext* context,
                                                       const v1::ListAlertsRequest* request,
                                                       v1::ListAlertsResponse* response) {
  PatientRegistry* registry = deps_.registry;
  return AuditedOnWorker<v1::ListAlertsResponse>(
      deps_, context, "vigil.v1.AlertFeed/ListAlerts", v1::AUDIT_ACTION_READ, Role::kSubscriber, request->patient_id(),
      ValidateListAlertsRequest(*request), response, [registry, request] { return registry->ListAlerts(*request); });
}

}  // namespace vigil
