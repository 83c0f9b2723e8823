// Fuzz target: a model file, from the container through the structure parser (layers, shapes,
// caps, music detector) to embedders ready to run: the portable kernels (scalar and SIMD), the
// XNNPACK graph, the front end and the detector, each run once on a patch.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/embedder.h"
#include "core/frontend.h"
#include "core/model.h"
#include "core/music_detector.h"
#include "core/native/xnnpack_embedder.h"
#include "tests/fuzz/fuzz_fixtures.h"

namespace {

// Running a fuzzed model costs its FLOPs: above this, stop at "ready to run" (the embedders
// are still created, so every buffer size is computed and allocated) to keep executions fast.
constexpr double kMaxRunFlops = 2e7;

void run(earshot::Embedder* embedder, const earshot::ModelInfo& info, bool compute) {
    std::vector<float> patch(size_t(info.context_frames) * info.frontend.n_mels);
    for (size_t i = 0; i < patch.size(); ++i) patch[i] = float(int(i % 13) - 6);
    std::vector<float> out(size_t(info.embedding_dim));
    if (compute) embedder->embed(patch.data(), out.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace earshot;
    const std::vector<uint8_t> bytes = fuzz::with_checksum(data, size);
    auto model = Model::load(bytes.data(), bytes.size(), "fuzz.emod");
    if (!model) return 0;
    const ModelInfo& info = model.value()->info();
    const bool compute = info.flops_per_embedding <= kMaxRunFlops;
    for (Backend backend : {Backend::kScalar, Backend::kSimd, Backend::kXnnpack}) {
        auto embedder = create_embedder_any(model.value(), backend);
        if (embedder) run(embedder.value().get(), info, compute);
    }
    if (auto frontend = Frontend::create(info.frontend)) {
        std::vector<float> pcm(4096);
        for (size_t i = 0; i < pcm.size(); ++i) pcm[i] = float(i % 100) / 100.0f - 0.5f;
        (void)frontend.value()->compute(pcm.data(), pcm.size());
    }
    if (const MusicDetectorParams* params = model.value()->music_detector()) {
        if (auto detector = MusicDetector::create(*params)) {
            std::vector<float> patch(size_t(params->context_frames) * params->n_mels, -5.0f);
            (void)detector.value()->probability(patch.data());
        }
    }
    return 0;
}
