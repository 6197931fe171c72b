-- wrk script of bench (h): GET /ccd-persistence/cases?case-refs=R for a reference drawn at
-- random from [REF_BASE, REF_BASE + REF_COUNT), with CCD's two tokens (S2S, USER_TOKEN).
local base = tonumber(os.getenv("REF_BASE"))
local count = tonumber(os.getenv("REF_COUNT"))

wrk.headers["ServiceAuthorization"] = "Bearer " .. os.getenv("S2S")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("USER_TOKEN")

function init(args)
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
    return wrk.format("GET", "/ccd-persistence/cases?case-refs=" ..
        string.format("%d", base + math.random(0, count - 1)))
end
