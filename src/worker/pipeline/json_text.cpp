#include "pipeline/json_text.hpp"

#include "common/json_writer.hpp"

namespace relyloop::worker {

std::string json_number_text(double d) {
    std::string out;
    json::write_double(out, d);
    return out;
}

std::string json_text(const json_t *value) {
    return value != nullptr ? json::dump(value) : std::string("null");
}

bool json_same_value(const json_t *a, const json_t *b) {
    if (a == nullptr || b == nullptr) {
        return a == b;
    }
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) {
            return json_integer_value(a) == json_integer_value(b);
        }
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) {
        return false;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) {
            return false;
        }
        for (size_t i = 0; i < json_array_size(a); i++) {
            if (!json_same_value(json_array_get(a, i), json_array_get(b, i))) {
                return false;
            }
        }
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) {
            return false;
        }
        const char *key = nullptr;
        json_t *member = nullptr;
        json_object_foreach(const_cast<json_t *>(a), key, member) {
            if (!json_same_value(member, json_object_get(b, key))) {
                return false;
            }
        }
        return true;
    }
    return json_equal(const_cast<json_t *>(a), const_cast<json_t *>(b)) != 0;
}

Json json_parse(std::string_view text, std::string *error, size_t flags) {
    json_error_t err;
    Json out(json_loadb(text.data(), text.size(), JSON_DECODE_ANY | flags, &err));
    if (!out && error != nullptr) {
        *error = std::string(err.text) + " (line " + std::to_string(err.line) + ", column " +
                 std::to_string(err.column) + ")";
    }
    return out;
}

}  // namespace relyloop::worker
