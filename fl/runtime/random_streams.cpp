// fl/runtime/random_streams.cpp — splitmix64 over (run seed, client, round, purpose).
#include "fl/runtime/random_streams.hpp"

namespace fedvlm {

uint64_t job_seed(uint64_t run_seed, int client, int round, Stream purpose) {
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  uint64_t h = mix(run_seed);
  h = mix(h ^ static_cast<uint64_t>(client + 1));
  h = mix(h ^ (static_cast<uint64_t>(round) << 20));
  return mix(h ^ (static_cast<uint64_t>(purpose) << 40));
}

} // namespace fedvlm
