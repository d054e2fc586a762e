#pragma once

// One deleter template, one alias per C handle (docs/decisions.md, "The core").
// A stateless deleter keeps unique_ptr the size of a plain pointer.

#include <jansson.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <memory>

namespace relyloop {

template <auto F>
struct c_free {
    template <typename T>
    void operator()(T *p) const noexcept {
        if (p != nullptr) {
            F(p);
        }
    }
};

// libpq
using PgConn = std::unique_ptr<PGconn, c_free<PQfinish>>;
using PgResult = std::unique_ptr<PGresult, c_free<PQclear>>;

// jansson: json_decref is inline, hence the lambda.
inline void json_release(json_t *j) noexcept { json_decref(j); }
using Json = std::unique_ptr<json_t, c_free<json_release>>;

inline void free_chars(char *p) noexcept { std::free(p); }
using CString = std::unique_ptr<char, c_free<free_chars>>;

}  // namespace relyloop
