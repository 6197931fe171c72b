-- wrk script of bench (h): POST /ccd-persistence/cases, each request a new case (a reference of
-- its own from REF_BASE, threads apart by 10^6) with an Idempotency-Key of its own, as CCD
-- creates a case; S2S and USER_TOKEN as CCD sends them.
local base = tonumber(os.getenv("REF_BASE"))
local threads = 0
local n = 0 -- tid: set by setup() as a global of the thread

function setup(thread)
    thread:set("tid", threads)
    threads = threads + 1
end

function init(args)
    math.randomseed(os.time() + tid * 7919)
    n = 0
end

local function uuid()
    return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
        local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
        return string.format("%x", v)
    end))
end

local headers = {
    ["ServiceAuthorization"] = "Bearer " .. os.getenv("S2S"),
    ["Authorization"] = "Bearer " .. os.getenv("USER_TOKEN"),
    ["Content-Type"] = "application/json",
}

function request()
    n = n + 1
    local ref = string.format("%d", base + tid * 1000000 + n)
    headers["Idempotency-Key"] = uuid()
    local body = '{"case_details":{"id":' .. ref .. ',"jurisdiction":"DIVORCE",' ..
        '"case_type_id":"' .. os.getenv("CASE_TYPE") .. '","state":"Submitted",' ..
        '"security_classification":"PUBLIC","data_classification":{},' ..
        '"case_data":{"applicant":{"name":"Bench ' .. ref .. '","city":"Leeds"},"step":0}},' ..
        '"event_details":{"case_type":"' .. os.getenv("CASE_TYPE") .. '",' ..
        '"event_id":"create","event_name":"Create case"}}'
    return wrk.format("POST", "/ccd-persistence/cases", headers, body)
end
