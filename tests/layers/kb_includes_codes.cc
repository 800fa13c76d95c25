// The control for kb_includes_feed.cc: with the same usage requirements, a
// declared dependency's header builds.
#include "server/codes/clinical_codes.h"
#include "server/kb/knowledge_base.h"
