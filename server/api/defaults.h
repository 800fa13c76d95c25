// The policy defaults and limits of vigil.v1 requests: what an unset field
// means and the most a field may ask for. The proto documents each; this is
// the one place the server reads them from.
#ifndef VIGIL_SERVER_API_DEFAULTS_H_
#define VIGIL_SERVER_API_DEFAULTS_H_

namespace vigil::api {

// DecisionSupport.CheckMedications: the most alerts one stream message may
// carry when the caller asks for batches.
inline constexpr int kMaxAlertsPerMessage = 1000;

// AlertFeed.ListAlerts: alerts in one page.
inline constexpr int kDefaultAlertsPageSize = 100;
inline constexpr int kMaxAlertsPageSize = 1000;

// AlertFeed.Subscribe: seconds between heartbeats when the request leaves it
// unset, and the range it may ask for; the most patients a subscription may
// name; the most events in one message.
inline constexpr int kDefaultHeartbeatSeconds = 15;
inline constexpr int kMaxHeartbeatSeconds = 300;
inline constexpr int kMaxSubscribedPatients = 1000;
inline constexpr int kMaxEventsPerMessage = 1000;

// Admin.ListAuditEvents: events in one page (a page also stops at 1 MiB).
inline constexpr int kDefaultAuditPageSize = 500;
inline constexpr int kMaxAuditPageSize = 1000;

// DrugCatalog.SearchDrugs: drugs in one page.
inline constexpr int kDefaultDrugsPageSize = 20;
inline constexpr int kMaxDrugsPageSize = 100;

}  // namespace vigil::api

#endif  // VIGIL_SERVER_API_DEFAULTS_H_
