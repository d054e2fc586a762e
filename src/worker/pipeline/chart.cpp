#include "pipeline/chart.hpp"

#include <cairo.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "common/c_callback.hpp"
#include "common/raii_cairo.hpp"

namespace relyloop::worker {

namespace {

struct PngSink {
    std::string png;
    CallbackFault fault;  // reported by the failed write
};

// Nothing may cross cairo: an exception ends the write with NO_MEMORY.
cairo_status_t append_png(void *closure, const unsigned char *data, unsigned int length) noexcept {
    auto *sink = static_cast<PngSink *>(closure);
    return guard_callback(&sink->fault, CAIRO_STATUS_NO_MEMORY, [&] {
        sink->png.append(reinterpret_cast<const char *>(data), length);
        return CAIRO_STATUS_SUCCESS;
    });
}

// Cut a label to `max_width` pixels, ending it with "…".
std::string fit_text(cairo_t *cr, const std::string &text, double max_width) {
    cairo_text_extents_t ext;
    cairo_text_extents(cr, text.c_str(), &ext);
    if (ext.x_advance <= max_width) {
        return text;
    }
    std::string cut = text;
    while (!cut.empty()) {
        // Drop a whole UTF-8 sequence at a time.
        do {
            cut.pop_back();
        } while (!cut.empty() && (static_cast<unsigned char>(cut.back()) & 0xC0) == 0x80);
        if (!cut.empty() && (static_cast<unsigned char>(cut.back()) & 0xC0) == 0xC0) {
            cut.pop_back();
        }
        std::string candidate = cut + "\xE2\x80\xA6";
        cairo_text_extents(cr, candidate.c_str(), &ext);
        if (ext.x_advance <= max_width) {
            return candidate;
        }
    }
    return "\xE2\x80\xA6";
}

std::string value_label(double v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
}

// cairo's toy font API goes through fontconfig, whose first initialisation is
// not safe from two threads at once; charts are small, so draw one at a time.
std::mutex &chart_mutex() {
    static std::mutex mu;
    return mu;
}

}  // namespace

std::string render_importance_chart(const std::vector<std::pair<std::string, double>> &importance) {
    std::vector<std::pair<std::string, double>> bars;
    for (const auto &[name, value] : importance) {
        if (std::isfinite(value)) {
            bars.emplace_back(name, std::max(0.0, value));
        }
    }
    if (bars.empty()) {
        throw std::runtime_error("no parameter importance to draw");
    }
    std::stable_sort(bars.begin(), bars.end(),
                     [](const auto &a, const auto &b) { return a.second > b.second; });
    size_t hidden = bars.size() > kChartMaxBars ? bars.size() - kChartMaxBars : 0;
    bars.resize(std::min(bars.size(), kChartMaxBars));
    double max_value = 0;
    for (const auto &b : bars) max_value = std::max(max_value, b.second);
    if (max_value <= 0) max_value = 1;

    std::lock_guard<std::mutex> lock(chart_mutex());
    CairoSurface surface(cairo_image_surface_create(CAIRO_FORMAT_RGB24, kChartWidth, kChartHeight));
    if (cairo_surface_status(surface.get()) != CAIRO_STATUS_SUCCESS) {
        throw std::runtime_error("cairo: cannot create the image surface");
    }
    Cairo cr(cairo_create(surface.get()));
    cairo_t *c = cr.get();

    cairo_set_source_rgb(c, 1, 1, 1);
    cairo_paint(c);
    cairo_set_source_rgb(c, 0, 0, 0);

    cairo_select_font_face(c, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(c, 22);
    cairo_text_extents_t ext;
    const char *title = "Parameter importance";
    cairo_text_extents(c, title, &ext);
    cairo_move_to(c, (kChartWidth - ext.x_advance) / 2, 42);
    cairo_show_text(c, title);

    const double left = 210;   // labels end here, bars start
    const double right = 700;  // bars end here at the maximum; values follow
    const double top = 70;
    const double bottom = kChartHeight - (hidden > 0 ? 50.0 : 30.0);
    const double slot = (bottom - top) / static_cast<double>(bars.size());
    const double bar_h = std::min(36.0, slot * 0.7);
    const double font = std::clamp(bar_h * 0.55, 9.0, 15.0);

    cairo_select_font_face(c, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(c, font);
    for (size_t i = 0; i < bars.size(); i++) {
        const auto &[name, value] = bars[i];
        double y = top + slot * static_cast<double>(i) + (slot - bar_h) / 2;
        double w = (right - left) * (value / max_value);

        cairo_set_source_rgb(c, 0.25, 0.25, 0.25);
        cairo_rectangle(c, left, y, std::max(w, 1.0), bar_h);
        cairo_fill(c);

        cairo_set_source_rgb(c, 0, 0, 0);
        std::string label = fit_text(c, name, left - 20);
        cairo_text_extents(c, label.c_str(), &ext);
        double baseline = y + bar_h / 2 + font * 0.35;
        cairo_move_to(c, left - 10 - ext.x_advance, baseline);
        cairo_show_text(c, label.c_str());

        std::string v = value_label(value);
        cairo_move_to(c, left + std::max(w, 1.0) + 8, baseline);
        cairo_show_text(c, v.c_str());
    }
    // The axis the bars grow from.
    cairo_set_line_width(c, 1.5);
    cairo_move_to(c, left, top - 5);
    cairo_line_to(c, left, bottom + 5);
    cairo_stroke(c);

    if (hidden > 0) {
        std::string more = "+" + std::to_string(hidden) + " more parameters not shown";
        cairo_set_font_size(c, 12);
        cairo_move_to(c, left, kChartHeight - 20);
        cairo_show_text(c, more.c_str());
    }

    if (cairo_status(c) != CAIRO_STATUS_SUCCESS) {
        throw std::runtime_error(std::string("cairo: ") + cairo_status_to_string(cairo_status(c)));
    }
    cairo_surface_flush(surface.get());
    PngSink sink;
    cairo_status_t st = cairo_surface_write_to_png_stream(surface.get(), append_png, &sink);
    if (st != CAIRO_STATUS_SUCCESS) {
        throw std::runtime_error(std::string("cairo: ") + (sink.fault.set()
                                                               ? sink.fault.what()
                                                               : cairo_status_to_string(st)));
    }
    return std::move(sink.png);
}

void release_chart_caches() noexcept {
    std::lock_guard<std::mutex> lock(chart_mutex());
    cairo_debug_reset_static_data();
    // fontconfig comes in through cairo and is not linked directly; look its
    // FcFini up at run time rather than add a link dependency for one call.
    if (void *fini = dlsym(RTLD_DEFAULT, "FcFini")) {
        reinterpret_cast<void (*)()>(fini)();
    }
}

std::pair<int, int> png_dimensions(const std::string &png) {
    static const char kSig[] = "\x89PNG\r\n\x1a\n";
    if (png.size() < 24 || png.compare(0, 8, kSig, 8) != 0 || png.compare(12, 4, "IHDR") != 0) {
        return {0, 0};
    }
    auto be32 = [&](size_t off) {
        return static_cast<int>((static_cast<unsigned char>(png[off]) << 24) |
                                (static_cast<unsigned char>(png[off + 1]) << 16) |
                                (static_cast<unsigned char>(png[off + 2]) << 8) |
                                static_cast<unsigned char>(png[off + 3]));
    };
    return {be32(16), be32(20)};
}

}  // namespace relyloop::worker
