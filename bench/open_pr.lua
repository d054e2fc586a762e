-- POST /api/v1/proposals/{id}/open_pr, cycling through the ids in the file
-- given after "--" on the wrk command line.
local ids = {}
local i = 0

function init(args)
    for line in io.lines(args[1]) do
        ids[#ids + 1] = line
    end
    i = math.random(#ids)
end

function request()
    i = i + 1
    local id = ids[(i % #ids) + 1]
    return wrk.format("POST", "/api/v1/proposals/" .. id .. "/open_pr",
        {["Content-Type"] = "application/json"}, "{}")
end

local counts = {}

function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
end
