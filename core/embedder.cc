// Portable embedders: the scalar reference and our vec128 kernels (core/kernels.h).
#include "core/embedder.h"

#include <algorithm>
#include <vector>

#include "core/kernels.h"

namespace earshot {

const char* backend_name(Backend backend) {
    switch (backend) {
        case Backend::kScalar:
            return "scalar";
        case Backend::kSimd:
            return "simd";
        case Backend::kXnnpack:
            return "xnnpack";
    }
    return "unknown";
}

Result<Backend> backend_from_name(const std::string& name) {
    for (Backend b : {Backend::kScalar, Backend::kSimd, Backend::kXnnpack}) {
        if (name == backend_name(b)) return b;
    }
    return Status::error("unknown backend '" + name + "' (choose scalar, simd or xnnpack)");
}

namespace {

Conv2dShape conv_shape(const Layer& l) {
    Conv2dShape s;
    s.in_h = l.in_h, s.in_w = l.in_w, s.in_c = l.in;
    s.out_h = l.out_h, s.out_w = l.out_w, s.out_c = l.out;
    s.kernel_h = l.kernel_h, s.kernel_w = l.kernel_w;
    s.stride_h = l.stride_h, s.stride_w = l.stride_w;
    s.pad_h = l.pad_h, s.pad_w = l.pad_w;
    return s;
}

size_t layer_out_floats(const Layer& l) { return size_t(l.out_h) * l.out_w * l.out; }

// Two ping-pong activation buffers, each as large as the largest tensor in the network.
size_t max_activation_floats(const Model& model) {
    const ModelInfo& info = model.info();
    size_t n = size_t(info.context_frames) * info.frontend.n_mels;
    for (const Layer& l : model.layers()) n = std::max(n, layer_out_floats(l));
    return n;
}

class ScalarEmbedder final : public Embedder {
public:
    explicit ScalarEmbedder(std::shared_ptr<const Model> model)
        : model_(std::move(model)), a_(max_activation_floats(*model_)), b_(a_.size()) {}

    void embed(const float* patch, float* out) override {
        const ModelInfo& info = model_->info();
        const size_t n_in = size_t(info.context_frames) * info.frontend.n_mels;
        std::copy(patch, patch + n_in, a_.data());
        if (info.input_patch_mean) subtract_mean__scalar(n_in, a_.data());
        float* x = a_.data();
        float* y = b_.data();
        for (const Layer& l : model_->layers()) {
            switch (l.type) {
                case Layer::Type::kConv2d:
                    conv2d_nhwc__scalar(conv_shape(l), x, l.weight.data(), l.bias.data(), l.relu,
                                        y);
                    break;
                case Layer::Type::kDense:
                    dense__scalar(size_t(l.in), size_t(l.out), x, l.weight.data(), l.bias.data(),
                                  l.relu, y);
                    break;
                case Layer::Type::kL2Norm:
                    l2norm__scalar(size_t(l.out), x, y);
                    break;
            }
            std::swap(x, y);
        }
        std::copy(x, x + info.embedding_dim, out);
    }
    Backend backend() const override { return Backend::kScalar; }

private:
    std::shared_ptr<const Model> model_;
    std::vector<float> a_, b_;
};

class SimdEmbedder final : public Embedder {
public:
    explicit SimdEmbedder(std::shared_ptr<const Model> model)
        : model_(std::move(model)), a_(max_activation_floats(*model_)), b_(a_.size()) {
        size_t cols = 0;
        for (const Layer& l : model_->layers()) {
            std::vector<float> packed;
            if (l.type == Layer::Type::kConv2d) {
                const Conv2dShape s = conv_shape(l);
                cols = std::max(cols, s.out_pixels() * s.patch_size());
            }
            if (l.type != Layer::Type::kL2Norm) {
                const size_t k = l.weight.size() / size_t(l.out);
                packed.resize(packed_gemm_weights_size(size_t(l.out), k));
                pack_gemm_weights(size_t(l.out), k, l.weight.data(), l.bias.data(), packed.data());
            }
            packed_.push_back(std::move(packed));
        }
        cols_.resize(cols);
    }

    void embed(const float* patch, float* out) override {
        const ModelInfo& info = model_->info();
        const size_t n_in = size_t(info.context_frames) * info.frontend.n_mels;
        std::copy(patch, patch + n_in, a_.data());
        if (info.input_patch_mean) subtract_mean__vec128(n_in, a_.data());
        float* x = a_.data();
        float* y = b_.data();
        const auto& layers = model_->layers();
        for (size_t i = 0; i < layers.size(); ++i) {
            const Layer& l = layers[i];
            switch (l.type) {
                case Layer::Type::kConv2d:
                    conv2d_nhwc__vec128(conv_shape(l), x, packed_[i].data(), l.relu, cols_.data(),
                                        y);
                    break;
                case Layer::Type::kDense:
                    gemm__vec128_1x8(size_t(l.out), size_t(l.in), x, packed_[i].data(), y, l.relu);
                    break;
                case Layer::Type::kL2Norm:
                    l2norm__vec128(size_t(l.out), x, y);
                    break;
            }
            std::swap(x, y);
        }
        std::copy(x, x + info.embedding_dim, out);
    }
    Backend backend() const override { return Backend::kSimd; }

private:
    std::shared_ptr<const Model> model_;
    std::vector<float> a_, b_;
    std::vector<float> cols_;                 // im2col scratch, largest conv layer
    std::vector<std::vector<float>> packed_;  // per layer, pack_gemm_weights layout
};

}  // namespace

Result<std::unique_ptr<Embedder>> create_embedder(std::shared_ptr<const Model> model,
                                                  Backend backend) {
    if (!model) return Status::error("create_embedder: no model");
    switch (backend) {
        case Backend::kScalar:
            return std::unique_ptr<Embedder>(new ScalarEmbedder(std::move(model)));
        case Backend::kSimd:
            return std::unique_ptr<Embedder>(new SimdEmbedder(std::move(model)));
        case Backend::kXnnpack:
            return Status::error(
                "XNNPACK backend is native only: use create_xnnpack_embedder "
                "(core/native/xnnpack_embedder.h) or the simd backend");
    }
    return Status::error("create_embedder: unknown backend");
}

}  // namespace earshot
