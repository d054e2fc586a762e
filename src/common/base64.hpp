#pragma once

// Standard base64 (RFC 4648: '+', '/', '=' padding), by OpenSSL's encoder.
// Redaction needs it to recognise a token inside a Basic credential
// (docs/security.md, "Redaction rules").

#include <openssl/evp.h>

#include <string>
#include <string_view>

namespace relyloop {

[[nodiscard]] inline std::string base64(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');  // + EVP_EncodeBlock's NUL
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                            reinterpret_cast<const unsigned char *>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
}

}  // namespace relyloop
