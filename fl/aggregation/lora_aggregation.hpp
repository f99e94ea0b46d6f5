// fl/aggregation/lora_aggregation.hpp — LoRA aggregation rules (FedIT, FedEx-LoRA, stacking, FlexLoRA, HetLoRA) and their error.
//
// Averaging lora_A and lora_B separately (FedIT, the "flora" strategy) is inexact:
// mean(B_k) · mean(A_k) ≠ mean(B_k · A_k). The functions here aggregate the factors of one
// adapted layer by each published rule and measure how far a rule's product lies from the
// ideal Σ_k p_k B_k A_k. They are plain math over tensors, called without actors; the engine
// decides which rule a strategy uses and what travels.
//
// Shared contract of every function taking `std::vector<LoraFactors>`:
//  - A is r_k × in and B is out × r_k (model/lora.hpp); both 2-D, floating point, and every
//    client has the same in and out.
//  - Weights p_k are already normalised by the caller: each finite and ≥ 0, Σ p_k = 1 within
//    ±1e-9. Nothing is renormalised here, so a mistake upstream is reported, not hidden.
//  - Client ids are distinct. Sums run over clients in ascending id order, in float64, whatever
//    order the vector has, so a result is reproducible however the actors interleave.
//  - Results are cast back to the dtype of the lowest-id client's tensors: A-shaped results to
//    its A's dtype, B-shaped results to its B's, out × in results to the promotion of both.
//  - The inputs are read, never written.
//  - Violations throw std::invalid_argument "<rule>: ..." naming the client and what was expected.
//
// Scale. The functions work on the raw product B·A; the forward pass multiplies it by
// scale = alpha / r (model/lora.hpp). With equal ranks the scale is common and factors out.
// With heterogeneous ranks it is not: fold each client's scale into its factors before calling
// (B_k ← (alpha / r_k) · B_k) and divide by the receiving adapter's scale afterwards
// (e.g. alpha / Σr_k for a stacked adapter, alpha / r_k for a FlexLoRA or HetLoRA client).
#pragma once

