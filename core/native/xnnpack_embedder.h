// XNNPACK embedding backend (native only: Debian's libxnnpack, 2022 operator API) and the
// native factory that covers all three backends (for the CLI and native tools).
#pragma once

#include <memory>

#include "core/embedder.h"
#include "core/model.h"
#include "core/status.h"

namespace earshot {

// One XNNPACK operator per conv2d/dense layer, created and set up once with fixed buffers;
// embed() only runs them (single-threaded: no threadpool) and applies l2norm.
Result<std::unique_ptr<Embedder>> create_xnnpack_embedder(std::shared_ptr<const Model> model);

// scalar / simd through create_embedder(), xnnpack through create_xnnpack_embedder().
Result<std::unique_ptr<Embedder>> create_embedder_any(std::shared_ptr<const Model> model,
                                                      Backend backend);

}  // namespace earshot
