// cxxprog.cpp - C++ on the allocator under test: new/delete (plain, array,
// aligned, sized), std::string, std::map, std::unordered_map, exceptions
// (their objects are allocated too) and threads. Deterministic output,
// compared with the same run on glibc.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace
{

struct alignas(64) Line {
	std::uint64_t v[8];
};

std::uint64_t mix(std::uint64_t h, std::uint64_t x)
{
	h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h;
}

std::uint64_t strings_and_maps(unsigned seed)
{
	std::map<std::string, std::vector<int>> m;
	std::unordered_map<std::uint64_t, std::string> u;
	std::uint64_t h = seed;
	for (unsigned i = 0; i < 60000; i++) {
		std::string key =
		    "key-" + std::to_string(i * 2654435761u % 100003) + "-" + std::to_string(seed);
		m[key].push_back(static_cast<int>(i));
		u[i] = std::string(i % 200, static_cast<char>('a' + i % 26));
		if (i % 5 == 0)
			u.erase(i / 2);
	}
	for (const auto &kv : m)
		h = mix(h, kv.first.size() + kv.second.size() +
			       static_cast<std::uint64_t>(kv.second.front()));
	std::uint64_t total = 0;
	for (const auto &kv : u)
		total += kv.second.size();
	return mix(h, total);
}

std::uint64_t exceptions(int n)
{
	std::uint64_t caught = 0;
	for (int i = 0; i < n; i++) {
		try {
			if (i % 3 == 0)
				throw std::runtime_error("error number " + std::to_string(i));
			if (i % 3 == 1)
				throw std::vector<int>(static_cast<size_t>(i % 100), i);
			throw std::string(static_cast<size_t>(i % 1000), 'e');
		} catch (const std::runtime_error &e) {
			caught += std::string(e.what()).size();
		} catch (const std::vector<int> &v) {
			caught += v.size();
		} catch (const std::string &s) {
			caught += s.size();
		}
	}
	return caught;
}

std::uint64_t aligned_and_arrays()
{
	std::uint64_t h = 0;
	for (int round = 0; round < 200; round++) {
		std::vector<std::unique_ptr<Line>> lines;
		for (int i = 0; i < 500; i++) {
			lines.emplace_back(new Line());
			if (reinterpret_cast<std::uintptr_t>(lines.back().get()) % 64 != 0)
				return 0; // aligned new broken
			lines.back()->v[0] = static_cast<std::uint64_t>(i);
		}
		int *arr = new int[static_cast<size_t>(round) * 100 + 1];
		arr[0] = round;
		h = mix(h, static_cast<std::uint64_t>(arr[0]) +
			       lines[static_cast<size_t>(round) % 500]->v[0]);
		delete[] arr;
		auto sp = std::make_shared<std::string>(static_cast<size_t>(round) * 1000, 's');
		h = mix(h, sp->size());
	}
	bool threw = false;
	try {
		std::vector<char> huge(static_cast<size_t>(-1) / 4);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	return threw ? h : 0;
}

} // namespace

int main()
{
	std::printf("maps %llx\n", static_cast<unsigned long long>(strings_and_maps(1)));
	std::printf("exceptions %llu\n", static_cast<unsigned long long>(exceptions(100000)));
	std::printf("aligned %llx\n", static_cast<unsigned long long>(aligned_and_arrays()));

	std::vector<std::thread> threads;
	std::vector<std::uint64_t> results(8);
	for (unsigned t = 0; t < 8; t++)
		threads.emplace_back([t, &results] {
			results[t] = mix(strings_and_maps(t + 10), exceptions(5000));
		});
	for (auto &th : threads)
		th.join();
	std::uint64_t all = 0;
	for (auto r : results)
		all = mix(all, r);
	std::printf("threads %llx\n", static_cast<unsigned long long>(all));

	// objects made in one thread, deleted in another
	std::vector<std::string *> handoff;
	std::thread maker([&handoff] {
		for (int i = 0; i < 100000; i++)
			handoff.push_back(new std::string(static_cast<size_t>(i % 300), 'h'));
	});
	maker.join();
	std::atomic<std::uint64_t> len{0};
	std::thread eater([&handoff, &len] {
		for (auto *s : handoff) {
			len += s->size();
			delete s;
		}
	});
	eater.join();
	std::printf("handoff %llu\n", static_cast<unsigned long long>(len.load()));
	return 0;
}
