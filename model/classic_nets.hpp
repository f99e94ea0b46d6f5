// model/classic_nets.hpp — the classic FedAvg baselines for 28×28 grayscale images: cnn_mnist, cnn_fedavg and mlp_2nn.
//
// Both are small enough to train in full (every weight trained and FedAvg-averaged) and are
// written as pure functions over a TensorMap, as model/mobilenet_v3 is:
//
// - `cnn_mnist`, the CNN of PyTorch's MNIST example as most FedAvg reproductions use it:
//     conv1 (1→10, k5) → max-pool 2 → ReLU → conv2 (10→20, k5) → channel dropout (Dropout2d)
//     → max-pool 2 → ReLU → flatten (320) → fc1 (320→50) → ReLU → dropout → fc2 (50→classes).
//   21,840 parameters for 10 classes.
// - `cnn_fedavg`, the CNN of the FedAvg paper (McMahan et al. 2017): conv1 (1→32, k5, padding 2)
//     → ReLU → max-pool 2 → conv2 (32→64, k5, padding 2) → ReLU → max-pool 2 → flatten (3136)
//     → fc1 (3136→512) → ReLU → fc2 (512→classes). 1,663,370 parameters for 10 classes, the
//   paper's count (which fixes the padding). No dropout, as in the paper.
// - `mlp_2nn`, the "2NN" of the FedAvg paper (McMahan et al. 2017): flatten (784) → fc1 (784→200)
//   → ReLU → fc2 (200→200) → ReLU → fc3 (200→classes). 199,210 parameters for 10 classes. The
//   paper uses no dropout, so neither does this model.
//
// Weight names are those of the torch.nn modules ("conv1.weight", "fc2.bias", ...), so a
// state_dict exported to .safetensors fits as is. Dropout p = 0.5 (cnn_mnist only), active only
// when ctx.dropout_active, drawing from ctx.generator when set.
//
// Trunk / head split: head(features) is the last Linear (with the dropout that feeds it, for
// cnn_mnist); features() is everything before it: (N, 50) for cnn_mnist, (N, 512) for cnn_fedavg,
// (N, 200) for mlp_2nn.
// Keeping the dropout in the head means head-only training on cached features (fl/tasks/frozen_base)
// draws the same dropout the full forward would.
//
// Every Linear goes through lora_linear under its module name, so LoRA adapters and lora_delta
// apply to "fc1", "fc2" (and "fc3"); the convolutions are plain at::conv2d and not adaptable.
// Nothing is detached: when the caller makes state() tensors require grad, gradients reach them
// (full fine-tuning).
//
// Input: images (N, 1, 28, 28), floating point. Any other shape throws std::invalid_argument
// naming the expected one.
#pragma once

#include "model/image_classifier.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fedvlm {

/// The architectures make_classic_net knows: {"cnn_mnist", "cnn_fedavg", "mlp_2nn"}.
[[nodiscard]] const std::vector<std::string>& classic_net_names();

/// PyTorch's MNIST-example CNN. Weights drawn as torch.nn's defaults draw them (Kaiming-uniform
/// a = √5 for weights, uniform ±1/√fan_in for biases), module by module (weight, then bias) from
/// one CPU generator seeded with `seed` — the same numbers torch.manual_seed(seed) followed by
/// constructing the torch.nn module gives. Throws std::invalid_argument when num_classes < 1.
[[nodiscard]] std::shared_ptr<ImageClassifier> make_cnn_mnist(int64_t num_classes, uint64_t seed);

/// The FedAvg paper's CNN (1,663,370 parameters for 10 classes), initialised as make_cnn_mnist is.
/// Throws std::invalid_argument when num_classes < 1.
[[nodiscard]] std::shared_ptr<ImageClassifier> make_cnn_fedavg(int64_t num_classes, uint64_t seed);

/// The FedAvg paper's 2NN (784→200→200→classes, ReLU), initialised as make_cnn_mnist is.
/// Throws std::invalid_argument when num_classes < 1.
[[nodiscard]] std::shared_ptr<ImageClassifier> make_mlp_2nn(int64_t num_classes, uint64_t seed);

/// K clients' own copies of a classic net in one pass (what vectorising over clients does): the
/// convolutions as one grouped convolution (groups = K) over the clients' channels side by side,
/// the Linears as batched matmuls. `input` is images (K, B, 1, 28, 28), or trunk features
/// (K, B, F) for the head alone; `clients[k]` holds client k's tensors by state name, and any
/// name it lacks is the shared one of `net`. Returns logits (K, B, classes). With
/// `dropout_active`, client k's masks come from `generators[k]` in the order net.forward draws
/// them alone, so each client's logits equal its own forward up to float rounding. Throws
/// std::invalid_argument when `net` is not a classic net or the shapes do not fit.
[[nodiscard]] at::Tensor classic_net_stacked_logits(const ImageClassifier& net,
                                                    const std::vector<const TensorMap*>& clients,
                                                    const at::Tensor& input, bool dropout_active,
                                                    const std::vector<at::Generator>& generators);

/// Any of them by name (one of classic_net_names()). Throws std::invalid_argument naming the
/// valid architectures for an unknown `arch`.
[[nodiscard]] std::shared_ptr<ImageClassifier> make_classic_net(const std::string& arch,
                                                                int64_t num_classes,
                                                                uint64_t seed);

} // namespace fedvlm
