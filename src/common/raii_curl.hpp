#pragma once

// libcurl handles (raii.hpp, docs/decisions.md "The core").

#include <curl/curl.h>

#include "common/raii.hpp"

namespace relyloop {

using CurlEasy = std::unique_ptr<CURL, c_free<curl_easy_cleanup>>;
using CurlSlist = std::unique_ptr<curl_slist, c_free<curl_slist_free_all>>;
inline void curl_free_chars(char *p) noexcept { curl_free(p); }
using CurlText = std::unique_ptr<char, c_free<curl_free_chars>>;

}  // namespace relyloop
