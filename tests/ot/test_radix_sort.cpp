// The radix sort of the sliced distances (src/ot/radix_sort.h) against std::stable_sort.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "ot/radix_sort.h"

namespace {

using uotflow::detail::RadixSorter;

// The stable order by operator<: what the radix sort must give for inputs without NaN and -0.0.
template <typename Float>
std::vector<int32_t> stable_order(const std::vector<Float>& x) {
  std::vector<int32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[a] < x[b]; });
  return order;
}

template <typename Float>
bool same_bits(Float a, Float b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

template <typename Float>
void expect_sorts_like_stable_sort(const std::vector<Float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<Float> values(n), values_only(n);
  std::vector<int32_t> index(n);
  std::vector<int64_t> index_only(n);
  RadixSorter<Float> sorter;
  sorter.sort(x.data(), n, values.data(), index.data());
  sorter.sort(x.data(), n, values_only.data());
  sorter.order(x.data(), n, index_only.data());
  const auto expected = stable_order(x);
  ASSERT_EQ(index, expected) << "n = " << n;
  ASSERT_EQ(index_only, std::vector<int64_t>(expected.begin(), expected.end())) << "n = " << n;
  for (int64_t k = 0; k < n; ++k) {
    ASSERT_TRUE(same_bits(values[k], x[expected[k]])) << k;
    ASSERT_TRUE(same_bits(values_only[k], x[expected[k]])) << k;
  }
}

template <typename Float>
class RadixSortTest : public ::testing::Test {};
using Floats = ::testing::Types<float, double>;
TYPED_TEST_SUITE(RadixSortTest, Floats);

TYPED_TEST(RadixSortTest, EqualsStableSortOnRandomRowsOfEverySize) {
  using Float = TypeParam;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  // Sizes around the 8-bit digit (256) and past 2^16, so that one digit value can hold > 2^16 keys.
  for (int64_t n : {1, 2, 3, 17, 255, 256, 257, 1024, 10000, 70000}) {
    std::vector<Float> x(n);
    for (auto& v : x) {
      v = static_cast<Float>(normal(rng) * 3.0);
    }
    expect_sorts_like_stable_sort(x);
  }
}

TYPED_TEST(RadixSortTest, TiesKeepInputOrderAndExtremesSortRight) {
  using Float = TypeParam;
  using limits = std::numeric_limits<Float>;
  std::mt19937_64 rng(3);
  // Few distinct values (many ties), all signs and magnitudes, subnormals and infinities.
  const std::vector<Float> pool = {Float(0),
                                   Float(1),
                                   Float(-1),
                                   Float(2.5),
                                   Float(-2.5),
                                   limits::infinity(),
                                   -limits::infinity(),
                                   limits::max(),
                                   limits::lowest(),
                                   limits::min(),
                                   -limits::min(),
                                   limits::denorm_min(),
                                   -limits::denorm_min(),
                                   Float(1e-30),
                                   Float(-1e30)};
  std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
  std::vector<Float> x(3000);
  for (auto& v : x) {
    v = pool[pick(rng)];
  }
  expect_sorts_like_stable_sort(x);
  // All keys equal: every pass is skipped, the output is the input order.
  expect_sorts_like_stable_sort(std::vector<Float>(500, Float(-3.25)));
  // Already sorted and reversed.
  std::vector<Float> up(1000);
  std::iota(up.begin(), up.end(), Float(-500));
  expect_sorts_like_stable_sort(up);
  std::reverse(up.begin(), up.end());
  expect_sorts_like_stable_sort(up);
}

TYPED_TEST(RadixSortTest, SignedZerosAndNansGoByBitPattern) {
  using Float = TypeParam;
  const Float nan = std::numeric_limits<Float>::quiet_NaN();
  const std::vector<Float> x = {Float(0), -nan, Float(1), Float(-0.0), nan, Float(-1)};
  std::vector<Float> values(x.size());
  std::vector<int64_t> index(x.size());
  RadixSorter<Float> sorter;
  sorter.sort(x.data(), static_cast<int64_t>(x.size()), values.data(), index.data());
  // -NaN < -1 < -0.0 < +0.0 < 1 < +NaN
  EXPECT_EQ(index, (std::vector<int64_t>{1, 5, 3, 0, 2, 4}));
  EXPECT_TRUE(std::isnan(values.front()) && std::signbit(values.front()));
  EXPECT_TRUE(std::isnan(values.back()) && !std::signbit(values.back()));
  EXPECT_TRUE(std::signbit(values[2]) && values[2] == 0);
  EXPECT_TRUE(!std::signbit(values[3]) && values[3] == 0);
}

TYPED_TEST(RadixSortTest, KeyMapIsAnOrderPreservingBijection) {
  using Float = TypeParam;
  using Sorter = RadixSorter<Float>;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(0.0, 100.0);
  for (int i = 0; i < 10000; ++i) {
    const auto a = static_cast<Float>(normal(rng));
    const auto b = static_cast<Float>(normal(rng));
    EXPECT_TRUE(same_bits(Sorter::from_key(Sorter::to_key(a)), a));
    EXPECT_EQ(a < b, Sorter::to_key(a) < Sorter::to_key(b)) << a << " " << b;
  }
}

}  // namespace
