-- POST /webhooks/github: every request a distinct ~8 KiB pull_request
-- delivery, signed here with OpenSSL's HMAC-SHA256 through LuaJIT's FFI, so
-- none is a replay. Arguments after "--": secret, full_name, padding bytes,
-- a tag unique to this wrk run (each thread adds its own number).
local ffi = require("ffi")
ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
]]
local crypto = ffi.load("crypto")

local secret, full_name, pad
local seq = 0
local tag
local threads = 0

-- runs in the main Lua state, once per thread
function setup(thread)
    threads = threads + 1
    thread:set("thread_no", threads)
end
local md = ffi.new("unsigned char[32]")
local mdlen = ffi.new("unsigned int[1]")

function init(args)
    secret = args[1]
    full_name = args[2]
    pad = string.rep("x", tonumber(args[3]))
    tag = args[4] .. "-" .. tostring(thread_no)
end

local function hex(buf, n)
    local t = {}
    for i = 0, n - 1 do
        t[#t + 1] = string.format("%02x", buf[i])
    end
    return table.concat(t)
end

function request()
    seq = seq + 1
    local id = tag .. "-" .. seq
    local body = '{"action":"closed","number":' .. seq .. ',"pull_request":{"html_url":'
        .. '"https://github.com/' .. full_name .. '/pull/bench-' .. id .. '","number":' .. seq
        .. ',"state":"closed","merged":false,"merged_at":null,'
        .. '"updated_at":"2099-01-01T00:00:00Z","body":"' .. pad .. '"},'
        .. '"repository":{"full_name":"' .. full_name .. '"},"sender":{"login":"bench"}}'
    crypto.HMAC(crypto.EVP_sha256(), secret, #secret, body, #body, md, mdlen)
    return wrk.format("POST", "/webhooks/github", {
        ["Content-Type"] = "application/json",
        ["X-GitHub-Event"] = "pull_request",
        ["X-GitHub-Delivery"] = id,
        ["X-Hub-Signature-256"] = "sha256=" .. hex(md, 32),
    }, body)
end
