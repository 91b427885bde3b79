// LSD radix sort of floating-point values, optionally with their positions: the sort behind the
// sliced distances' 1-D OT, where every row is short (10^3 .. 10^5 values) and sorted thousands of
// times per step. Each value maps to an unsigned integer that orders like the float (the sign bit
// set for positives, all bits flipped for negatives), sorted 8 bits a pass, least significant
// first; a pass whose digit is the same for every key is skipped. The map is a bijection, so the
// sorted values come back bit for bit. Stable: equal values keep their input order.
//
// Order: -NaN < -inf < ... < -0.0 < +0.0 < ... < +inf < +NaN (by bit pattern). Only the order of
// -0.0 and +0.0 differs from a comparison sort, which treats them as equal.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

namespace uotflow::detail {

template <typename Float>
class RadixSorter {
  static_assert(std::is_same_v<Float, float> || std::is_same_v<Float, double>,
                "RadixSorter: float or double");

 public:
  using Key = std::conditional_t<sizeof(Float) == 4, uint32_t, uint64_t>;
  static constexpr int kDigits = sizeof(Key);  // 8-bit digits

  /// Sorts src[0, n) ascending into values[0, n), and index[k] = the position in src of values[k].
  /// Reuses its buffers between calls (keep one sorter per thread).
  template <typename Index>
  void sort(const Float* src, int64_t n, Float* values, Index* index) {
    run<true>(src, n, values, index);
  }

  /// Sorts src[0, n) ascending into values[0, n).
  void sort(const Float* src, int64_t n, Float* values) {
    run<false, int64_t>(src, n, values, nullptr);
  }

  /// Only the permutation: index[k] = the position in src of the k-th smallest value.
  template <typename Index>
  void order(const Float* src, int64_t n, Index* index) {
    run<true>(src, n, static_cast<Float*>(nullptr), index);
  }

  static Key to_key(Float f) {
    Key k;
    std::memcpy(&k, &f, sizeof k);
    return (k & kSign) ? ~k : (k | kSign);
  }

  static Float from_key(Key k) {
    k = (k & kSign) ? (k & ~kSign) : ~k;
    Float f;
    std::memcpy(&f, &k, sizeof f);
    return f;
  }

 private:
  static constexpr Key kSign = Key(1) << (8 * sizeof(Key) - 1);

  template <bool kWithIndex, typename Index>
  void run(const Float* src, int64_t n, Float* values, Index* index) {
    if (n <= 0) {
      return;
    }
    keys_[0].resize(n);
    keys_[1].resize(n);
    if (kWithIndex) {
      positions_[0].resize(n);
      positions_[1].resize(n);
    }
    std::array<std::array<uint32_t, 256>, kDigits> counts{};
    Key* from = keys_[0].data();
    uint32_t* from_pos = positions_[0].data();
    for (int64_t i = 0; i < n; ++i) {
      const Key k = to_key(src[i]);
      from[i] = k;
      if constexpr (kWithIndex) {
        from_pos[i] = static_cast<uint32_t>(i);
      }
      for (int d = 0; d < kDigits; ++d) {
        ++counts[d][(k >> (8 * d)) & 0xff];
      }
    }
    Key* to = keys_[1].data();
    uint32_t* to_pos = positions_[1].data();
    for (int d = 0; d < kDigits; ++d) {
      auto& count = counts[d];
      const int shift = 8 * d;
      if (count[(from[0] >> shift) & 0xff] == static_cast<uint32_t>(n)) {
        continue;  // one digit value for all keys: this pass would not move anything
      }
      uint32_t offset = 0;
      for (auto& c : count) {
        const uint32_t here = c;
        c = offset;
        offset += here;
      }
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t slot = count[(from[i] >> shift) & 0xff]++;
        to[slot] = from[i];
        if constexpr (kWithIndex) {
          to_pos[slot] = from_pos[i];
        }
      }
      std::swap(from, to);
      std::swap(from_pos, to_pos);
    }
    if (values != nullptr) {
      for (int64_t i = 0; i < n; ++i) {
        values[i] = from_key(from[i]);
      }
    }
    if constexpr (kWithIndex) {
      for (int64_t i = 0; i < n; ++i) {
        index[i] = static_cast<Index>(from_pos[i]);
      }
    }
  }

  std::array<std::vector<Key>, 2> keys_;
  std::array<std::vector<uint32_t>, 2> positions_;
};

}  // namespace uotflow::detail