#include "model/tensor_map.hpp"

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace fedvlm {

// -- inputs and results -------------------------------------------------------------------------

/// One client's adapter factors for one layer.
struct LoraFactors {
  int client = 0;
  double weight = 0.0; ///< p_k, already normalised (Σ p_k = 1)
  at::Tensor A;        ///< r_k × in
  at::Tensor B;        ///< out × r_k
};

/// One pair of factors (A: r × in, B: out × r).
struct LoraPair {
  at::Tensor A;
  at::Tensor B;
};

/// FedIT's averages plus the residual that makes them exact.
struct FedExResult {
  at::Tensor A;        ///< Σ p_k A_k
  at::Tensor B;        ///< Σ p_k B_k
  at::Tensor residual; ///< ΔW = Σ p_k B_k A_k − B·A (out × in), folded into the frozen weight
};

/// The factors one client receives from a per-client rule (FlexLoRA, HetLoRA).
struct ClientLora {
  int client = 0;
  at::Tensor A; ///< target_rank × in
  at::Tensor B; ///< out × target_rank
};

// -- the reference -------------------------------------------------------------------------------

/// Σ_k p_k B_k A_k (out × in) in float64 — the product every exact rule reproduces, and the
/// reference of aggregation_error. Kept in float64: it is a measuring stick, not a tensor that
/// travels. Accepts heterogeneous ranks.
[[nodiscard]] at::Tensor lora_mean_product(const std::vector<LoraFactors>& factors);

// -- aggregation rules ---------------------------------------------------------------------------
// Named aggregate_<rule> (the family of fl/aggregation/aggregate.hpp's `aggregate`); a bare `stack` would
// read as at::stack.

/// FedIT / FLoRA-as-averaging: {Σ p_k A_k, Σ p_k B_k}. Inexact unless the clients share A (FFA-LoRA)
/// or B. Needs equal ranks; the error names the client, both ranks, and the rules that accept
/// heterogeneous ranks.
[[nodiscard]] LoraPair aggregate_fedit(const std::vector<LoraFactors>& factors);

/// FedEx-LoRA (Singhal et al. 2024): FedIT's averages plus ΔW = Σ p_k B_k A_k − (Σ p B)(Σ p A),
/// so (Σ p B)(Σ p A) + ΔW = Σ p_k B_k A_k exactly (in float64; to rounding in the input dtype).
/// The server adds scale · ΔW to the frozen weight; it travels down as a dense out × in tensor.
/// Needs equal ranks.
[[nodiscard]] FedExResult aggregate_fedex(const std::vector<LoraFactors>& factors);

/// Stacking (FLoRA, Wang et al. NeurIPS 2024): A_s = [A_k stacked by rows] ((Σ r_k) × in),
/// B_s = [p_k B_k side by side] (out × Σ r_k), blocks in ascending client order, so
/// B_s A_s = Σ p_k B_k A_k exactly. Accepts heterogeneous ranks; the result's rank is Σ r_k.
[[nodiscard]] LoraPair aggregate_stack(const std::vector<LoraFactors>& factors);

/// FlexLoRA (Bai et al. 2024): W = Σ p_k B_k A_k, W = U S Vᵀ (at::linalg_svd, float64), and for
/// factors[i] the rank-target_ranks[i] truncation split evenly: B' = U_r diag(√S_r),
/// A' = diag(√S_r) V_rᵀ, so B'A' is the best rank-r approximation of W (Eckart–Young).
/// `target_ranks[i]` belongs to `factors[i]`, and result[i] is for factors[i] (input order).
/// Accepts heterogeneous ranks. Throws when target_ranks has another length than factors, or a
/// target rank is < 1 or exceeds min(out, in, Σ r_k) (the rank W can have). Singular vectors
/// are unique only up to sign; the largest-magnitude entry of each column of U is made positive
/// so the factors are the same on every platform. Where W has fewer than r non-zero singular
/// values (W = 0 in round 0, when every B starts at zero) the extra rows of A' and columns of B'
/// are zero: both halves of those directions are dead, no gradient reaches them — the caller
/// should not send FlexLoRA factors down while W is 0 (or re-initialise A where it is zero).
[[nodiscard]] std::vector<ClientLora> aggregate_flexlora(const std::vector<LoraFactors>& factors,
                                                         const std::vector<int>& target_ranks);

/// HetLoRA (Cho et al. 2024): every A_k zero-padded to r_max rows and every B_k to r_max
/// columns (r_max = max r_k), weighted average, then factors[i] receives the first
/// target_ranks[i] rows of A and columns of B (truncation on the way down). With equal ranks
/// and target = rank this is FedIT. `target_ranks[i]` belongs to `factors[i]`, result[i] is for
/// factors[i]. Throws when target_ranks has another length than factors, or a target rank is
/// < 1 or exceeds r_max.
[[nodiscard]] std::vector<ClientLora> aggregate_hetlora(const std::vector<LoraFactors>& factors,
                                                        const std::vector<int>& target_ranks);

/// Who receives a per-client rule's factors, at which rank: every client of the federation,
/// also those whose update did not arrive this round.
struct LoraRecipient {
  int client = 0;
  int rank = 0;
};

/// aggregate_flexlora / aggregate_hetlora for an explicit list of recipients (result[i] for
/// recipients[i]), which need not be the clients that sent factors. Same checks per recipient.
[[nodiscard]] std::vector<ClientLora> aggregate_flexlora_for(const std::vector<LoraFactors>& factors,
                                                             const std::vector<LoraRecipient>& recipients);
[[nodiscard]] std::vector<ClientLora> aggregate_hetlora_for(const std::vector<LoraFactors>& factors,
                                                            const std::vector<LoraRecipient>& recipients);

// -- errors as metrics ---------------------------------------------------------------------------

/// ‖Σ p_k B_k A_k − P‖_F / ‖Σ p_k B_k A_k‖_F, in float64, for an aggregated product P (out × in,
/// e.g. B̄·Ā of FedIT, or B̄Ā + ΔW of FedEx). 0 for an exact rule. When Σ p_k B_k A_k = 0 the
/// ratio is undefined: 0 when P = 0 too (an untrained round, B = 0), +infinity otherwise.
/// Throws when P's shape is not out × in.
[[nodiscard]] double aggregation_error(const std::vector<LoraFactors>& factors,
                                       const at::Tensor& aggregated_product);

/// For personalised strategies (pLoRA: A_k private, B averaged; FedSA-LoRA: A averaged, B_k
/// private): ‖B_g A_k − B_k A_k‖_F / ‖B_k A_k‖_F, how far the shared factor moves a client off
/// its own product. Arguments are the two out × in products; float64. 0 when they are equal
/// (also when both are 0); +infinity when only the client's own product is 0. Throws when the
/// shapes differ or a tensor is not 2-D.
[[nodiscard]] double client_drift(const at::Tensor& global_B_times_own_A,
                                  const at::Tensor& own_B_times_own_A);

// -- per module, from adapter maps ---------------------------------------------------------------

/// One client's adapters ("<module>.lora_A" / "<module>.lora_B") and its normalised weight.
struct ClientAdapters {
  int client = 0;
  double weight = 0.0;
  const TensorMap* adapters = nullptr;
};

/// Groups adapters by module: module name → one LoraFactors per client, ascending client order
/// (ready for any rule above). Names without a .lora_A/.lora_B suffix are ignored. Throws when
/// the list is empty, a client appears twice or sent no map, a module has lora_A without lora_B
/// (or the reverse), or clients hold different module sets. Shapes and weights are checked by
/// the rule that consumes the factors.
[[nodiscard]] std::map<std::string, std::vector<LoraFactors>>
lora_factors_by_module(const std::vector<ClientAdapters>& clients);

/// Per module, aggregation_error of FedIT (the error the engine reports per layer). Throws what
/// lora_factors_by_module and aggregate_fedit throw, prefixed with "module '<name>': " where a
/// module is at fault.
[[nodiscard]] std::map<std::string, double>
fedit_error_per_module(const std::vector<ClientAdapters>& clients);

} // namespace fedvlm
