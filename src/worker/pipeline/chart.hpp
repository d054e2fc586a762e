#pragma once

// The parameter-importance chart of a study's digest (docs/runbook.md, "What a run does"):
// PNG 800×600, monochrome horizontal bars sorted by importance (largest on
// top), each labelled with the param name and its value, titled
// "Parameter importance". Rendered in memory with cairo; committed as
// `.relyloop/digest-charts/<study_id>.png`.

#include <string>
#include <utility>
#include <vector>

namespace relyloop::worker {

inline constexpr int kChartWidth = 800;
inline constexpr int kChartHeight = 600;
// More bars than this do not stay legible at 600 px; the rest are summarised
// in a footnote ("+N more").
inline constexpr size_t kChartMaxBars = 20;

// PNG bytes. Non-finite importances are dropped, negative ones drawn as 0.
// Throws std::runtime_error when there is nothing to draw or cairo fails.
[[nodiscard]] std::string render_importance_chart(
    const std::vector<std::pair<std::string, double>> &importance);

// Frees cairo's and fontconfig's process-wide caches, which otherwise stay
// allocated until exit (LeakSanitizer reports them). Call only when no thread
// can be drawing: the pipeline does it in its destructor.
void release_chart_caches() noexcept;

// The image size recorded in a PNG's IHDR chunk; {0, 0} if `png` is not one.
[[nodiscard]] std::pair<int, int> png_dimensions(const std::string &png);

}  // namespace relyloop::worker
