// Built only by the LayersAreEnforced test, which expects it NOT to build: a
// source of the knowledge-base layer (linked as vigil_kb's own sources are)
// including a header of the feed, a layer above it.
#include "server/feed/registry.h"
#include "server/kb/knowledge_base.h"
