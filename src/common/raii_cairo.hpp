#pragma once

// cairo handles (raii.hpp, docs/decisions.md "The core").

#include <cairo.h>

#include "common/raii.hpp"

namespace relyloop {

using CairoSurface = std::unique_ptr<cairo_surface_t, c_free<cairo_surface_destroy>>;
using Cairo = std::unique_ptr<cairo_t, c_free<cairo_destroy>>;

}  // namespace relyloop
