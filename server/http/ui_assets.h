// The worklist's static files (server/http/ui_assets/), embedded into the
// binary at build time by server/http/ui_assets/embed.cmake: nothing is read
// from disk at run time, and nothing is fetched from a CDN.
#ifndef VIGIL_SERVER_HTTP_UI_ASSETS_H_
#define VIGIL_SERVER_HTTP_UI_ASSETS_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace vigil {

struct UiAsset {
  const char* name;          // "app.js"
  const char* content_type;  // "text/javascript; charset=utf-8"
  const unsigned char* data;
  size_t size;
};

// The asset named `name` (a file name in ui_assets/), or null.
const UiAsset* FindUiAsset(absl::string_view name);

}  // namespace vigil

#endif  // VIGIL_SERVER_HTTP_UI_ASSETS_H_
