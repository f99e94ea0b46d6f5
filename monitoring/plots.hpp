// monitoring/plots.hpp — PNG plots of runs through gnuplot, with data files and script kept.
#pragma once

#include "fl/results/results_reader.hpp"

#include <filesystem>
#include <vector>

namespace fedvlm {

/// Writes into `out_dir` (created if needed) gnuplot data files (*.dat), one script plots.gp
/// that draws them all (`cd out_dir && gnuplot plots.gp` redraws: tweak it for papers), and
/// runs gnuplot on it. PNGs are 1000×600, pngcairo when gnuplot has it, else png:
///   run_<run>_accuracy.png, run_<run>_loss.png
///       per run with records: one line per client, round 0 = before fine-tuning
///   comparison_accuracy.png
///       mean client accuracy vs round, one line per run, labelled by strategy and the sweep
///       values that differ between runs
///   comparison_aggregation_error.png, comparison_global_test.png, comparison_<metric>.png
///       where any run has them: aggregation error (or mean client drift), the global model's
///       accuracy on the official test split, and the mean of each task metric (exact_match),
///       per round, one line per run
///   sweep_<key>.png
///       for each numeric sweep key (not seeds) with ≥ 2 values: final mean accuracy vs the
///       key, one line per strategy (runs sharing strategy and value averaged)
/// Returns the PNG paths. Throws std::runtime_error when gnuplot is not on PATH (saying how to
/// install it), when it fails (its exit status and output), when a file cannot be written, or
/// when no run has any record to plot.
std::vector<std::filesystem::path> write_plots(const std::vector<RunResults>& runs,
                                               const std::filesystem::path& out_dir);

} // namespace fedvlm
