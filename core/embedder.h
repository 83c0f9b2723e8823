// Embedders (docs/DESIGN.md section 3): run a Model on one log-mel patch to get one embedding.
// An Embedder holds one thread's inference state with every buffer sized at creation (nothing
// allocates per embedding); the Model it runs is immutable and may be shared between threads.
// This module holds the portable backends (the scalar reference and our vec128 SIMD kernels,
// core/kernels.h); the XNNPACK backend is native only: core/native/xnnpack_embedder.h.
#pragma once

#include <memory>
#include <string>

#include "core/model.h"
#include "core/status.h"

namespace earshot {

enum class Backend { kScalar, kSimd, kXnnpack };

// "scalar", "simd" or "xnnpack".
const char* backend_name(Backend backend);
// The inverse of backend_name(); anything else is an error listing the choices. Names every
// backend, also those this build cannot create (creating one says why).
Result<Backend> backend_from_name(const std::string& name);

class Embedder {
public:
    virtual ~Embedder() = default;
    // patch: context_frames x n_mels log-mel values (frame-major); out: embedding_dim floats,
    // unit length.
    virtual void embed(const float* patch, float* out) = 0;
    virtual Backend backend() const = 0;
};

// The portable backends: kScalar and kSimd. kXnnpack is an error naming the native factory
// (create_embedder_any in core/native/xnnpack_embedder.h covers all three).
Result<std::unique_ptr<Embedder>> create_embedder(std::shared_ptr<const Model> model,
                                                  Backend backend);

}  // namespace earshot
