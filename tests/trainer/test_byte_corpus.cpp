// The byte corpus: split, deterministic sampling and evaluation windows, the bigram baseline
// against a brute-force count, and bad data files.
#include "coupling/error.h"
#include "trainer/data/byte_corpus.h"
#include "trainer_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace {

using test_support::TempDir;
using trainer::ByteCorpus;

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

TEST(ByteCorpus, SplitsLastTenPercentForValidation) {
  auto corpus = ByteCorpus::from_bytes(std::vector<uint8_t>(1000, 'a'));
  EXPECT_EQ(corpus.train_size(), 900);
  EXPECT_EQ(corpus.validation_size(), 100);
}

TEST(ByteCorpus, SamplingIsDeterministicAndTargetsAreShifted) {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += static_cast<char>('a' + (i * 7) % 26);
  auto corpus = ByteCorpus::from_bytes(bytes_of(text));
  std::mt19937_64 rng_a(42), rng_b(42), rng_c(43);
  auto a = corpus.sample_train(4, 16, rng_a);
  auto b = corpus.sample_train(4, 16, rng_b);
  auto c = corpus.sample_train(4, 16, rng_c);
  EXPECT_TRUE(at::equal(a.inputs, b.inputs));
  EXPECT_FALSE(at::equal(a.inputs, c.inputs));
  EXPECT_TRUE(at::equal(a.inputs.narrow(1, 1, 15), a.targets.narrow(1, 0, 15)));
  // Every training window (with its target byte) lies inside the training split.
  for (int trial = 0; trial < 50; ++trial) {
    auto batch = corpus.sample_train(8, 16, rng_a);
    EXPECT_EQ(batch.inputs.sizes(), (at::IntArrayRef{8, 16}));
    EXPECT_EQ(batch.inputs.scalar_type(), at::kLong);
  }
}

TEST(ByteCorpus, TrainingWindowsNeverReachValidation) {
  // Training bytes are 'a', validation bytes are 'z': no sampled window may contain a 'z'.
  std::string text(900, 'a');
  text += std::string(100, 'z');
  auto corpus = ByteCorpus::from_bytes(bytes_of(text));
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 200; ++trial) {
    auto batch = corpus.sample_train(4, 32, rng);
    EXPECT_EQ(batch.targets.max().item<int64_t>(), 'a');
  }
  auto val = corpus.evaluation_windows(trainer::Split::kValidation, 32, 10);
  EXPECT_EQ(val.inputs.min().item<int64_t>(), 'z');
}

TEST(ByteCorpus, EvaluationWindowsAreFixedAndSpanTheSplit) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += static_cast<char>(i % 251);
  auto corpus = ByteCorpus::from_bytes(bytes_of(text));
  auto first = corpus.evaluation_windows(trainer::Split::kValidation, 20, 8);
  auto second = corpus.evaluation_windows(trainer::Split::kValidation, 20, 8);
  EXPECT_EQ(first.inputs.size(0), 8);
  EXPECT_TRUE(at::equal(first.inputs, second.inputs));
  // The first window starts at the split, the last ends at the last byte.
  EXPECT_EQ(first.inputs[0][0].item<int64_t>(), corpus.train_size() % 251);
  EXPECT_EQ(first.targets[7][19].item<int64_t>(), (corpus.size() - 1) % 251);
}

TEST(ByteCorpus, BigramLossMatchesBruteForce) {
  const std::string text = "abracadabra, abracadabra! the cat sat on the mat. abracadabra.";
  auto corpus = ByteCorpus::from_bytes(bytes_of(text));
  const int64_t split = corpus.train_size();
  std::map<std::pair<int, int>, double> pair_counts;
  std::map<int, double> first_counts;
  for (int64_t i = 0; i + 1 < split; ++i) {
    pair_counts[{static_cast<uint8_t>(text[i]), static_cast<uint8_t>(text[i + 1])}] += 1;
    first_counts[static_cast<uint8_t>(text[i])] += 1;
  }
  double nll = 0;
  int64_t n = 0;
  for (int64_t i = split; i + 1 < static_cast<int64_t>(text.size()); ++i, ++n) {
    const int a = static_cast<uint8_t>(text[i]), b = static_cast<uint8_t>(text[i + 1]);
    nll -= std::log((pair_counts[{a, b}] + 1.0) / (first_counts[a] + 256.0));
  }
  EXPECT_NEAR(corpus.bigram_validation_loss(), nll / static_cast<double>(n), 1e-12);
  // Uniform would be log(256); the add-one model on a tiny corpus is still close to it.
  EXPECT_LT(corpus.bigram_validation_loss(), std::log(256.0));
}

TEST(ByteCorpus, BadFilesGiveClearErrors) {
  TempDir dir;
  try {
    ByteCorpus::from_file(dir.file("missing.txt"));
    FAIL() << "no error for a missing file";
  } catch (const coupling::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read data file"), std::string::npos);
  }
  test_support::write_text(dir.file("empty.txt"), "");
  EXPECT_THROW(ByteCorpus::from_file(dir.file("empty.txt")), coupling::DataError);
  auto corpus = ByteCorpus::from_file(test_support::write_text(dir.file("short.txt"), "0123456789", 10));
  EXPECT_NO_THROW(corpus.require_context(9));
  try {
    corpus.require_context(10);
    FAIL() << "no error for a context longer than the validation split";
  } catch (const coupling::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("too short for --context 10"), std::string::npos);
  }
}

}  // namespace
