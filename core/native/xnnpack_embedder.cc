// XNNPACK backend: create -> setup once (fixed buffers) -> run per embedding.
#include "core/native/xnnpack_embedder.h"

#include <xnnpack.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "core/kernels.h"

namespace earshot {

namespace {

// XNNPACK kernels may read up to XNN_EXTRA_BYTES past the end of an input tensor (never use
// the values): every activation buffer gets this many extra floats.
constexpr size_t kXnnPadFloats = (XNN_EXTRA_BYTES + sizeof(float) - 1) / sizeof(float);

const char* xnn_status_name(xnn_status status) {
    switch (status) {
        case xnn_status_success:
            return "success";
        case xnn_status_uninitialized:
            return "uninitialized";
        case xnn_status_invalid_parameter:
            return "invalid parameter";
        case xnn_status_invalid_state:
            return "invalid state";
        case xnn_status_unsupported_parameter:
            return "unsupported parameter";
        case xnn_status_unsupported_hardware:
            return "unsupported hardware";
        case xnn_status_out_of_memory:
            return "out of memory";
    }
    return "unknown status";
}

Status xnn_error(const std::string& what, xnn_status status) {
    return Status::error("XNNPACK " + what + " failed: " + xnn_status_name(status));
}

// xnn_initialize is process-wide; call it once (never deinitialized: operators may outlive
// any one embedder).
xnn_status initialize_once() {
    static std::once_flag once;
    static xnn_status status = xnn_status_uninitialized;
    std::call_once(once, [] { status = xnn_initialize(/*allocator=*/nullptr); });
    return status;
}

class XnnpackEmbedder final : public Embedder {
public:
    ~XnnpackEmbedder() override {
        for (xnn_operator_t op : ops_) {
            if (op) xnn_delete_operator(op);
        }
    }

    Status init(std::shared_ptr<const Model> model) {
        model_ = std::move(model);
        const ModelInfo& info = model_->info();
        const auto& layers = model_->layers();
        n_input_ = size_t(info.context_frames) * info.frontend.n_mels;
        // buffers_[0] is the (normalised) patch; buffers_[i + 1] is layer i's output.
        buffers_.emplace_back(n_input_ + kXnnPadFloats);
        ops_.assign(layers.size(), nullptr);
        for (size_t i = 0; i < layers.size(); ++i) {
            const Layer& l = layers[i];
            buffers_.emplace_back(size_t(l.out_h) * l.out_w * l.out + kXnnPadFloats);
            const float out_min = l.relu ? 0.0f : -INFINITY;
            const float out_max = INFINITY;
            const float* in = buffers_[i].data();
            float* out = buffers_[i + 1].data();
            xnn_status status = xnn_status_success;
            switch (l.type) {
                case Layer::Type::kConv2d:
                    status = xnn_create_convolution2d_nhwc_f32(
                        uint32_t(l.pad_h), uint32_t(l.pad_w), uint32_t(l.pad_h), uint32_t(l.pad_w),
                        uint32_t(l.kernel_h), uint32_t(l.kernel_w), uint32_t(l.stride_h),
                        uint32_t(l.stride_w), /*dilation=*/1, 1, /*groups=*/1, size_t(l.in),
                        size_t(l.out), /*input_channel_stride=*/size_t(l.in),
                        /*output_channel_stride=*/size_t(l.out), l.weight.data(), l.bias.data(),
                        out_min, out_max, /*flags=*/0, &ops_[i]);
                    if (status != xnn_status_success) {
                        return xnn_error("create conv2d '" + l.name + "'", status);
                    }
                    status = xnn_setup_convolution2d_nhwc_f32(ops_[i], /*batch=*/1, size_t(l.in_h),
                                                              size_t(l.in_w), in, out,
                                                              /*threadpool=*/nullptr);
                    if (status != xnn_status_success) {
                        return xnn_error("setup conv2d '" + l.name + "'", status);
                    }
                    break;
                case Layer::Type::kDense:
                    status = xnn_create_fully_connected_nc_f32(
                        size_t(l.in), size_t(l.out), /*input_stride=*/size_t(l.in),
                        /*output_stride=*/size_t(l.out), l.weight.data(), l.bias.data(), out_min,
                        out_max, /*flags=*/0, &ops_[i]);
                    if (status != xnn_status_success) {
                        return xnn_error("create dense '" + l.name + "'", status);
                    }
                    status = xnn_setup_fully_connected_nc_f32(ops_[i], /*batch=*/1, in, out,
                                                              /*threadpool=*/nullptr);
                    if (status != xnn_status_success) {
                        return xnn_error("setup dense '" + l.name + "'", status);
                    }
                    break;
                case Layer::Type::kL2Norm:
                    break;  // ours, in embed()
            }
        }
        return Status::ok();
    }

    void embed(const float* patch, float* out) override {
        const ModelInfo& info = model_->info();
        float* x = buffers_[0].data();
        std::copy(patch, patch + n_input_, x);
        if (info.input_patch_mean) subtract_mean__vec128(n_input_, x);
        const auto& layers = model_->layers();
        for (size_t i = 0; i < layers.size(); ++i) {
            if (ops_[i]) {
                // Cannot fail after a successful setup with valid pointers.
                xnn_run_operator(ops_[i], /*threadpool=*/nullptr);
            } else {
                l2norm__vec128(size_t(layers[i].out), buffers_[i].data(), buffers_[i + 1].data());
            }
        }
        const float* y = buffers_.back().data();
        std::copy(y, y + info.embedding_dim, out);
    }
    Backend backend() const override { return Backend::kXnnpack; }

private:
    std::shared_ptr<const Model> model_;
    size_t n_input_ = 0;
    std::vector<std::vector<float>> buffers_;  // layer inputs/outputs, + kXnnPadFloats each
    std::vector<xnn_operator_t> ops_;          // per layer; nullptr for l2norm
};

}  // namespace

Result<std::unique_ptr<Embedder>> create_xnnpack_embedder(std::shared_ptr<const Model> model) {
    if (!model) return Status::error("create_xnnpack_embedder: no model");
    const xnn_status status = initialize_once();
    if (status != xnn_status_success) {
        return Status::error(
            std::string("XNNPACK is unavailable on this machine (xnn_initialize: ") +
            xnn_status_name(status) + "): use the simd backend");
    }
    std::unique_ptr<XnnpackEmbedder> embedder(new XnnpackEmbedder());
    Status st = embedder->init(std::move(model));
    if (!st) return st;
    return std::unique_ptr<Embedder>(std::move(embedder));
}

Result<std::unique_ptr<Embedder>> create_embedder_any(std::shared_ptr<const Model> model,
                                                      Backend backend) {
    if (backend == Backend::kXnnpack) return create_xnnpack_embedder(std::move(model));
    return create_embedder(std::move(model), backend);
}

}  // namespace earshot
