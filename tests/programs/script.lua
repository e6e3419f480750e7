-- script.lua - allocation-heavy Lua 5.4 (every allocation is a realloc
-- through lua_Alloc) with deterministic output.
local seed = 7
local function rnd()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed
end
local t = {}
for i = 1, 300000 do
  t["k" .. i .. "-" .. rnd()] = { i, string.rep("x", i % 50) }
end
local n, sum = 0, 0
for _, v in pairs(t) do
  n = n + 1
  sum = sum + v[1] + #v[2]
end
print("table", n, sum)
local arr = {}
for i = 1, 300000 do arr[i] = rnd() % 1000000 end
table.sort(arr)
print("sorted", arr[1], arr[150000], arr[#arr])
local parts = {}
for i = 1, 200000 do parts[#parts + 1] = tostring(i * 7) end
local s = table.concat(parts, ",")
print("concat", #s, s:sub(1000, 1010))
local count = 0
for w in s:gmatch("%d*77%d*") do count = count + 1 end
print("gmatch", count)
local co = coroutine.wrap(function()
  for i = 1, 100000 do coroutine.yield({ i, tostring(i) }) end
end)
local acc = 0
for _ = 1, 100000 do acc = acc + co()[1] end
print("coroutines", acc)
t, arr, parts = nil, nil, nil
collectgarbage("collect")
print("gc ok", collectgarbage("count") < 100000)
